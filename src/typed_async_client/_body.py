"""
Reading a response body under caps: decoded size and number of stacked encodings.

httpx puts no cap on either (RELIABILITY.md, fact 7): a 1 MB gzip bomb decodes to a gigabyte in
one ``decompress`` call. When the client has ``max_response_bytes`` or
``max_content_encodings``, attempts stream the response and read it here instead:

* more ``Content-Encoding`` codings than allowed: refused before reading a byte;
* a single ``gzip``/``deflate`` coding (the bomb's shape): decoded here with zlib's
  ``max_length``, so no more than the cap plus one 64 KiB step is ever held;
* ``identity``, or other codings (``br``, ``zstd``, stacked ones within the limit): decoded by
  httpx chunk by chunk and counted, so the cap is enforced after each decoded chunk.

Past the cap the response is closed and ``ResponseTooLargeError`` raised. The body read is
installed as the response's content, so ``response.content``, ``.text`` and ``.json()`` work as
after ``aread()``.
"""

from __future__ import annotations

import zlib
from typing import Final

import httpx

from ._exceptions import ResponseTooLargeError, TooManyEncodingsError

_STEP: Final[int] = 64 * 1024
_ZLIB_WBITS: Final[dict[str, int]] = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16}


def content_codings(response: httpx.Response) -> list[str]:
    """The response's content codings, outermost last, ``identity`` left out."""
    codings: list[str] = []
    for value in response.headers.get_list("content-encoding", split_commas=True):
        coding = value.strip().lower()
        if coding and coding != "identity":
            codings.append(coding)
    return codings


class _Collector:
    def __init__(self, limit: int | None, response: httpx.Response) -> None:
        self.limit = limit
        self.response = response
        self.total = 0
        self.chunks: list[bytes] = []

    def room(self) -> int:
        """Bytes to ask the decoder for: one past the cap at most, so overflow shows."""
        if self.limit is None:
            return _STEP
        return max(1, min(_STEP, self.limit - self.total + 1))

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self.limit is not None and self.total > self.limit:
            raise ResponseTooLargeError(self.limit, self.response)
        self.chunks.append(chunk)


async def _read_zlib(response: httpx.Response, coding: str, collector: _Collector) -> None:
    wbits = _ZLIB_WBITS.get(coding, zlib.MAX_WBITS)
    decompressor = zlib.decompressobj(wbits)
    first = True
    async for raw in response.aiter_raw():
        data = raw
        while data:
            try:
                out = decompressor.decompress(data, collector.room())
            except zlib.error as exc:
                if first and coding == "deflate":
                    # Some servers send raw deflate without the zlib wrapper (as httpx allows).
                    decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
                    first = False
                    continue
                raise httpx.DecodingError(str(exc), request=response.request) from exc
            first = False
            collector.add(out)
            data = decompressor.unconsumed_tail
    while True:
        try:
            out = decompressor.decompress(b"", collector.room())
        except zlib.error as exc:
            raise httpx.DecodingError(str(exc), request=response.request) from exc
        if not out:
            break
        collector.add(out)


async def read_capped(
    response: httpx.Response, max_bytes: int | None, max_encodings: int | None
) -> None:
    """
    Read a streamed response's body within the caps, then close it.

    Raises:
        TooManyEncodingsError: more content codings than ``max_encodings``.
        ResponseTooLargeError: the decoded body passed ``max_bytes``.
        httpx.DecodingError: the body could not be decoded.
    """
    try:
        codings = content_codings(response)
        if max_encodings is not None and len(codings) > max_encodings:
            raise TooManyEncodingsError(codings, max_encodings, response)
        collector = _Collector(max_bytes, response)
        if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
            await _read_zlib(response, codings[0], collector)
        else:
            async for chunk in response.aiter_bytes():
                collector.add(chunk)
        # httpx offers no public way to attach a body read this way; this is what aread() does.
        response._content = b"".join(collector.chunks)
    finally:
        await response.aclose()
