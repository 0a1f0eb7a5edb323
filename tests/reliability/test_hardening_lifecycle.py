"""
Hardening: one request cannot hurt another, nothing that reached a server is re-sent, close()
is safe from any task and any scope, late batch submissions are refused, the pool's limits
and timeout behave as httpx's do.

Each test reproduces a defect found by a hostile-user run, over real loopback sockets, on
asyncio and trio, bounded in time so that a hang fails it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import anyio
import httpx
import pytest

from typed_async_client import (
    AsyncEvent,
    AsyncResilientClient,
    CircuitBreaker,
    ClientStateError,
    EventType,
    RequestContext,
    RequestStatus,
    RetryPolicy,
)
from typed_async_client.testing import LocalServer, instant_retries

pytestmark = pytest.mark.anyio


@dataclasses.dataclass(frozen=True)
class BrokenContext(RequestContext):
    """A user's context subclass whose ``next_attempt`` has a bug."""

    def next_attempt(self) -> BrokenContext:
        raise RuntimeError("a bug in a context subclass")


# -- 1. whatever raises inside a request ends that request, once -----------------------------


async def test_an_exception_escaping_a_request_ends_only_that_request(
    server: LocalServer, refused_url: str
) -> None:
    """A bug raising inside one request ends it as ERROR, once; the others and the client go on."""
    finals: list[AsyncEvent] = []
    with anyio.fail_after(15):
        async with AsyncResilientClient() as client:
            for event_type in (EventType.SUCCESS, EventType.ERROR, EventType.CANCELLED):
                client.add_event_callback(event_type, finals.append)
            others = [await client.get(server.url_for("/delay/0.3")) for _ in range(5)]
            broken = await client.get(
                refused_url, context=BrokenContext(max_retries=2, base_delay=0.01)
            )
            result = await broken.wait_result()
            responses = [await handle for handle in others]
            follow_up = await (await client.get(server.url))
    assert RequestStatus.ERROR == result.status
    assert isinstance(result.error, RuntimeError)
    assert [200] * 5 == [r.status_code for r in responses]
    assert 200 == follow_up.status_code
    assert [broken.request_id] == [
        e.context.request_id for e in finals if e.event_type is EventType.ERROR
    ]
    assert 7 == len(finals)
    stats = client.stats()
    assert (6, 1, 0) == (stats.succeeded, stats.failed, stats.in_flight)


async def test_extensions_none_with_a_retry_policy(server: LocalServer) -> None:
    """``extensions=None``, which httpx accepts, works under a non-default policy."""
    with anyio.fail_after(10):
        async with AsyncResilientClient(retry_policy=RetryPolicy.transient()) as client:
            response = await (await client.get(server.url, extensions=None))
            other = await (await client.get(server.url))
    assert (200, 200) == (response.status_code, other.status_code)


async def test_a_circuit_breaker_and_an_odd_url_do_not_kill_the_client(
    server: LocalServer,
) -> None:
    """An IPv6 URL that httpx cannot parse is refused or ends its request only."""
    with anyio.fail_after(10):
        async with AsyncResilientClient(circuit_breaker=CircuitBreaker()) as client:
            try:
                handle = await client.get("http://[::1/")
            except ValueError:
                refused = True
            else:
                refused = False
                assert RequestStatus.ERROR == (await handle.wait_result()).status
            response = await (await client.get(server.url))
    assert 200 == response.status_code
    assert client.stats().started == (1 if refused else 2)


# -- 2. nothing that reached a server is re-sent ---------------------------------------------


@pytest.mark.parametrize("code", [303, 307])
@pytest.mark.parametrize("policy", [None, RetryPolicy.transient()], ids=["default", "transient"])
async def test_a_post_redirected_to_a_refusing_host_is_not_resent(
    server: LocalServer, refused_url: str, code: int, policy: RetryPolicy | None
) -> None:
    """The POST reached the first origin: the hop's ConnectError must not re-send it."""
    target = server.url_for(f"/redirect?to={refused_url}/next&code={code}")
    with anyio.fail_after(15), instant_retries():
        async with AsyncResilientClient(follow_redirects=True, retry_policy=policy) as client:
            handle = await client.post(
                target, content=b"pay", context=RequestContext(max_retries=3)
            )
            result = await handle.wait_result()
    assert isinstance(result.error, httpx.ConnectError)
    assert 1 == result.attempts
    assert 1 == server.hits["/redirect"]


