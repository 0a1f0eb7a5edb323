"""
Reading a response body under caps: decoded size and number of stacked encodings.

httpx puts no cap on either (RELIABILITY.md, fact 7): a 1 MB gzip bomb decodes to a gigabyte in
one ``decompress`` call. When the client has ``max_response_bytes`` or
``max_content_encodings``, attempts stream the response and read it here instead:

* more ``Content-Encoding`` codings than allowed: refused before reading a byte;
* ``gzip``/``deflate`` codings, stacked or not (the bomb's shapes): decoded here, stage by
  stage, with zlib's ``max_length``, so no more than the cap plus one 64 KiB step per stage
  is ever held;
* other codings (``br``, ``zstd``): decoded by httpx chunk by chunk and counted, so the cap is
  enforced after each decoded chunk.

Past the cap the response is closed and ``ResponseTooLargeError`` raised. The body read is
installed as the response's content, so ``response.content``, ``.text`` and ``.json()`` work as
after ``aread()``.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from typing import Final

import httpx

from ._exceptions import ResponseRejectedError, ResponseTooLargeError, TooManyEncodingsError

_STEP: Final[int] = 64 * 1024
_ZLIB_WBITS: Final[dict[str, int]] = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16}
_ZLIB_CODINGS: Final[frozenset[str]] = frozenset({"gzip", "x-gzip", "deflate"})
_DRAIN_STEPS: Final[int] = 10_000


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


class _Stage:
    """One zlib decoding stage; ``deflate`` falls back to raw deflate, as httpx does."""

    def __init__(self, coding: str, request: httpx.Request) -> None:
        self._coding = coding
        self._request = request
        self._decompressor = zlib.decompressobj(_ZLIB_WBITS.get(coding, zlib.MAX_WBITS))
        self._first = True

    @property
    def tail(self) -> bytes:
        return self._decompressor.unconsumed_tail

    def decompress(self, data: bytes, max_length: int) -> bytes:
        try:
            out = self._decompressor.decompress(data, max_length)
        except zlib.error as exc:
            if self._first and self._coding == "deflate":
                # Some servers send raw deflate without the zlib wrapper (as httpx allows).
                self._first = False
                self._decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
                return self.decompress(data, max_length)
            raise httpx.DecodingError(str(exc), request=self._request) from exc
        self._first = False
        return out


def _push(stages: list[_Stage], index: int, data: bytes, collector: _Collector) -> None:
    """Decode ``data`` through ``stages[index:]``, never more than one step at a time."""
    if index == len(stages):
        collector.add(data)
        return
    stage = stages[index]
    last = index == len(stages) - 1
    while data:
        out = stage.decompress(data, collector.room() if last else _STEP)
        if out:
            _push(stages, index + 1, out, collector)
        data = stage.tail


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Run a response iterator to its end after the response was closed.

    Abandoned half-way, httpx's nested async generators would be left to the garbage
    collector (trio warns about each, httpx issue #3686); after ``aclose()`` the next step
    raises, which unwinds them all properly.
    """
    for _ in range(_DRAIN_STEPS):
        try:
            await chunks.__anext__()
        except (StopAsyncIteration, Exception):
            return


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
        if all(coding in _ZLIB_CODINGS for coding in codings):
            # Decoded here, outermost coding first, in bounded steps (zlib's max_length).
            stages = [_Stage(coding, response.request) for coding in reversed(codings)]
            chunks = response.aiter_raw()
            try:
                async for raw in chunks:
                    _push(stages, 0, raw, collector)
            except ResponseRejectedError:
                await response.aclose()
                await _drain(chunks)
                raise
        else:
            # br, zstd...: httpx decodes each chunk whole; the cap applies after each one.
            chunks = response.aiter_bytes()
            try:
                async for chunk in chunks:
                    collector.add(chunk)
            except ResponseRejectedError:
                await response.aclose()
                await _drain(chunks)
                raise
        # httpx offers no public way to attach a body read this way; this is what aread() does.
        response._content = b"".join(collector.chunks)
    finally:
        await response.aclose()


def release_stream(response: httpx.Response) -> None:
    """
    Let a read and closed response drop its transport stream before it is kept in the results.

    The stream of a response that httpx has read and closed still references the connection
    pool's request, its events and its streams (about 14 of the 29 objects a kept result holds):
    kept for every stored result, they only give the garbage collector work. Replaced here by the
    body itself as an ``httpx.ByteStream``, as httpx does for a request whose body it has read.
    Nothing reads a consumed stream again (httpx raises ``StreamConsumed`` first); a response
    still open (``stream=True``, or not read) is left alone.
    """
    if (
        response.is_closed
        and response.is_stream_consumed
        and not isinstance(response.stream, httpx.ByteStream)
    ):
        try:
            content = response.content
        except httpx.ResponseNotRead:
            return  # consumed by iteration, never read into memory: nothing to stand in for it
        response.stream = httpx.ByteStream(content)
