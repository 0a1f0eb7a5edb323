"""
The HTTP verb methods, shared by the client and by batches: each one calls ``request()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx
    from typing_extensions import Unpack

    from ._context import RequestContext
    from ._handle import RequestHandle
    from ._request import RequestOptions
    from ._retry import RetryPolicy


class VerbMethods:
    """``get``, ``post``, ``put``, ``patch``, ``delete``, ``head`` and ``options``."""

    async def request(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        context: RequestContext | None = None,
        retry_policy: RetryPolicy | None = None,
        **options: Unpack[RequestOptions],
    ) -> RequestHandle:
        raise NotImplementedError

    async def get(
        self,
        url: httpx.URL | str,
        *,
        context: RequestContext | None = None,
        retry_policy: RetryPolicy | None = None,
        **options: Unpack[RequestOptions],
    ) -> RequestHandle:
        """Schedule a GET request; see ``request()``."""
        return await self.request("GET", url, context=context, retry_policy=retry_policy, **options)

    async def post(
        self,
        url: httpx.URL | str,
        *,
        context: RequestContext | None = None,
        retry_policy: RetryPolicy | None = None,
        **options: Unpack[RequestOptions],
    ) -> RequestHandle:
        """Schedule a POST request; see ``request()``."""
        return await self.request(
            "POST", url, context=context, retry_policy=retry_policy, **options
        )

    async def put(
        self,
        url: httpx.URL | str,
        *,
        context: RequestContext | None = None,
        retry_policy: RetryPolicy | None = None,
        **options: Unpack[RequestOptions],
    ) -> RequestHandle:
        """Schedule a PUT request; see ``request()``."""
        return await self.request("PUT", url, context=context, retry_policy=retry_policy, **options)

    async def patch(
        self,
        url: httpx.URL | str,
        *,
        context: RequestContext | None = None,
        retry_policy: RetryPolicy | None = None,
        **options: Unpack[RequestOptions],
    ) -> RequestHandle:
        """Schedule a PATCH request; see ``request()``."""
        return await self.request(
            "PATCH", url, context=context, retry_policy=retry_policy, **options
        )

    async def delete(
        self,
        url: httpx.URL | str,
        *,
        context: RequestContext | None = None,
        retry_policy: RetryPolicy | None = None,
        **options: Unpack[RequestOptions],
    ) -> RequestHandle:
        """Schedule a DELETE request; see ``request()``."""
        return await self.request(
            "DELETE", url, context=context, retry_policy=retry_policy, **options
        )

    async def head(
        self,
        url: httpx.URL | str,
        *,
        context: RequestContext | None = None,
        retry_policy: RetryPolicy | None = None,
        **options: Unpack[RequestOptions],
    ) -> RequestHandle:
        """Schedule a HEAD request; see ``request()``."""
        return await self.request(
            "HEAD", url, context=context, retry_policy=retry_policy, **options
        )

    async def options(
        self,
        url: httpx.URL | str,
        *,
        context: RequestContext | None = None,
        retry_policy: RetryPolicy | None = None,
        **options: Unpack[RequestOptions],
    ) -> RequestHandle:
        """Schedule an OPTIONS request; see ``request()``."""
        return await self.request(
            "OPTIONS", url, context=context, retry_policy=retry_policy, **options
        )
