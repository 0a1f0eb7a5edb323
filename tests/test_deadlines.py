"""
Deadlines: ``RequestContext(total_timeout=...)`` and the submitter's effective deadline bound
every attempt and every backoff sleep, no retry starts that cannot fit, each attempt's httpx
timeout shrinks to the time left, and the request ends with a ``DeadlineExceededError``.
"""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest
import trio
from anyio.abc import SocketAttribute, SocketStream

import typed_async_client
from typed_async_client import (
    AsyncEvent,
    AsyncResilientClient,
    DeadlineExceededError,
    EventType,
    RequestContext,
    RequestStatus,
    TypedAsyncClientError,
)
from typed_async_client.testing import LocalServer

pytestmark = pytest.mark.anyio

SEED = 20240607


@dataclass(frozen=True)
class SeededContext(RequestContext):
    """A context whose full-jitter backoff draws from a RNG seeded per attempt."""

    seed: int = SEED

    def backoff_delay(self, rand: Callable[[], float] | None = None) -> float:
        return RequestContext.backoff_delay(
            self, rand=random.Random(self.seed + self.current_attempt).random
        )


def _expected_delays(context: SeededContext, count: int) -> list[float]:
    """The backoff delays the seeded context draws before its first ``count`` retries."""
    delays = []
    for _ in range(count):
        delays.append(context.backoff_delay())
        context = context.next_attempt()
    return delays


def _deadline_error(result: Any) -> DeadlineExceededError:
    assert RequestStatus.ERROR == result.status
    assert isinstance(result.error, DeadlineExceededError)
    return result.error


# -- total_timeout ----------------------------------------------------------------------------


async def test_total_timeout_ends_a_retry_loop(refused_url: str) -> None:
    """total_timeout ends a long retry loop with a DeadlineExceededError chaining ConnectError."""
    context = RequestContext(max_retries=1000, base_delay=0.02, max_delay=0.02, total_timeout=0.5)
    with anyio.fail_after(15):
        async with AsyncResilientClient() as client:
            handle = await client.get(refused_url, context=context)
            with pytest.raises(DeadlineExceededError) as excinfo:
                await handle
            with pytest.raises(TimeoutError):
                await handle
    result = handle.result
    error = _deadline_error(result)
    assert error is excinfo.value
    assert isinstance(error, TimeoutError)
    assert isinstance(error, TypedAsyncClientError)
    assert isinstance(error.last_error, httpx.ConnectError)
    assert error.last_error is error.__cause__
    assert result is not None
    assert result.attempts == error.attempts
    assert 1 < result.attempts < 1001
    assert 0.5 == error.timeout
    assert handle.request_id == error.request_id
    assert "deadline" in str(error)
    assert "ConnectError" in str(error)
    assert client.stats().attempts == result.attempts


def test_deadline_error_is_public() -> None:
    """DeadlineExceededError is exported, and is both a library error and a TimeoutError."""
    assert "DeadlineExceededError" in typed_async_client.__all__
    assert issubclass(DeadlineExceededError, TypedAsyncClientError)
    assert issubclass(DeadlineExceededError, TimeoutError)


async def test_no_retry_starts_when_even_the_first_backoff_cannot_fit(refused_url: str) -> None:
    """When the first backoff alone passes the deadline, the request ends after one attempt."""
    context = SeededContext(max_retries=5, base_delay=5.0, max_delay=5.0, total_timeout=0.5)
    # The seeded draw is known: a sleep longer than the whole timeout.
    assert _expected_delays(context, 1)[0] >= 0.5
    retries: list[AsyncEvent] = []
    with anyio.fail_after(15):
        async with AsyncResilientClient() as client:
            client.add_event_callback(EventType.RETRY, retries.append)
            handle = await client.get(refused_url, context=context)
            result = await handle.wait_result()
        stats = client.stats()
    error = _deadline_error(result)
    assert (1, 1) == (result.attempts, error.attempts)
    assert isinstance(error.last_error, httpx.ConnectError)
    assert [] == retries
    assert (1, 0) == (stats.attempts, stats.retries)


async def test_backoff_sleeps_never_pass_the_deadline(refused_url: str) -> None:
    """Every recorded backoff delay fits before the deadline, and they sum to less than it."""
    timeout = 0.6
    context = SeededContext(
        max_retries=50, base_delay=0.25, max_delay=0.25, backoff_factor=1.0, total_timeout=timeout
    )
    retries: list[AsyncEvent] = []
    with anyio.fail_after(15):
        async with AsyncResilientClient() as client:
            client.add_event_callback(EventType.RETRY, retries.append)
            result = await (await client.get(refused_url, context=context)).wait_result()
        stats = client.stats()
    error = _deadline_error(result)
    delays = [event.data["delay"] for event in retries]
    # The seeded delays are drawn in order, so the recorded ones are a prefix of them.
    assert _expected_delays(context, len(delays)) == delays
    assert sum(delays) <= timeout
    assert len(delays) < 50
    assert len(delays) + 1 == result.attempts == error.attempts == stats.attempts
    assert len(delays) == stats.retries
    assert list(range(2, len(delays) + 2)) == [event.data["attempt"] for event in retries]


