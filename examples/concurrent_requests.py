"""
Concurrent requests awaited together from an anyio task group (README section 3).

The seed awaits the handles with ``asyncio.gather(..., return_exceptions=True)``; here each handle
is awaited in a task group that collects its response or exception, so the example runs on
asyncio and trio alike. ``/users`` and ``/posts`` go to a local server, ``/comments`` to a port
that refuses connections, so one request is retried and then fails. Run it with
``python examples/concurrent_requests.py [--backend trio]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import anyio
import httpx

from typed_async_client import RequestContext, RequestHandle, create_async_resilient_client
from typed_async_client.testing import LocalServer, refusing_url


async def gather_handles(
    handles: list[RequestHandle],
) -> list[httpx.Response | BaseException]:
    """Await every handle in a task group; like ``gather(..., return_exceptions=True)``."""
    outcomes: list[httpx.Response | BaseException | None] = [None] * len(handles)

    async def wait(index: int, handle: RequestHandle) -> None:
        try:
            outcomes[index] = await handle
        except Exception as exc:
            outcomes[index] = exc

    async with anyio.create_task_group() as tg:
        for index, handle in enumerate(handles):
            tg.start_soon(wait, index, handle)
    return [outcome for outcome in outcomes if outcome is not None]


async def requetes_concurrentes(
    urls_et_contextes: list[tuple[str, RequestContext]],
) -> dict[str, tuple[str, int]]:
    async with create_async_resilient_client() as client:
        # Submit every request; each runs at once in the client's task group
        tasks = []
        for url, context in urls_et_contextes:
            task = await client.get(url, context=context)
            tasks.append(task)

        # Wait for every response (or exception)
        responses = await gather_handles(tasks)
        for task, response in zip(tasks, responses, strict=True):
            shown = (
                f"HTTP {response.status_code}"
                if isinstance(response, httpx.Response)
                else f"{type(response).__name__}: {response}"
            )
            print(f"   {task.request_id}: {shown}")

        # Look at the results
        results = await client.wait_for_all_requests()

        for request_id, result in results.items():
            status = "✅" if result.is_success else "❌"
            print(f"{status} {request_id}: {result.status} ({result.attempts} attempt(s))")

    return {rid: (str(result.status), result.attempts) for rid, result in results.items()}


async def main(base_url: str | None = None) -> dict[str, tuple[str, int]]:
    """
    Fetch ``/users``, ``/posts`` and ``/comments`` concurrently; ``/comments`` is refused.

    Returns:
        ``{request_id: (status, attempts)}``, such as ``{"comments": ("error", 2), ...}``.
    """
    if base_url is None:
        async with LocalServer() as server:
            return await main(server.url)
    with refusing_url() as refused:
        urls_et_contextes = [
            (f"{base_url}/users", RequestContext(request_id="users", max_retries=2)),
            (f"{base_url}/posts", RequestContext(request_id="posts", max_retries=3)),
            # Refused: one retry after a backoff of at most base_delay (0.5 s), then ConnectError
            (f"{refused}/comments", RequestContext(request_id="comments", max_retries=1)),
        ]
        return await requetes_concurrentes(urls_et_contextes)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python examples/concurrent_requests.py",
        description="Three requests awaited together from a task group.",
    )
    parser.add_argument(
        "--backend",
        choices=["asyncio", "trio"],
        default="asyncio",
        help="event loop (asyncio)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    results = anyio.run(main, backend=args.backend)
    succeeded = sum(1 for status, _ in results.values() if status == "success")
    print(f"{len(results)} requests: {succeeded} succeeded, {len(results) - succeeded} failed")
