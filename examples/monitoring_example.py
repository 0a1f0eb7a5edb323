"""
Monitoring with event callbacks: a ``MetricsCollector`` fed by ``SUCCESS``, ``RETRY`` and
``ERROR`` events (README "Monitoring et Métriques").

The seed awaits the handles with ``asyncio.gather``; here an anyio task group awaits them, so the
example runs on asyncio and trio alike. Ten requests go to a local server; the last ``failing``
of them go to a port that refuses connections, so some requests are retried and fail. Run it with
``python examples/monitoring_example.py [--requests N] [--failing N] [--backend trio]``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
from collections import defaultdict
from collections.abc import Sequence

import anyio

from typed_async_client import (
    AsyncEvent,
    EventType,
    RequestContext,
    RequestHandle,
    create_async_resilient_client,
)
from typed_async_client.testing import LocalServer, refusing_url

logger = logging.getLogger(__name__)


class MetricsCollector:
    """
    Count requests by their final event, and retries separately.

    A request emits any number of ``RETRY`` events and then one final ``SUCCESS`` or ``ERROR``,
    so rates are computed per request id from the final events; counting events instead (as the
    seed did) puts the retries in the denominator and reports 16 "requests" for 10.
    """

    def __init__(self) -> None:
        self.stats: defaultdict[str, int] = defaultdict(int)  # events, by type
        self.outcomes: dict[str, str] = {}  # request id -> "success" or "error"
        self.retried: set[str] = set()  # request ids retried at least once
        self.response_times: list[float] = []

    async def on_success(self, event: AsyncEvent) -> None:
        self.stats["success"] += 1
        self.outcomes[event.context.request_id] = "success"
        # The seed reads event.context.elapsed_time, which is measured when the callback runs,
        # so a busy dispatcher inflates it; total_time is measured when the request ended.
        self.response_times.append(event.data["total_time"])
        logger.info("succeeded: %s", event.context.request_id)

    async def on_retry(self, event: AsyncEvent) -> None:
        self.stats["retry"] += 1
        self.retried.add(event.context.request_id)
        logger.warning("retry %d: %s", event.context.current_attempt, event.context.request_id)

    async def on_error(self, event: AsyncEvent) -> None:
        self.stats["error"] += 1
        self.outcomes[event.context.request_id] = "error"
        logger.error("failed for good: %s", event.context.request_id)

    def get_metrics(self) -> dict[str, float]:
        total = len(self.outcomes)
        if total == 0:
            return {}
        succeeded = sum(1 for outcome in self.outcomes.values() if outcome == "success")
        avg_response_time = (
            sum(self.response_times) / len(self.response_times) if self.response_times else 0.0
        )
        return {
            "total_requests": total,
            "succeeded": succeeded,
            "failed": total - succeeded,
            "retries": self.stats["retry"],
            "retried_requests": len(self.retried),
            "success_rate": succeeded / total,
            "retry_rate": len(self.retried) / total,
            "error_rate": (total - succeeded) / total,
            "avg_response_time": avg_response_time,
        }


def format_metrics(metrics: dict[str, float]) -> str:
    """The metrics as a short English summary."""
    if not metrics:
        return "no request finished"
    total = int(metrics["total_requests"])
    return "\n".join(
        [
            f"{total} requests: {int(metrics['succeeded'])} succeeded, "
            f"{int(metrics['failed'])} failed ({metrics['success_rate']:.0%})",
            f"retries: {int(metrics['retries'])} over {int(metrics['retried_requests'])} "
            f"of {total} requests ({metrics['retry_rate']:.0%})",
            f"average response time of the successes: {metrics['avg_response_time'] * 1000:.1f} ms",
        ]
    )


async def monitored_requests(urls: list[str], base_delay: float = 0.5) -> dict[str, float]:
    metrics = MetricsCollector()

    async with create_async_resilient_client() as client:
        # Register the monitoring callbacks
        client.add_event_callback(EventType.SUCCESS, metrics.on_success)
        client.add_event_callback(EventType.RETRY, metrics.on_retry)
        client.add_event_callback(EventType.ERROR, metrics.on_error)

        # Submit several requests
        tasks = []

        for i, url in enumerate(urls):
            context = RequestContext(request_id=f"req_{i}", base_delay=base_delay)
            task = await client.get(url, context=context)
            tasks.append(task)

        async def settle(handle: RequestHandle) -> None:
            # Like gather(..., return_exceptions=True): the callbacks count the failures.
            with contextlib.suppress(Exception):
                await handle

        # Wait for every request
        async with anyio.create_task_group() as tg:
            for task in tasks:
                tg.start_soon(settle, task)
        await client.wait_for_all_requests()

    # Events are delivered before the client finishes closing, so the counts are complete here.
    return metrics.get_metrics()


async def main(
    base_url: str | None = None, requests: int = 10, failing: int = 2
) -> dict[str, float]:
    """
    Run ``requests`` monitored requests, the last ``failing`` of them to a refused port.

    Returns:
        The collector's metrics, counted per request. With the default three retries per
        request, ``failing`` refused requests are retried ``3 * failing`` times and fail.
    """
    if not 0 <= failing <= requests:
        raise ValueError(f"failing must be between 0 and requests ({requests}), got {failing}")
    if base_url is None:
        async with LocalServer() as server:
            return await main(server.url, requests, failing)
    with refusing_url() as refused:
        urls = [f"{base_url}/get" for _ in range(requests - failing)]
        urls += [f"{refused}/get" for _ in range(failing)]
        # Short backoff delays keep the demo quick; the default base_delay is 0.5 s.
        return await monitored_requests(urls, base_delay=0.02)


def count(text: str) -> int:
    """An argparse type: an integer from 0 to 1,000."""
    value = int(text)
    if not 0 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1000, got {value}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python examples/monitoring_example.py",
        description="Count successes, retries and errors with event callbacks.",
    )
    parser.add_argument("--requests", type=count, default=10, help="requests to send (10)")
    parser.add_argument(
        "--failing", type=count, default=2, help="how many of them go to a refused port (2)"
    )
    parser.add_argument(
        "--backend",
        choices=["asyncio", "trio"],
        default="asyncio",
        help="event loop (asyncio)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every event")
    args = parser.parse_args(argv)
    if args.failing > args.requests:
        parser.error(f"--failing ({args.failing}) must not exceed --requests ({args.requests})")
    return args


if __name__ == "__main__":
    args = parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    metrics = anyio.run(
        functools.partial(main, requests=args.requests, failing=args.failing),
        backend=args.backend,
    )
    print(format_metrics(metrics))