async def test_deadline_interrupts_a_stalled_attempt(server: LocalServer) -> None:
    """A response that never comes is cut at total_timeout, not at the longer httpx timeout."""
    context = RequestContext(max_retries=3, base_delay=0.0, total_timeout=0.3)
    with anyio.fail_after(15):
        async with AsyncResilientClient(timeout=10.0) as client:
            handle = await client.get(server.url_for("/delay/30"), context=context)
            with pytest.raises(DeadlineExceededError) as excinfo:
                await handle
        stats = client.stats()
    error = excinfo.value
    assert (1, 1) == (handle.result.attempts, error.attempts)  # type: ignore[union-attr]
    assert error.last_error is None
    assert error.__cause__ is None
    assert 0.3 == error.timeout
    assert (1, 0, 1) == (stats.attempts, stats.retries, stats.failed)
    assert 1 == server.hits["/delay/30"]


@asynccontextmanager
async def _drip_server(interval: float) -> AsyncIterator[str]:
    """A loopback server that announces a 10,000-byte body, then sends one byte per interval."""

    async def drip(stream: SocketStream) -> None:
        async with stream:
            try:
                await stream.receive()
                await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n")
                for _ in range(10000):
                    await stream.send(b"x")
                    await anyio.sleep(interval)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                return

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, drip)
        try:
            yield f"http://127.0.0.1:{port}/drip"
        finally:
            tg.cancel_scope.cancel()


async def test_deadline_interrupts_a_dripping_response() -> None:
    """A body dripping faster than httpx's read timeout still ends at the total_timeout."""
    context = RequestContext(max_retries=0, total_timeout=0.5)
    with anyio.fail_after(15):
        async with _drip_server(0.02) as url, AsyncResilientClient(timeout=2.0) as client:
            result = await (await client.get(url, context=context)).wait_result()
    error = _deadline_error(result)
    assert (1, None) == (error.attempts, error.last_error)


# -- inherited deadlines ----------------------------------------------------------------------


@pytest.mark.parametrize("scope_kind", ["move_on_after", "fail_after"])
async def test_inherited_deadline_ends_a_retry_loop(
    server: LocalServer, refused_url: str, scope_kind: str
) -> None:
    """A request submitted inside move_on_after/fail_after ends at that scope's deadline."""
    context = RequestContext(max_retries=1000, base_delay=0.02, max_delay=0.02)
    scope_factory = anyio.move_on_after if scope_kind == "move_on_after" else anyio.fail_after
    with anyio.fail_after(15):
        async with AsyncResilientClient() as client:
            with scope_factory(0.4) as scope:
                handle = await client.get(refused_url, context=context)
            assert not scope.cancel_called
            assert scope.deadline == handle.deadline
            with pytest.raises(DeadlineExceededError) as excinfo:
                await handle
            # The client's block goes on: the same client still serves requests.
            assert 200 == (await (await client.get(server.url))).status_code
    error = excinfo.value
    assert isinstance(error.last_error, httpx.ConnectError)
    assert 0.0 < error.timeout <= 0.4
    assert handle.result.attempts == error.attempts  # type: ignore[union-attr]
    assert 1 < error.attempts < 1001


async def test_inherited_deadline_interrupts_an_attempt(server: LocalServer) -> None:
    """A request submitted inside fail_after is cut in its attempt when the deadline passes."""
    with anyio.fail_after(15):
        async with AsyncResilientClient(timeout=10.0) as client:
            with anyio.fail_after(0.3):
                handle = await client.get(server.url_for("/delay/30"))
            result = await handle.wait_result()
    error = _deadline_error(result)
    assert (1, None) == (error.attempts, error.last_error)
    assert 1 == server.hits["/delay/30"]


async def test_opting_out_of_the_inherited_deadline(server: LocalServer) -> None:
    """With inherit_deadline=False a request outlives the scope it was submitted in."""
    with anyio.fail_after(15):
        async with AsyncResilientClient() as client:
            with anyio.move_on_after(0.2):
                inheriting = await client.get(server.url_for("/delay/0.6"))
                independent = await client.get(
                    server.url_for("/delay/0.6"),
                    context=RequestContext(inherit_deadline=False),
                )
            assert math.inf == independent.deadline
            with pytest.raises(DeadlineExceededError):
                await inheriting
            response = await independent
    assert 200 == response.status_code
    assert 2 == server.hits["/delay/0.6"]


async def test_the_earlier_of_total_timeout_and_inherited_deadline_wins(
    server: LocalServer,
) -> None:
    """The request's deadline is the earlier of its total_timeout and the caller's deadline."""
    with anyio.fail_after(15):
        async with AsyncResilientClient() as client:
            with anyio.move_on_after(5.0) as outer:
                short = await client.get(
                    server.url_for("/delay/30"), context=RequestContext(total_timeout=0.2)
                )
                long = await client.get(
                    server.url_for("/delay/30"), context=RequestContext(total_timeout=10.0)
                )
            assert outer.deadline == long.deadline
            assert short.deadline < long.deadline
            short_result = await short.wait_result()
            long.cancel()
    assert 0.2 == _deadline_error(short_result).timeout


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_move_on_after_deadline_is_inherited(server: LocalServer) -> None:
    """A request submitted inside trio.move_on_after ends at trio's deadline."""
    with anyio.fail_after(15):
        async with AsyncResilientClient(timeout=10.0) as client:
            with trio.move_on_after(0.3) as scope:
                handle = await client.get(server.url_for("/delay/30"))
            assert scope.deadline == handle.deadline
            with pytest.raises(DeadlineExceededError) as excinfo:
                await handle
            assert 200 == (await (await client.get(server.url))).status_code
    assert (1, None) == (excinfo.value.attempts, excinfo.value.last_error)
    assert 0.0 < excinfo.value.timeout <= 0.3


