"""
A custom context: ``RequestContext`` subclassed with fields and a method of its own.

The seed's ``ApiRequestContext`` turns its fields into headers. The first request passes them
explicitly, as the seed does; the second lets an httpx event hook add them, reading the context
of the attempt in progress with ``current_context()``. Run it with
``python examples/custom_context.py [--backend trio]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

import anyio
import httpx

from typed_async_client import RequestContext, create_async_resilient_client, current_context
from typed_async_client.testing import LocalServer


@dataclass(frozen=True)
class ApiRequestContext(RequestContext):
    """A context extended for a specialised API."""

    api_version: str = "v1"
    priority: str = "normal"
    trace_id: str = ""

    def to_headers(self) -> dict[str, str]:
        """Convert the context into HTTP headers."""
        return {
            "X-API-Version": self.api_version,
            "X-Priority": self.priority,
            "X-Trace-ID": self.trace_id or self.request_id,
        }


async def add_context_headers(request: httpx.Request) -> None:
    """
    httpx request hook: add the headers of the request's context, if it is an API context.

    It runs inside the request's own task, where ``current_context()`` is the context of the
    attempt in progress (a retry sees its own ``current_attempt``).
    """
    context = current_context()
    if isinstance(context, ApiRequestContext):
        request.headers.update(context.to_headers())
        request.headers["X-Attempt"] = str(context.attempt_number)


async def main(base_url: str | None = None) -> dict[str, dict[str, str]]:
    """
    Send the seed's request, then one whose headers come from the event hook.

    Returns:
        The headers the server received for each request, by request id (lower-case names).
    """
    if base_url is None:
        async with LocalServer() as server:
            return await main(server.url)

    # Usage, as in the seed
    context = ApiRequestContext(
        request_id="custom_api_call",
        max_retries=3,
        api_version="v2",
        priority="high",
        trace_id="trace_12345",
    )

    received: dict[str, dict[str, str]] = {}
    async with create_async_resilient_client() as client:
        task = await client.get(
            f"{base_url}/data",
            context=context,
            headers=context.to_headers(),
        )
        response = await task
        received[context.request_id] = response.json()["headers"]

    # The same headers, added by a hook for every request that carries an ApiRequestContext.
    async with create_async_resilient_client(
        event_hooks={"request": [add_context_headers]}
    ) as client:
        hooked = ApiRequestContext(request_id="hooked_call", priority="low")
        response = await (await client.get(f"{base_url}/data", context=hooked))
        received[hooked.request_id] = response.json()["headers"]

    for request_id, headers in received.items():
        shown = ", ".join(f"{name}: {value}" for name, value in headers.items() if name[:2] == "x-")
        print(f"{request_id}: {shown}")
    return received


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python examples/custom_context.py",
        description="A RequestContext subclass whose fields become request headers.",
    )
    parser.add_argument(
        "--backend", choices=["asyncio", "trio"], default="asyncio", help="event loop (asyncio)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    anyio.run(main, backend=args.backend)