async def test_a_post_through_your_own_http_client_is_not_resent(
    server: LocalServer, refused_url: str
) -> None:
    """With a user's httpx client too, the hop's ConnectError does not re-send the POST."""
    target = server.url_for(f"/redirect?to={refused_url}/next&code=307")
    with anyio.fail_after(15), instant_retries():
        async with (
            httpx.AsyncClient(follow_redirects=True) as http_client,
            AsyncResilientClient(http_client=http_client) as client,
        ):
            handle = await client.post(
                target, content=b"pay", context=RequestContext(max_retries=3)
            )
            result = await handle.wait_result()
    assert isinstance(result.error, httpx.ConnectError)
    assert 1 == server.hits["/redirect"]


class SecondLegElsewhere(httpx.Auth):
    """An auth flow whose second leg, like digest auth's, resends the same request object."""

    def __init__(self, url: str) -> None:
        self.url = httpx.URL(url)

    def auth_flow(self, request: httpx.Request) -> Any:
        yield request
        request.url = self.url
        yield request


@pytest.mark.parametrize("policy", [None, RetryPolicy.transient()], ids=["default", "transient"])
async def test_a_post_whose_auth_challenge_leg_is_refused_is_not_resent(
    server: LocalServer, refused_url: str, policy: RetryPolicy | None
) -> None:
    """The first leg of an auth flow reached the server: the second leg's error re-sends nothing."""
    with anyio.fail_after(15), instant_retries():
        async with AsyncResilientClient(retry_policy=policy) as client:
            handle = await client.post(
                server.url_for("/login"),
                content=b"pay",
                auth=SecondLegElsewhere(f"{refused_url}/login"),
                context=RequestContext(max_retries=3),
            )
            result = await handle.wait_result()
    assert isinstance(result.error, httpx.ConnectError)
    assert 1 == server.hits["/login"]


async def test_an_idempotent_get_redirected_to_a_refusing_host_is_retried(
    server: LocalServer, refused_url: str
) -> None:
    """The transient policy may re-send a GET (idempotent) after a failed hop, as it allows."""
    target = server.url_for(f"/redirect?to={refused_url}/next&code=302")
    with anyio.fail_after(15), instant_retries():
        async with AsyncResilientClient(
            follow_redirects=True, retry_policy=RetryPolicy.transient()
        ) as client:
            result = await (
                await client.get(target, context=RequestContext(max_retries=2))
            ).wait_result()
    assert isinstance(result.error, httpx.ConnectError)
    assert 3 == result.attempts
    assert 3 == server.hits["/redirect"]


async def test_a_refused_first_request_is_still_retried(refused_url: str) -> None:
    """A POST whose own connection was refused never left: the default policy retries it."""
    with anyio.fail_after(15), instant_retries():
        async with AsyncResilientClient(follow_redirects=True) as client:
            handle = await client.post(
                refused_url, content=b"x", context=RequestContext(max_retries=2)
            )
            result = await handle.wait_result()
    assert isinstance(result.error, httpx.ConnectError)
    assert 3 == result.attempts


# -- 3. close() from any task and any scope --------------------------------------------------


async def test_close_in_a_shutdown_task_while_the_block_exits(server: LocalServer) -> None:
    """``async with`` exits cleanly while close() drains in another task."""
    with anyio.fail_after(10):
        async with anyio.create_task_group() as outer, AsyncResilientClient() as client:
            handle = await client.get(server.url_for("/delay/0.3"))
            outer.start_soon(client.close)
            await anyio.sleep(0.05)  # the shutdown task is now waiting for the request
            assert client.is_closed
    assert handle.result is not None
    assert RequestStatus.SUCCESS == handle.result.status
    assert 0 == client.stats().in_flight
    with pytest.raises(ClientStateError):
        await client.get(server.url)


