"""
Many requests at once: isolation, limits, and a pool that cancellations cannot poison.
"""

from __future__ import annotations

import random

import anyio
import httpx
import pytest

from typed_async_client import (
    AsyncResilientClient,
    EventType,
    RequestContext,
    RequestHandle,
    RequestStatus,
    current_context,
)
from typed_async_client.testing import LocalServer

pytestmark = pytest.mark.anyio


async def test_two_hundred_concurrent_requests(server: LocalServer) -> None:
    """200 concurrent requests each end with their own successful result."""
    with anyio.fail_after(30):
        async with AsyncResilientClient() as client:
            handles = [
                await client.get(
                    server.url_for(f"/n/{i}"), context=RequestContext(request_id=f"n{i}")
                )
                for i in range(200)
            ]
            results = await client.wait_for_all_requests()
        assert {f"n{i}" for i in range(200)} == set(results)
        assert all(r.is_success for r in results.values())
        assert [f"/n/{i}" for i in range(200)] == [(await h).json()["path"] for h in handles]
        assert 200 == client.stats().succeeded


async def test_attempts_never_exceed_the_pool(server: LocalServer) -> None:
    """With max_connections=4, no more than 4 connections ever reach the server."""
    with anyio.fail_after(30):
        limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
        async with AsyncResilientClient(limits=limits) as client:
            for _ in range(40):
                await client.get(server.url_for("/delay/0.01"))
            results = await client.wait_for_all_requests()
        assert 40 == len(results)
        assert all(r.is_success for r in results.values())
        assert 4 >= server.connections


async def test_random_cancellations_do_not_poison_the_pool(server: LocalServer) -> None:
    """16 requests over max_connections=4, cancelled at random for 3 s, leave a working pool.

    Without the client's attempt limiter, the same load leaves httpx's pool stuck and every
    later request raises PoolTimeout (RELIABILITY.md, fact 1; httpcore issue #1093).
    """
    rng = random.Random(1093)
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    timeout = httpx.Timeout(5.0, pool=1.0)
    paths = ["/close", "/fast", "/delay/0.005"]

    async def cancel_later(handle: RequestHandle, delay: float) -> None:
        await anyio.sleep(delay)
        handle.cancel()

    with anyio.fail_after(30):
        async with AsyncResilientClient(limits=limits, timeout=timeout) as client:
            with anyio.move_on_after(3):
                for _round in range(500):
                    async with anyio.create_task_group() as tg:
                        for _ in range(16):
                            handle = await client.get(server.url_for(rng.choice(paths)))
                            tg.start_soon(cancel_later, handle, rng.uniform(0, 0.01))
                    await client.wait_for_all_requests()
            await client.wait_for_all_requests()
            statuses = {r.status for r in client.get_all_results().values()}
            assert RequestStatus.CANCELLED in statuses
            follow_up = [await client.get(server.url_for("/after")) for _ in range(8)]
            responses = [await h for h in follow_up]
        assert [200] * 8 == [r.status_code for r in responses]


async def test_each_request_sees_its_own_context(server: LocalServer) -> None:
    """current_context() inside concurrent requests returns each request's own context."""
    seen: dict[str, str] = {}

    async def hook(request: httpx.Request) -> None:
        context = current_context()
        assert context is not None
        seen[request.url.path] = context.request_id

    with anyio.fail_after(30):
        async with AsyncResilientClient(event_hooks={"request": [hook]}) as client:
            for i in range(20):
                await client.get(
                    server.url_for(f"/ctx/{i}"), context=RequestContext(request_id=f"c{i}")
                )
            await client.wait_for_all_requests()
    assert {f"/ctx/{i}": f"c{i}" for i in range(20)} == seen


async def test_mixed_outcomes_are_all_recorded(server: LocalServer, refused_url: str) -> None:
    """Successes, failures and cancellations in one burst each get exactly one result and event."""
    finals: list[tuple[str, EventType]] = []
    with anyio.fail_after(30):
        async with AsyncResilientClient() as client:
            for kind in (EventType.SUCCESS, EventType.ERROR, EventType.CANCELLED):
                client.add_event_callback(
                    kind, lambda e: finals.append((e.context.request_id, e.event_type))
                )
            fast = RequestContext(max_retries=1, base_delay=0.001)
            for i in range(10):
                await client.get(server.url_for("/ok"), context=fast.clone(request_id=f"ok{i}"))
                await client.get(refused_url, context=fast.clone(request_id=f"bad{i}"))
                slow = await client.get(
                    server.url_for("/delay/30"), context=fast.clone(request_id=f"cx{i}")
                )
                slow.cancel()
            results = await client.wait_for_all_requests()
    assert 30 == len(results)
    assert 30 == len(finals)
    assert 30 == len({rid for rid, _ in finals})
    expected = {"ok": EventType.SUCCESS, "bad": EventType.ERROR, "cx": EventType.CANCELLED}
    for rid, event_type in finals:
        assert expected[rid.rstrip("0123456789")] == event_type
    assert 2 * 10 == sum(r.attempts for r in results.values() if r.request_id.startswith("bad"))
