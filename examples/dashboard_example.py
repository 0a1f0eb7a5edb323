"""
A real-time dashboard polling the client's counters from a background task (README "Dashboard en
Temps Réel").

The seed uses ``asyncio.create_task``, ``asyncio.sleep`` and ``asyncio.gather``; here the monitor
runs in an anyio task group and the request handles are awaited in another, so the example runs
on asyncio and trio alike. The seed's timings (a refresh every 5 s, 20 requests 0.5 s apart,
delays up to 2 s) are parameters here, shortened by ``main()`` so that the demo ends in about a
second, and the monitoring loop is bounded by ``max_refreshes``. Run it with
``python examples/dashboard_example.py [--backend trio]``.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import anyio

from typed_async_client import (
    AsyncResilientClient,
    RequestContext,
    RequestHandle,
    create_async_resilient_client,
)
from typed_async_client.testing import LocalServer


class RealTimeDashboard:
    def __init__(
        self,
        client: AsyncResilientClient,
        refresh_interval: float = 5.0,
        max_refreshes: int = 1_000,
    ) -> None:
        self.client = client
        self.running = False
        self.refresh_interval = refresh_interval
        self.max_refreshes = max_refreshes
        self.snapshots: list[dict[str, Any]] = []

    async def start_monitoring(self) -> None:
        """Run the monitoring loop until stop() or max_refreshes, whichever comes first."""
        self.running = True
        for _ in range(self.max_refreshes):
            if not self.running:
                break
            await self.display_stats()
            await anyio.sleep(self.refresh_interval)  # refresh period
        # One last view, after the final requests ended.
        await self.display_stats()

    async def display_stats(self) -> dict[str, Any]:
        """Print the current statistics, and keep them (for tests and later analysis)."""
        snapshot: dict[str, Any] = {
            "active": self.client.active_tasks_count,
            "results": self.client.results_count,
            "queued_events": self.client.event_queue_size,
            "closed": self.client.is_closed,
        }
        print(f"\n{'=' * 50}")
        print(f"🚀 Dashboard - {datetime.now().strftime('%H:%M:%S')}")
        print(f"{'=' * 50}")
        print(f"Active tasks: {snapshot['active']}")
        print(f"Cached results: {snapshot['results']}")
        print(f"Queued events: {snapshot['queued_events']}")
        print(f"Client closed: {'yes' if snapshot['closed'] else 'no'}")

        # Result statistics
        results = self.client.get_all_results()
        if results:
            success_count = sum(1 for r in results.values() if r.is_success)
            error_count = sum(1 for r in results.values() if r.is_error)
            avg_attempts = sum(r.attempts for r in results.values()) / len(results)

            print(f"Successes: {success_count}/{len(results)}")
            print(f"Errors: {error_count}/{len(results)}")
            print(f"Average attempts: {avg_attempts:.1f}")
            snapshot["successes"] = success_count
        self.snapshots.append(snapshot)
        return snapshot

    def stop(self) -> None:
        """Stop the monitoring loop (at its next refresh)."""
        self.running = False


async def exemple_avec_dashboard(
    base_url: str,
    requests: int = 20,
    spacing: float = 0.5,
    delay_unit: float = 1.0,
    refresh_interval: float = 5.0,
) -> list[dict[str, Any]]:
    async with create_async_resilient_client() as client:
        dashboard = RealTimeDashboard(client, refresh_interval=refresh_interval)

        async def settle(handle: RequestHandle) -> None:
            # Like gather(..., return_exceptions=True): a failed request is in the results.
            with contextlib.suppress(Exception):
                await handle

        async with anyio.create_task_group() as tg:
            # Start monitoring in the background; the task group waits for it below.
            tg.start_soon(dashboard.start_monitoring)

            try:
                # Submit the requests; the inner task group waits for every one
                async with anyio.create_task_group() as requests_tg:
                    for i in range(requests):
                        context = RequestContext(request_id=f"dashboard_req_{i}")
                        task = await client.get(
                            f"{base_url}/delay/{(i % 3) * delay_unit}",  # varied delays
                            context=context,
                        )
                        requests_tg.start_soon(settle, task)
                        await anyio.sleep(spacing)  # space the requests out

            finally:
                dashboard.stop()
    return dashboard.snapshots


async def main(base_url: str | None = None) -> list[dict[str, Any]]:
    """
    Run the dashboard over 6 requests with delays of 0, 0.1 and 0.2 s, refreshing every 0.1 s.

    Returns:
        The snapshots the dashboard displayed; the last one shows every request ended.
    """
    if base_url is None:
        async with LocalServer() as server:
            return await main(server.url)
    return await exemple_avec_dashboard(
        base_url, requests=6, spacing=0.05, delay_unit=0.1, refresh_interval=0.1
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python examples/dashboard_example.py",
        description="A dashboard refreshing the client's counters while requests run.",
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
    snapshots = anyio.run(main, backend=args.backend)
    last = snapshots[-1]
    print(
        f"\n{len(snapshots)} refreshes; at the last one {last['active']} active, "
        f"{last.get('successes', 0)} of {last['results']} results succeeded"
    )
