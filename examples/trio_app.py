"""
A trio-native application using the client: a nursery of workers, each with its own deadline
(``trio.move_on_after``), and the client's own task group underneath.

Three things to notice:

* the client is opened and closed by ``async with`` in the same task, like a nursery;
* a deadline around ``await handle`` stops the *wait*, not the request: the request belongs to
  the client, so a worker that gives up calls ``handle.cancel()`` to stop it too;
* an httpx hook sees the attempt in progress through ``current_context()``.

Run it with ``python examples/trio_app.py``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import httpx
import trio

from typed_async_client import AsyncResilientClient, RequestContext, current_context
from typed_async_client.testing import LocalServer, refusing_url


async def tag_attempt(request: httpx.Request) -> None:
    """httpx request hook: say which attempt of which request this is."""
    context = current_context()
    if context is not None:
        request.headers["X-Request-ID"] = context.request_id
        request.headers["X-Attempt"] = str(context.attempt_number)


async def fetch(
    client: AsyncResilientClient,
    name: str,
    url: str,
    deadline: float,
    outcomes: dict[str, str],
) -> None:
    """Fetch ``url``, giving up after ``deadline`` seconds; record what happened."""
    context = RequestContext(request_id=name, max_retries=2, base_delay=0.05)
    handle = await client.get(url, context=context)
    with trio.move_on_after(deadline) as scope:
        try:
            response = await handle
        except httpx.HTTPError as exc:
            outcomes[name] = f"{type(exc).__name__} after {handle.context.attempt_number} attempts"
            return
        sent_id = response.json()["headers"].get("x-request-id")
        outcomes[name] = f"{response.status_code} (X-Request-ID: {sent_id})"
    if scope.cancelled_caught:
        # Only the wait was cancelled; stop the request as well.
        handle.cancel()
        result = await handle.wait_result()
        outcomes[name] = f"gave up after {deadline}s ({result.status})"


async def run_app(base_url: str, refused: str) -> dict[str, str]:
    outcomes: dict[str, str] = {}
    jobs = [
        ("users", f"{base_url}/users", 5.0),
        ("slow", f"{base_url}/delay/30", 0.2),
        ("down", f"{refused}/items", 5.0),
    ]
    async with AsyncResilientClient(event_hooks={"request": [tag_attempt]}) as client:
        async with trio.open_nursery() as nursery:
            for name, url, deadline in jobs:
                nursery.start_soon(fetch, client, name, url, deadline, outcomes)
        stats = client.stats()
    print(f"stats: {stats.succeeded} ok, {stats.failed} failed, {stats.cancelled} cancelled")
    return outcomes


async def main(base_url: str | None = None) -> dict[str, str]:
    """
    Run three workers: one succeeds, one hits its deadline, one cannot connect.

    Returns:
        ``{worker: outcome}``.
    """
    if base_url is None:
        async with LocalServer() as server:
            return await main(server.url)
    with refusing_url() as refused:
        outcomes = await run_app(base_url, refused)
    for name, outcome in sorted(outcomes.items()):
        print(f"{name:>6}: {outcome}")
    return outcomes


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python examples/trio_app.py",
        description="A trio application: a nursery of workers with their own deadlines.",
    )
    parser.add_argument(
        "--backend",
        choices=["asyncio", "trio"],
        default="trio",
        help="event loop; this example runs on trio only (trio)",
    )
    args = parser.parse_args(argv)
    if args.backend != "trio":
        parser.error(
            "argument --backend: this example is trio-specific "
            "(trio.open_nursery and trio.move_on_after); the other examples run on both"
        )
    return args


if __name__ == "__main__":
    parse_args()
    trio.run(main)