async def test_the_owner_cancelled_while_another_task_closes(server: LocalServer) -> None:
    """Cancelled while a shutdown task drains, the block still exits the task group cleanly."""
    with anyio.fail_after(10):
        async with anyio.create_task_group() as outer:
            with anyio.move_on_after(0.3) as scope:
                async with AsyncResilientClient() as client:
                    handle = await client.get(server.url_for("/delay/5"))
                    outer.start_soon(client.close)
                    await anyio.sleep(0.05)  # the shutdown task now waits for the request
    assert scope.cancelled_caught
    assert handle.result is not None
    assert RequestStatus.CANCELLED == handle.result.status
    assert 0 == client.stats().in_flight
    assert client.is_closed


async def test_close_from_an_event_callback(server: LocalServer) -> None:
    """close() awaited inside a callback returns; the dispatcher does not wait on itself."""
    closed: list[bool] = []
    returned = anyio.Event()

    async def shut_down(event: AsyncEvent) -> None:
        await client.close()
        closed.append(client.is_closed)
        returned.set()

    with anyio.fail_after(5):
        async with AsyncResilientClient() as client:
            client.add_event_callback(EventType.SUCCESS, shut_down)
            response = await (await client.get(server.url))
            await returned.wait()
    assert 200 == response.status_code
    assert [True] == closed
    assert 0 == client.stats().callback_errors


async def test_two_closers_both_return_after_the_drain(server: LocalServer) -> None:
    """A second close() while the first drains waits for it, then both return."""
    order: list[str] = []

    async def closer(name: str) -> None:
        await client.close()
        order.append(name)

    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            handle = await client.get(server.url_for("/delay/0.3"))
            async with anyio.create_task_group() as tg:
                tg.start_soon(closer, "first")
                await anyio.sleep(0.05)
                tg.start_soon(closer, "second")
            assert handle.done()
    assert ["first", "second"] == order


async def test_close_inside_fail_after_after_a_manual_open_is_refused_cleanly(
    server: LocalServer,
) -> None:
    """close() in a scope entered after open() raises ClientStateError and changes nothing."""
    with anyio.fail_after(10):
        client = AsyncResilientClient()
        await client.open()
        handle = await client.get(server.url)
        with anyio.fail_after(5), pytest.raises(ClientStateError, match="grace"):
            await client.close()
        assert not client.is_closed
        response = await (await client.get(server.url))
        await client.close(grace=5)
    assert 200 == response.status_code
    assert handle.done()
    assert client.is_closed


async def test_close_of_a_manual_client_from_another_task_is_refused(
    server: LocalServer,
) -> None:
    """Another task's close() of a client opened by hand raises, and the owner still closes it."""
    errors: list[BaseException] = []

    async def shutdown() -> None:
        try:
            await client.close()
        except ClientStateError as exc:
            errors.append(exc)

    with anyio.fail_after(10):
        client = AsyncResilientClient()
        await client.open()
        async with anyio.create_task_group() as tg:
            tg.start_soon(shutdown)
        response = await (await client.get(server.url))
        await client.close()
    assert 1 == len(errors)
    assert 200 == response.status_code
    assert client.is_closed


# -- 4. a late batch submission --------------------------------------------------------------


async def test_a_submission_waiting_when_the_batch_ends_is_refused(server: LocalServer) -> None:
    """A task waiting for a batch slot when the block exits gets ClientStateError, no ghost."""
    refused: list[BaseException] = []

    async def late(batch: Any) -> None:
        try:
            await batch.get(server.url)
        except ClientStateError as exc:
            refused.append(exc)

    with anyio.fail_after(10):
        async with AsyncResilientClient() as client:
            async with anyio.create_task_group() as tg, client.batch(max_concurrency=1) as batch:
                first = await batch.get(server.url_for("/delay/0.3"))
                tg.start_soon(late, batch)
                await anyio.sleep(0.05)  # `late` now waits for the batch's only slot
            assert first.done()
            stats = client.stats()
            follow_up = await (await client.get(server.url))
    assert 1 == len(refused)
    assert (1, 0) == (stats.started, stats.in_flight)
    assert 200 == follow_up.status_code
    assert 1 == batch.submitted


# -- 5. the pool's limits and timeout --------------------------------------------------------


