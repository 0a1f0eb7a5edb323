"""
Event subscriptions: ``async with client.events(*types, buffer=N) as stream: async for ...``.

Two subscribers and a callback watch the same requests:

* ``log_everything`` subscribes to every event type with a roomy buffer and prints each event
  as it arrives;
* ``watch_retries`` subscribes to ``RETRY`` only, with a buffer of 2, and is busy elsewhere
  until the requests are over (a consumer slower than the requests). Its buffer overflows: it
  keeps the two *newest* events and ``stream.dropped`` counts the ones it lost. The requests
  never waited for it (``overflow="drop_oldest"``, the default; ``overflow="block"`` would make
  them wait instead);
* a callback registered with ``add_event_callback`` receives the ``ERROR`` events beside them.

Subscriptions are a broadcast: every subscriber gets every event of its types. Both subscriber
tasks live in a task group of this example, and their ``async for`` loops end on their own when
the client closes, once they have read what was already queued.

Four requests go to a local server and succeed; three go to a loopback port that refuses
connections, so they are retried three times (``RETRY`` events), then fail (``ERROR`` events).
Run it with ``python examples/event_stream.py [--backend trio]``.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence
from typing import Any

import anyio
from anyio.abc import TaskStatus

from typed_async_client import AsyncEvent, AsyncResilientClient, EventType, RequestContext
from typed_async_client.testing import LocalServer, refusing_url


async def log_everything(
    client: AsyncResilientClient,
    seen: list[AsyncEvent],
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Print every event until the client closes."""
    async with client.events(buffer=1_000) as stream:
        task_status.started()  # subscribed: no event emitted from now on is missed
        async for event in stream:
            seen.append(event)
            print(f"   [all]    {event.context.request_id:<7} {event.event_type}")
    print(f"   [all]    stream ended after {len(seen)} events, dropped {stream.dropped}")


async def watch_retries(
    client: AsyncResilientClient,
    busy: anyio.Event,
    outcome: dict[str, Any],
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Read RETRY events only, late: the small buffer keeps the newest two."""
    async with client.events(EventType.RETRY, buffer=2) as stream:
        task_status.started()
        await busy.wait()  # busy elsewhere while the requests run
        received = [event async for event in stream]
    for event in received:
        print(f"   [retry]  {event.context.request_id} attempt {event.data['attempt']}")
    print(f"   [retry]  stream ended: {len(received)} received, {stream.dropped} dropped")
    outcome["retry_received"] = len(received)
    outcome["retry_dropped"] = stream.dropped


async def watch(base_url: str, refused: str) -> dict[str, Any]:
    seen: list[AsyncEvent] = []
    errors: list[str] = []
    outcome: dict[str, Any] = {}
    busy = anyio.Event()

    def on_error(event: AsyncEvent) -> None:
        errors.append(event.context.request_id)

    # The subscribers' task group encloses the client: the client closes first, which ends
    # their streams, so the task group can then finish.
    async with anyio.create_task_group() as tg, AsyncResilientClient() as client:
        client.add_event_callback(EventType.ERROR, on_error)
        await tg.start(log_everything, client, seen)
        await tg.start(watch_retries, client, busy, outcome)
        for i in range(4):
            await client.get(f"{base_url}/items/{i}", context=RequestContext(request_id=f"ok-{i}"))
        for i in range(3):
            context = RequestContext(request_id=f"down-{i}", max_retries=3, base_delay=0.02)
            await client.get(f"{refused}/items", context=context)
        await client.wait_for_all_requests()
        busy.set()
        stats = client.stats()
    # Here the client is closed, both streams have ended and the callback got every event.
    by_request: dict[str, list[str]] = {}
    for event in seen:
        by_request.setdefault(event.context.request_id, []).append(str(event.event_type))
    print(f"callback saw errors of {', '.join(sorted(errors))}")
    print(f"stats: {stats.events_emitted} events emitted, {stats.events_dropped} dropped")
    return {
        **outcome,
        "counts": dict(Counter(str(event.event_type) for event in seen)),
        "by_request": by_request,
        "callback_errors": sorted(errors),
        "events_emitted": stats.events_emitted,
        "events_dropped": stats.events_dropped,
    }


async def main(base_url: str | None = None) -> dict[str, Any]:
    """
    Watch four successful and three refused requests with two subscribers and a callback.

    Returns:
        ``counts`` (events by type seen by the all-events subscriber), ``by_request`` (each
        request's event types, in order), ``retry_received`` and ``retry_dropped`` (the
        RETRY-only subscriber's), ``callback_errors`` (request ids the ERROR callback got),
        ``events_emitted`` and ``events_dropped`` (from ``client.stats()``).
    """
    if base_url is None:
        async with LocalServer() as server:
            return await main(server.url)
    with refusing_url() as refused:
        return await watch(base_url, refused)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python examples/event_stream.py",
        description="Two event subscribers and a callback watch successes and retries.",
    )
    parser.add_argument(
        "--backend", choices=["asyncio", "trio"], default="asyncio", help="event loop (asyncio)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    outcome = anyio.run(main, backend=args.backend)
    counts = ", ".join(f"{count} {kind}" for kind, count in outcome["counts"].items())
    print(f"all-events subscriber: {counts}")
