"""
Pure helpers of the test server's routes: strict parsing of route parameters, header-safe
values, and gzip bombs built in bounded memory.
"""

from __future__ import annotations

import functools
import math
import re
import struct
import zlib
from typing import Final

#: The largest size a gzip bomb decodes to.
MAX_BOMB: Final[int] = 1 << 30
#: Bombs larger than this are built in a worker thread, not to stall the event loop.
BOMB_IN_THREAD: Final[int] = 16 << 20
_BOMB_BLOCK: Final[int] = 1 << 20
_DIGITS: Final[re.Pattern[str]] = re.compile(r"[0-9]{1,15}")


def parse_int(text: str, high: int) -> int | None:
    """The integer ``text`` (ASCII digits only) if it is at most ``high``, else ``None``."""
    if not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if value <= high else None


def parse_float(text: str, high: float) -> float | None:
    """The number ``text`` if it is finite and from 0 to ``high``, else ``None``."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and 0 <= value <= high else None


def is_header_value(value: str) -> bool:
    """Whether ``value`` can go in a header as is: latin-1, no control character (no CR/LF)."""
    return all(char == "\t" or (" " <= char <= "\xff" and char != "\x7f") for char in value)


@functools.lru_cache(maxsize=8)
def gzip_zeros(size: int) -> bytes:
    """
    A gzip member that decodes to ``size`` zero bytes, built in about 1 MiB of memory.

    Each whole MiB of zeros is compressed by a fresh deflate stream ended with a full flush, so
    it compresses to the same self-contained bytes wherever it stands: those bytes are repeated,
    then the rest goes in a final block. Only the CRC needs a pass over the decoded size.
    """
    block = bytes(_BOMB_BLOCK)
    count, rest = divmod(size, _BOMB_BLOCK)
    whole = zlib.compressobj(9, zlib.DEFLATED, -15)
    repeated = whole.compress(block) + whole.flush(zlib.Z_FULL_FLUSH)
    last = zlib.compressobj(9, zlib.DEFLATED, -15)
    final = last.compress(block[:rest]) + last.flush()
    crc = 0
    for _ in range(count):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(block[:rest], crc)
    # ID1 ID2, CM deflate, no flags, MTIME 0, XFL 2 (best compression), OS unknown.
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", crc, size & 0xFFFFFFFF)
    return header + repeated * count + final + trailer