@pytest.mark.parametrize("max_connections", [0, -1])
def test_a_pool_without_connections_is_refused(max_connections: int) -> None:
    """``max_connections`` below 1 is refused at construction, naming the argument."""
    with pytest.raises(ValueError, match=r"limits\.max_connections must be >= 1"):
        AsyncResilientClient(limits=httpx.Limits(max_connections=max_connections))


async def test_the_pool_timeout_bounds_the_wait_for_a_connection(server: LocalServer) -> None:
    """Every connection busy: the next request fails with httpx.PoolTimeout, as httpx's would."""
    limits = httpx.Limits(max_connections=1)
    timeout = httpx.Timeout(5.0, pool=0.2)
    with anyio.fail_after(10):
        async with AsyncResilientClient(limits=limits, timeout=timeout) as client:
            busy = await client.get(server.url_for("/delay/1.0"))
            for _ in range(100):  # until the busy request holds the only connection
                if server.hits["/delay/1.0"]:
                    break
                await anyio.sleep(0.01)
            waiting = await client.get(server.url_for("/second"))
            result = await waiting.wait_result()
            first = await busy
    assert isinstance(result.error, httpx.PoolTimeout)
    assert 1 == result.attempts
    assert 200 == first.status_code
    assert 0 == server.hits["/second"]


# -- found by the property test ---------------------------------------------------------------


async def test_close_from_a_callback_while_another_close_runs(server: LocalServer) -> None:
    """A callback's close() does not wait for a closer that waits for the callback's dispatcher."""

    async def close_on_success(event: AsyncEvent) -> None:
        await client.close()

    with anyio.fail_after(5):
        async with AsyncResilientClient() as client:
            client.add_event_callback(EventType.SUCCESS, close_on_success)
            await client.get(server.url_for("/delay/0.1"))
        # Leaving the block is the first closer; the callback's close() is the second.
    assert 0 == client.stats().events_dropped
    assert (1, 0) == (client.stats().succeeded, client.stats().callback_errors)


async def test_a_submission_from_a_cancelled_scope_raises_its_cancellation(
    server: LocalServer,
) -> None:
    """Submitting inside a cancelled scope raises there; nothing is scheduled, nothing fails."""
    with anyio.fail_after(5):
        async with AsyncResilientClient() as client:
            with anyio.CancelScope() as scope:
                scope.cancel()
                await client.get(server.url_for("/never"))
            async with client.batch() as batch:
                with anyio.CancelScope() as batch_scope:
                    batch_scope.cancel()
                    await batch.get(server.url_for("/never"))
            stats = client.stats()
    assert scope.cancelled_caught
    assert batch_scope.cancelled_caught
    assert (0, 0) == (stats.started, stats.failed)
    assert 0 == server.hits["/never"]


async def test_an_event_a_cancelled_request_waited_to_queue_is_counted(
    server: LocalServer,
) -> None:
    """overflow="block": the event of a request cancelled while it waits for room is counted."""
    with anyio.fail_after(5):
        async with (
            AsyncResilientClient() as client,
            client.events(buffer=1, overflow="block") as stream,
        ):
            first = await client.get(server.url_for("/one"))  # its STARTED fills the buffer
            for _ in range(100):
                if stream.pending:
                    break
                await anyio.sleep(0.01)
            second = await client.get(server.url_for("/two"))  # its STARTED waits for room
            await anyio.sleep(0.05)
            second.cancel()
            result = await second.wait_result()
            stats = client.stats()
            received = stream.pending
            await first.wait_result()
    assert RequestStatus.CANCELLED == result.status
    assert stats.events_emitted == received + stream.dropped
    assert stats.events_dropped >= stream.dropped


async def test_a_deadline_passed_while_waiting_for_admission_means_no_attempt(
    server: LocalServer,
) -> None:
    """A request whose deadline passed while it waited for a slot ends with no attempt."""
    with anyio.fail_after(5):
        async with AsyncResilientClient(max_concurrency=1) as client:
            blocker = await client.get(server.url_for("/delay/0.3"))
            late = await client.get(
                server.url_for("/late"), context=RequestContext(total_timeout=0.1)
            )
            result = await late.wait_result()
            await blocker.wait_result()
    assert (0, ()) == (result.attempts, result.history)
    assert 0 == server.hits["/late"]
    assert RequestStatus.ERROR == result.status