# -- per-attempt httpx timeouts ---------------------------------------------------------------


def _timeout_recorder() -> tuple[list[dict[str, float | None]], Callable[..., Any]]:
    seen: list[dict[str, float | None]] = []

    async def hook(request: httpx.Request) -> None:
        seen.append(dict(request.extensions["timeout"]))

    return seen, hook


@pytest.mark.parametrize(
    "request_timeout",
    [
        pytest.param({}, id="client-default"),
        pytest.param({"timeout": 30.0}, id="per-request"),
        pytest.param({"timeout": None}, id="per-request-none"),
    ],
)
async def test_attempt_timeout_shrinks_to_the_time_left(
    server: LocalServer, request_timeout: dict[str, Any]
) -> None:
    """Each httpx timeout of an attempt is at most the request's total_timeout."""
    seen, hook = _timeout_recorder()
    context = RequestContext(total_timeout=2.0)
    with anyio.fail_after(15):
        async with AsyncResilientClient(timeout=10.0, event_hooks={"request": [hook]}) as client:
            await (await client.get(server.url, context=context, **request_timeout))
    assert 1 == len(seen)
    assert {"connect", "read", "write", "pool"} == set(seen[0])
    for value in seen[0].values():
        assert value is not None
        assert 0.0 < value <= 2.0


async def test_attempt_timeout_is_untouched_without_a_deadline(server: LocalServer) -> None:
    """Without total_timeout nor inherited deadline the client's httpx timeout is used as is."""
    seen, hook = _timeout_recorder()
    context = RequestContext(inherit_deadline=False)
    with anyio.fail_after(15):
        async with AsyncResilientClient(timeout=10.0, event_hooks={"request": [hook]}) as client:
            await (await client.get(server.url, context=context))
    assert [{"connect": 10.0, "read": 10.0, "write": 10.0, "pool": 10.0}] == seen


async def test_attempt_timeouts_shrink_along_the_retries(refused_url: str) -> None:
    """Later attempts get smaller httpx timeouts, all within the total_timeout."""
    seen, hook = _timeout_recorder()
    context = RequestContext(max_retries=4, base_delay=0.02, max_delay=0.02, total_timeout=5.0)
    with anyio.fail_after(15):
        async with AsyncResilientClient(timeout=10.0, event_hooks={"request": [hook]}) as client:
            result = await (await client.get(refused_url, context=context)).wait_result()
    assert isinstance(result.error, httpx.ConnectError)
    assert 5 == len(seen)
    reads = [timeouts["read"] for timeouts in seen]
    assert all(read is not None and 0.0 < read <= 5.0 for read in reads)
    assert sorted(reads, reverse=True) == reads  # type: ignore[type-var]
    assert reads[-1] < reads[0]  # type: ignore[operator]


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [0, 0.0, -1, -0.5, math.nan, math.inf, -math.inf],
    ids=["zero", "zero-float", "negative", "negative-float", "nan", "inf", "-inf"],
)
def test_total_timeout_must_be_positive_and_finite(value: float) -> None:
    """Zero, negative, NaN or infinite total_timeout raises ValueError naming the field."""
    with pytest.raises(ValueError, match="total_timeout"):
        RequestContext(total_timeout=value)
    with pytest.raises(ValueError, match="total_timeout"):
        RequestContext().clone(total_timeout=value)


@pytest.mark.parametrize("value", ["1", True, [1.0]], ids=["str", "bool", "list"])
def test_total_timeout_of_the_wrong_type(value: object) -> None:
    """A total_timeout that is not a number raises TypeError naming the field."""
    with pytest.raises(TypeError, match="total_timeout"):
        RequestContext(total_timeout=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["yes", 1, None], ids=["str", "int", "none"])
def test_inherit_deadline_must_be_a_bool(value: object) -> None:
    """A non-bool inherit_deadline raises TypeError naming the field."""
    with pytest.raises(TypeError, match="inherit_deadline"):
        RequestContext(inherit_deadline=value)  # type: ignore[arg-type]


def test_valid_deadline_settings_are_kept() -> None:
    """A positive total_timeout and inherit_deadline=False are stored and survive retries."""
    context = RequestContext(total_timeout=1.5, inherit_deadline=False, max_retries=1)
    following = context.next_attempt()
    assert (1.5, False) == (following.total_timeout, following.inherit_deadline)
    assert (None, True) == (RequestContext().total_timeout, RequestContext().inherit_deadline)
