"""
Advanced client: callbacks, a custom ``RequestContext``, default headers and results (section 2).

Run it with ``python examples/advanced_client.py [--backend trio]``. Besides the seed's request,
a second request goes to a port that refuses connections, so that the ``RETRY`` and ``ERROR``
callbacks have something to report.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import anyio
import httpx

from typed_async_client import (
    AsyncEvent,
    EventType,
    RequestContext,
    create_async_resilient_client,
)
from typed_async_client.testing import LocalServer, refusing_url


async def exemple_avance(data_url: str, refused_url: str) -> dict[str, Any]:
    retries: list[int] = []
    errors: list[str] = []

    # Monitoring callbacks: they run in the client's dispatcher task, never in the request's.
    async def on_retry(event: AsyncEvent) -> None:
        retries.append(event.context.current_attempt)
        print(f"🔄 Retry: {event.context.request_id} (attempt {event.context.current_attempt})")

    async def on_error(event: AsyncEvent) -> None:
        errors.append(event.context.request_id)
        print(f"❌ Error: {event.context.request_id}: {event.error!r}")

    # Client configuration. httpx.Timeout needs a default (or all four values): the seed's
    # httpx.Timeout(connect=5.0, read=30.0) raises ValueError, so 10 s is the default here.
    async with create_async_resilient_client(
        timeout=httpx.Timeout(10.0, connect=5.0, read=30.0),
        limits=httpx.Limits(max_connections=50),
        event_queue_size=100,
    ) as client:
        # Add the callbacks
        client.add_event_callback(EventType.RETRY, on_retry)
        client.add_event_callback(EventType.ERROR, on_error)

        # Custom context
        context = RequestContext(
            max_retries=3,
            base_delay=0.5,
            request_id="api_data_fetch",
            metadata={"priority": "high"},
        )

        # Submit the request: this returns a handle at once
        task = await client.get(
            data_url,
            context=context,
            headers={"Authorization": "Bearer YOUR_TOKEN"},
        )

        # Wait for the response
        response = await task
        print(f"Status: {response.status_code}")

        # Read the metrics back
        result = client.get_result("api_data_fetch")
        assert result is not None  # the request has ended, so its result is kept
        print(f"Attempts: {result.attempts}")
        print(f"Total time: {result.total_time:.2f} s")

        # Not in the seed: a request that cannot connect, retried twice with short delays.
        failing = await client.get(
            refused_url,
            context=RequestContext(max_retries=2, base_delay=0.05, request_id="refused"),
        )
        try:
            await failing
        except httpx.ConnectError as exc:
            print(f"Expected failure: {exc!r}")
        failed = client.get_result("refused")
        assert failed is not None

    # Leaving the block delivered every queued event, so the callbacks have all run.
    echoed_headers = response.json()["headers"]
    return {
        "status_code": response.status_code,
        "attempts": result.attempts,
        "authorization": echoed_headers.get("authorization"),
        "metadata": dict(result.context.metadata),
        "retry_attempts": retries,
        "errors": errors,
        "refused_attempts": failed.attempts,
    }


async def main(base_url: str | None = None) -> dict[str, Any]:
    """
    Run the advanced example against a local server (started here if ``base_url`` is None).

    Returns:
        The status code, attempts, echoed ``Authorization`` header and metadata of the main
        request, plus what the callbacks saw for the refused one.
    """
    if base_url is None:
        async with LocalServer() as server:
            return await main(server.url)
    with refusing_url() as refused:
        return await exemple_avance(f"{base_url}/data", f"{refused}/data")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python examples/advanced_client.py",
        description="Callbacks, a custom RequestContext, default headers and results.",
    )
    parser.add_argument(
        "--backend", choices=["asyncio", "trio"], default="asyncio", help="event loop (asyncio)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    outcome = anyio.run(main, backend=args.backend)
    print(
        f"\napi_data_fetch: {outcome['status_code']} after {outcome['attempts']} attempt(s), "
        f"Authorization {outcome['authorization']!r} echoed, "
        f"metadata {', '.join(f'{key}={value}' for key, value in outcome['metadata'].items())}"
    )
    print(
        f"refused: {outcome['refused_attempts']} attempts, retry callbacks for attempts "
        f"{', '.join(map(str, outcome['retry_attempts']))}, error callback for "
        f"{', '.join(outcome['errors'])}"
    )
