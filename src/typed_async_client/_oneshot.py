"""
One-shot helpers: a single request without managing a client, and a client factory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import httpx

from ._client import AsyncResilientClient
from ._constants import DEFAULT_MAX_RETRIES, DEFAULT_SIMPLE_TIMEOUT
from ._context import RequestContext

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._request import RequestOptionsWithoutTimeout

_P = ParamSpec("_P")
_T = TypeVar("_T")


async def simple_async_request(
    method: str,
    url: httpx.URL | str,
    *,
    max_retries: int = DEFAULT_MAX_RETRIES,
    timeout: httpx.Timeout | float | None = DEFAULT_SIMPLE_TIMEOUT,
    **options: Unpack[RequestOptionsWithoutTimeout],
) -> httpx.Response:
    """
    Send one request with retries on connection errors, through a client of its own.

    The response body is read before the client closes.

    Args:
        method: the HTTP method.
        url: an absolute http(s) URL.
        max_retries: retries after the first attempt.
        timeout: httpx timeout of each attempt, in seconds or as an ``httpx.Timeout``.
        **options: httpx request arguments (``headers``, ``json``, ``params``...).

    Returns:
        The response.

    Raises:
        Exception: the httpx exception of the last attempt, unchanged.
        ValueError: bad method, URL or ``max_retries``.
    """
    context = RequestContext(max_retries=max_retries)
    async with AsyncResilientClient(timeout=timeout) as client:
        handle = await client.request(method, url, context=context, **options)
        return await handle


def _same_signature(factory: Callable[_P, _T]) -> Callable[[Callable[..., _T]], Callable[_P, _T]]:
    def wrap(function: Callable[..., _T]) -> Callable[_P, _T]:
        return function

    return wrap


@_same_signature(AsyncResilientClient)
def create_async_resilient_client(**kwargs: object) -> AsyncResilientClient:
    """
    Create an :class:`AsyncResilientClient`; it takes the same arguments.

    Use it as ``async with create_async_resilient_client(...) as client:``.
    """
    return AsyncResilientClient(**kwargs)  # type: ignore[arg-type]
