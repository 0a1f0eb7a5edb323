"""
Monitoring with event callbacks: a ``MetricsCollector`` fed by ``SUCCESS``, ``RETRY`` and
``ERROR`` events (README "Monitoring et Métriques").

asyncio-specific, as the seed is (``asyncio.gather``). Ten requests go to a local server; the
last ``failing`` of them go to a port that refuses connections, so the retry and error rates are
not zero. Run it with ``python examples/monitoring_example.py``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from typed_async_client import AsyncEvent, EventType, RequestContext, create_async_resilient_client
from typed_async_client.testing import LocalServer, refusing_url

logger = logging.getLogger(__name__)


class MetricsCollector:
    def __init__(self) -> None:
        self.stats: defaultdict[str, int] = defaultdict(int)
        self.response_times: list[float] = []

    async def on_success(self, event: AsyncEvent) -> None:
        self.stats["success"] += 1
        # The seed reads event.context.elapsed_time, which is measured when the callback runs,
        # so a busy dispatcher inflates it; total_time is measured when the request ended.
        self.response_times.append(event.data["total_time"])
        logger.info(f"✅ Succès: {event.context.request_id}")

    async def on_retry(self, event: AsyncEvent) -> None:
        self.stats["retry"] += 1
        logger.warning(f"🔄 Retry {event.context.current_attempt}: {event.context.request_id}")

    async def on_error(self, event: AsyncEvent) -> None:
        self.stats["error"] += 1
        logger.error(f"❌ Erreur définitive: {event.context.request_id}")

    def get_metrics(self) -> dict[str, float]:
        total = sum(self.stats.values())
        if total == 0:
            return {}

        avg_response_time = (
            sum(self.response_times) / len(self.response_times) if self.response_times else 0
        )

        # As in the seed, "total" counts events, so retries are part of the denominator.
        return {
            "total_requests": total,
            "success_rate": self.stats["success"] / total,
            "retry_rate": self.stats["retry"] / total,
            "error_rate": self.stats["error"] / total,
            "avg_response_time": avg_response_time,
        }


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

        # Wait for every request
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.wait_for_all_requests()

    # Events are delivered before the client finishes closing, so the counts are complete here.
    stats = metrics.get_metrics()
    print("📊 Métriques:")
    for key, value in stats.items():
        print(f"  {key}: {value}")
    return stats


async def main(
    base_url: str | None = None, requests: int = 10, failing: int = 2
) -> dict[str, float]:
    """
    Run ``requests`` monitored requests, the last ``failing`` of them to a refused port.

    Returns:
        The collector's metrics. With the default three retries per request, ``failing``
        refused requests produce ``3 * failing`` retries and ``failing`` errors.
    """
    if base_url is None:
        async with LocalServer() as server:
            return await main(server.url, requests, failing)
    with refusing_url() as refused:
        urls = [f"{base_url}/get" for _ in range(requests - failing)]
        urls += [f"{refused}/get" for _ in range(failing)]
        # Short backoff delays keep the demo quick; the default base_delay is 0.5 s.
        return await monitored_requests(urls, base_delay=0.02)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    print(asyncio.run(main()))
