"""
The retry budget and the circuit breaker: their state machines on a fake clock, then their
effect during a real outage of the loopback server (``stop_listening``), on asyncio and trio.
"""

from __future__ import annotations

import math
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from typed_async_client import (
    AsyncEvent,
    AsyncResilientClient,
    Backoff,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    EventType,
    RequestContext,
    RequestStatus,
    RetryAfterTooLongError,
    RetryBudget,
    RetryPolicy,
)
from typed_async_client.testing import LocalServer

pytestmark = pytest.mark.anyio

#: Deterministic property tests: the same examples on every run and every machine.
PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=200)

ORIGIN = ("http", "127.0.0.1", 8080)
OTHER = ("http", "127.0.0.1", 8081)

CIRCUIT_EVENTS = (
    EventType.CIRCUIT_OPENED,
    EventType.CIRCUIT_HALF_OPEN,
    EventType.CIRCUIT_CLOSED,
)


def _once() -> RequestContext:
    """One attempt per request, so that each request is one breaker outcome (a fresh id)."""
    return RequestContext(max_retries=0)


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _record(client: AsyncResilientClient, *event_types: EventType) -> list[AsyncEvent]:
    """Collect the client's events of ``event_types`` (complete once the client is closed)."""
    seen: list[AsyncEvent] = []
    for event_type in event_types:
        client.add_event_callback(event_type, seen.append)
    return seen


def _origin(server: LocalServer) -> tuple[str, str, int]:
    return ("http", "127.0.0.1", server.port)


# -- RetryBudget ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("min_per_second", "max_tokens", "expected"),
    [(10.0, 100.0, 10.0), (0.0, 10.0, 0.0), (50.0, 5.0, 5.0)],
)
def test_budget_starts_with_min_of_max_tokens_and_min_per_second(
    min_per_second: float, max_tokens: float, expected: float
) -> None:
    """The bucket starts with min(max_tokens, min_per_second) tokens."""
    budget = RetryBudget(
        0.2, min_per_second=min_per_second, max_tokens=max_tokens, clock=FakeClock()
    )
    assert expected == budget.tokens


def test_budget_defaults() -> None:
    """The defaults: 20 % of requests, 10 tokens a second, at most 100 tokens."""
    budget = RetryBudget(clock=FakeClock())
    assert (0.2, 10.0, 100.0, 10.0) == (
        budget.ratio,
        budget.min_per_second,
        budget.max_tokens,
        budget.tokens,
    )


def test_budget_deposits_and_spends() -> None:
    """Each request deposits ratio tokens; a retry spends one; short of one it is refused."""
    budget = RetryBudget(0.25, min_per_second=0.0, max_tokens=10.0, clock=FakeClock())
    assert not budget.try_spend()
    for _ in range(4):
        budget.deposit()
    assert (4, 1.0) == (budget.deposits, budget.tokens)
    assert budget.try_spend()
    assert 0.0 == budget.tokens
    assert not budget.try_spend()
    budget.deposit()
    assert not budget.try_spend()
    assert (1, 3, 5) == (budget.retries_allowed, budget.retries_refused, budget.deposits)


def test_budget_is_capped_at_max_tokens() -> None:
    """Deposits never fill the bucket past max_tokens."""
    budget = RetryBudget(0.5, min_per_second=0.0, max_tokens=3.0, clock=FakeClock())
    for _ in range(100):
        budget.deposit()
    assert 3.0 == budget.tokens
    assert [True, True, True, False] == [budget.try_spend() for _ in range(4)]


def test_budget_refills_with_min_per_second() -> None:
    """min_per_second tokens trickle in with time, up to max_tokens."""
    clock = FakeClock()
    budget = RetryBudget(0.0, min_per_second=2.0, max_tokens=10.0, clock=clock)
    assert [True, True, False] == [budget.try_spend() for _ in range(3)]
    clock.advance(0.25)
    assert 0.5 == budget.tokens
    assert not budget.try_spend()
    clock.advance(0.25)
    assert budget.try_spend()
    clock.advance(1000.0)
    assert 10.0 == budget.tokens


def test_budget_ignores_a_clock_going_backwards() -> None:
    """A clock that steps back neither adds nor removes tokens."""
    clock = FakeClock()
    budget = RetryBudget(0.0, min_per_second=1.0, max_tokens=10.0, clock=clock)
    assert budget.try_spend()
    clock.advance(-50.0)
    assert 0.0 == budget.tokens
    clock.advance(0.5)
    assert 0.5 == budget.tokens


def test_budget_ratio_zero_never_deposits() -> None:
    """A ratio of 0 with no trickle refuses every retry."""
    budget = RetryBudget(0.0, min_per_second=0.0, max_tokens=1.0, clock=FakeClock())
    for _ in range(10):
        budget.deposit()
    assert [False] * 3 == [budget.try_spend() for _ in range(3)]
    assert 3 == budget.retries_refused


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"ratio": -0.1}, "ratio", id="ratio-negative"),
        pytest.param({"ratio": math.nan}, "ratio", id="ratio-nan"),
        pytest.param({"ratio": math.inf}, "ratio", id="ratio-inf"),
        pytest.param({"min_per_second": -1.0}, "min_per_second", id="mps-negative"),
        pytest.param({"min_per_second": math.nan}, "min_per_second", id="mps-nan"),
        pytest.param({"max_tokens": 0}, "max_tokens", id="max-tokens-zero"),
        pytest.param({"max_tokens": -5.0}, "max_tokens", id="max-tokens-negative"),
        pytest.param({"max_tokens": math.inf}, "max_tokens", id="max-tokens-inf"),
    ],
)
def test_budget_rejects_bad_values(kwargs: dict[str, Any], field: str) -> None:
    """Negative, NaN or infinite values and max_tokens of 0 are ValueErrors naming the field."""
    with pytest.raises(ValueError, match=field):
        RetryBudget(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"ratio": "0.2"}, "ratio", id="ratio-str"),
        pytest.param({"min_per_second": True}, "min_per_second", id="mps-bool"),
        pytest.param({"max_tokens": None}, "max_tokens", id="max-tokens-None"),
    ],
)
def test_budget_rejects_non_numbers(kwargs: dict[str, Any], field: str) -> None:
    """A value that is not a number is a TypeError naming the field."""
    with pytest.raises(TypeError, match=field):
        RetryBudget(**kwargs)


def test_budget_repr_shows_its_settings() -> None:
    """The repr shows the ratio, the trickle, the cap and the tokens left."""
    budget = RetryBudget(0.5, min_per_second=1.0, max_tokens=4.0, clock=FakeClock())
    assert "RetryBudget(ratio=0.5, min_per_second=1.0, max_tokens=4.0, tokens=1.00)" == repr(budget)


operations = st.lists(
    st.one_of(
        st.just(("deposit", 0.0)),
        st.just(("spend", 0.0)),
        st.tuples(st.just("advance"), st.floats(min_value=-1.0, max_value=5.0)),
    ),
    max_size=200,
)


@PROPERTY
@given(
    ratio=st.floats(min_value=0.0, max_value=2.0),
    min_per_second=st.floats(min_value=0.0, max_value=20.0),
    max_tokens=st.floats(min_value=0.01, max_value=50.0),
    ops=operations,
)
def test_budget_bounds_retries(
    ratio: float, min_per_second: float, max_tokens: float, ops: list[tuple[str, float]]
) -> None:
    """retries <= ratio * requests + min_per_second * seconds + initial fill, tokens in range."""
    clock = FakeClock()
    budget = RetryBudget(ratio, min_per_second=min_per_second, max_tokens=max_tokens, clock=clock)
    initial = min(max_tokens, min_per_second)
    elapsed = 0.0
    spends = 0
    for name, value in ops:
        if name == "deposit":
            budget.deposit()
        elif name == "spend":
            spends += 1
            budget.try_spend()
        else:
            clock.advance(value)
            elapsed += max(0.0, value)
        assert -1e-9 <= budget.tokens <= max_tokens
    bound = ratio * budget.deposits + min_per_second * elapsed + initial
    assert budget.retries_allowed <= bound + 1e-6
    assert spends == budget.retries_allowed + budget.retries_refused


# -- RetryBudget during an outage -------------------------------------------------------------


async def test_budget_caps_attempts_during_a_full_outage(server: LocalServer) -> None:
    """100 requests to a server that is down make at most 1.2 attempts each, not 6."""
    ratio, requests, max_retries = 0.2, 100, 5
    budget = RetryBudget(ratio, min_per_second=0.0, max_tokens=10.0)
    await server.stop_listening()
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_budget=budget) as client:
            exhausted = _record(client, EventType.BUDGET_EXHAUSTED)
            handles = [
                await client.get(
                    server.url_for(f"/item/{i}"),
                    context=RequestContext(
                        max_retries=max_retries, base_delay=0.001, max_delay=0.002
                    ),
                )
                for i in range(requests)
            ]
            results = [await handle.wait_result() for handle in handles]
        stats = client.stats()
    # The docstring's bound: retries <= ratio * requests + min_per_second * seconds + initial
    # fill, with min_per_second = 0 and an initial fill of min(max_tokens, 0) = 0.
    bound = requests + ratio * requests + 0.0 + min(10.0, 0.0)
    assert stats.attempts <= bound
    assert stats.attempts <= 1.2 * requests
    assert requests + budget.retries_allowed == stats.attempts
    assert budget.retries_allowed == stats.retries
    assert requests == budget.deposits
    assert stats.retries_refused == budget.retries_refused
    assert stats.retries_refused > 0
    assert 0 == stats.events_dropped
    assert stats.retries_refused == len(exhausted)
    assert all(isinstance(event.error, httpx.ConnectError) for event in exhausted)
    assert {RequestStatus.ERROR} == {result.status for result in results}
    assert all(isinstance(result.error, httpx.ConnectError) for result in results)
    assert sum(result.attempts for result in results) == stats.attempts
    assert 0 == sum(server.hits.values())


async def test_budget_refusal_returns_the_last_response(server: LocalServer) -> None:
    """A status retry refused by the budget ends the request with that response."""
    budget = RetryBudget(0.0, min_per_second=0.0, max_tokens=1.0)
    policy = RetryPolicy.transient(backoff=Backoff(base=0.001, cap=0.002))
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_budget=budget, retry_policy=policy) as client:
            exhausted = _record(client, EventType.BUDGET_EXHAUSTED)
            handle = await client.get(server.url_for("/sequence/k?codes=503,200"))
            result = await handle.wait_result()
    assert (RequestStatus.SUCCESS, 503, 1) == (result.status, result.status_code, result.attempts)
    assert (1, 1) == (client.stats().retries_refused, len(exhausted))
    assert result.request_id == exhausted[0].context.request_id
    assert [(503, 0.0)] == [(a.status_code, a.sleep) for a in result.history]


async def test_budget_lets_retries_through_while_it_has_tokens(server: LocalServer) -> None:
    """With tokens in the bucket, retries go on as the policy says."""
    budget = RetryBudget(1.0, min_per_second=0.0, max_tokens=10.0)
    policy = RetryPolicy.transient(backoff=Backoff(base=0.001, cap=0.002))
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_budget=budget, retry_policy=policy) as client:
            response = await (await client.get(server.url_for("/sequence/k?codes=503,200")))
    assert 200 == response.status_code
    assert (1, 0, 0.0) == (budget.retries_allowed, budget.retries_refused, budget.tokens)


async def test_budget_is_not_spent_when_no_retry_happens(server: LocalServer) -> None:
    """A request ended by a too-long Retry-After leaves the budget untouched."""
    budget = RetryBudget(1.0, min_per_second=0.0, max_tokens=10.0)
    policy = RetryPolicy.transient(max_retry_after=5.0)
    with anyio.fail_after(15):
        async with AsyncResilientClient(retry_budget=budget, retry_policy=policy) as client:
            url = server.url_for("/sequence/k?codes=503&retry_after=3600")
            result = await (await client.get(url)).wait_result()
    assert isinstance(result.error, RetryAfterTooLongError)
    assert (0, 0) == (client.stats().retries, budget.retries_allowed)
    assert 1.0 == budget.tokens


# -- CircuitBreaker ---------------------------------------------------------------------------


def _fail(breaker: CircuitBreaker, times: int, origin: tuple[str, str, int] = ORIGIN) -> list[Any]:
    return [breaker.record(origin, failed=True, probe=False) for _ in range(times)]


def test_breaker_opens_after_consecutive_failures() -> None:
    """failure_threshold consecutive failures open the circuit; fewer leave it closed."""
    breaker = CircuitBreaker(failure_threshold=3, clock=FakeClock())
    assert (True, None, 0.0) == breaker.acquire(ORIGIN)
    assert [None, None] == _fail(breaker, 2)
    assert CircuitState.CLOSED == breaker.state(ORIGIN)
    assert [CircuitState.OPEN] == _fail(breaker, 1)
    assert CircuitState.OPEN == breaker.state(ORIGIN)


def test_breaker_success_resets_the_consecutive_count() -> None:
    """A success between failures restarts the count."""
    breaker = CircuitBreaker(failure_threshold=3, clock=FakeClock())
    _fail(breaker, 2)
    assert None is breaker.record(ORIGIN, failed=False, probe=False)
    assert [None, None] == _fail(breaker, 2)
    assert CircuitState.CLOSED == breaker.state(ORIGIN)


def test_breaker_opens_on_the_failure_rate_over_a_full_window() -> None:
    """The failure rate counts only once window attempts were seen, then opens at the rate."""
    breaker = CircuitBreaker(failure_threshold=100, failure_rate=0.5, window=4, clock=FakeClock())
    outcomes = [True, False, True]
    assert [None, None, None] == [
        breaker.record(ORIGIN, failed=failed, probe=False) for failed in outcomes
    ]
    assert CircuitState.OPEN == breaker.record(ORIGIN, failed=False, probe=False)


def test_breaker_stays_closed_below_the_failure_rate() -> None:
    """A failure rate under the threshold over a sliding window keeps the circuit closed."""
    breaker = CircuitBreaker(failure_threshold=100, failure_rate=0.5, window=4, clock=FakeClock())
    for failed in [True, False, False, False] * 10:
        assert None is breaker.record(ORIGIN, failed=failed, probe=False)
    assert CircuitState.CLOSED == breaker.state(ORIGIN)


def test_breaker_open_refuses_until_recovery_time() -> None:
    """An open circuit refuses attempts, says when a probe may go, and counts refusals."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, recovery_time=10.0, clock=clock)
    _fail(breaker, 1)
    assert (False, None, 10.0) == breaker.acquire(ORIGIN)
    clock.advance(4.0)
    assert (False, None, 6.0) == breaker.acquire(ORIGIN)
    assert 2 == breaker.rejected


def test_breaker_half_opens_after_recovery_time_with_one_probe() -> None:
    """After recovery_time one probe goes (HALF_OPEN), the next attempts are refused."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, recovery_time=10.0, clock=clock)
    _fail(breaker, 1)
    clock.advance(10.0)
    assert (True, CircuitState.HALF_OPEN, 0.0) == breaker.acquire(ORIGIN)
    assert CircuitState.HALF_OPEN == breaker.state(ORIGIN)
    assert (False, None, 0.0) == breaker.acquire(ORIGIN)
    assert 1 == breaker.rejected


def test_breaker_probe_limit() -> None:
    """half_open_probes attempts go at a time; a finished probe frees its slot."""
    clock = FakeClock()
    breaker = CircuitBreaker(
        failure_threshold=1, recovery_time=1.0, half_open_probes=2, clock=clock
    )
    _fail(breaker, 1)
    clock.advance(1.0)
    assert [True, True, False] == [breaker.acquire(ORIGIN)[0] for _ in range(3)]


def test_breaker_probe_success_closes() -> None:
    """A successful probe closes the circuit, with a fresh failure count."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, recovery_time=1.0, clock=clock)
    _fail(breaker, 2)
    clock.advance(1.0)
    breaker.acquire(ORIGIN)
    assert CircuitState.CLOSED == breaker.record(ORIGIN, failed=False, probe=True)
    assert (True, None, 0.0) == breaker.acquire(ORIGIN)
    assert [None, CircuitState.OPEN] == _fail(breaker, 2)


def test_breaker_probe_failure_reopens() -> None:
    """A failed probe opens the circuit again for a whole recovery_time."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, recovery_time=5.0, clock=clock)
    _fail(breaker, 1)
    clock.advance(7.0)
    breaker.acquire(ORIGIN)
    assert CircuitState.OPEN == breaker.record(ORIGIN, failed=True, probe=True)
    assert (False, None, 5.0) == breaker.acquire(ORIGIN)


def test_breaker_ignores_non_probe_outcomes_while_half_open() -> None:
    """An attempt that started before the circuit opened does not decide the probe."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, recovery_time=1.0, clock=clock)
    _fail(breaker, 1)
    clock.advance(1.0)
    breaker.acquire(ORIGIN)
    assert None is breaker.record(ORIGIN, failed=False, probe=False)
    assert None is breaker.record(ORIGIN, failed=True, probe=False)
    assert CircuitState.HALF_OPEN == breaker.state(ORIGIN)


def test_breaker_circuits_are_per_origin() -> None:
    """Each origin has its own circuit; unknown origins are closed."""
    breaker = CircuitBreaker(failure_threshold=1, clock=FakeClock())
    _fail(breaker, 1, ORIGIN)
    assert (True, None, 0.0) == breaker.acquire(OTHER)
    assert {ORIGIN: CircuitState.OPEN, OTHER: CircuitState.CLOSED} == breaker.states()
    assert CircuitState.CLOSED == breaker.state(("https", "example.invalid", 443))
    assert "open" == str(CircuitState.OPEN)


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        pytest.param({"failure_threshold": 0}, ValueError, "failure_threshold", id="ft-zero"),
        pytest.param({"failure_threshold": -1}, ValueError, "failure_threshold", id="ft-neg"),
        pytest.param({"failure_threshold": 1.5}, TypeError, "failure_threshold", id="ft-float"),
        pytest.param({"failure_threshold": True}, TypeError, "failure_threshold", id="ft-bool"),
        pytest.param({"window": 0}, ValueError, "window", id="window-zero"),
        pytest.param({"recovery_time": 0}, ValueError, "recovery_time", id="rt-zero"),
        pytest.param({"recovery_time": math.nan}, ValueError, "recovery_time", id="rt-nan"),
        pytest.param({"recovery_time": math.inf}, ValueError, "recovery_time", id="rt-inf"),
        pytest.param({"half_open_probes": 0}, ValueError, "half_open_probes", id="hop-zero"),
        pytest.param({"failure_rate": 0.0}, ValueError, "failure_rate", id="rate-zero"),
        pytest.param({"failure_rate": 1.5}, ValueError, "failure_rate", id="rate-above-1"),
        pytest.param({"failure_rate": math.nan}, ValueError, "failure_rate", id="rate-nan"),
        pytest.param({"failure_rate": "0.5"}, TypeError, "failure_rate", id="rate-str"),
    ],
)
def test_breaker_rejects_bad_values(
    kwargs: dict[str, Any], error: type[Exception], field: str
) -> None:
    """Out-of-range or mistyped settings are rejected with the field's name."""
    with pytest.raises(error, match=field):
        CircuitBreaker(**kwargs)


# -- CircuitBreaker during an outage ----------------------------------------------------------


async def test_breaker_opens_fails_fast_and_closes_after_a_probe(server: LocalServer) -> None:
    """Down server: N failures open the circuit, then no attempt is made until a probe closes it."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, recovery_time=30.0, clock=clock)
    origin = _origin(server)
    url = server.url_for("/")
    await server.stop_listening()
    with anyio.fail_after(15):
        async with AsyncResilientClient(circuit_breaker=breaker) as client:
            events = _record(client, *CIRCUIT_EVENTS)
            failures = [
                await (await client.get(url, context=_once())).wait_result() for _ in range(3)
            ]
            opened = client.stats()
            rejected = [
                await (await client.get(url, context=_once())).wait_result() for _ in range(5)
            ]
            after_rejections = client.stats()
            await server.start_listening()
            still_open = await (await client.get(url, context=_once())).wait_result()
            clock.advance(30.0)
            probe = await (await client.get(url, context=_once())).wait_result()
            closed = client.stats()
            follow_up = await (await client.get(url, context=_once())).wait_result()
    assert all(isinstance(r.error, httpx.ConnectError) for r in failures)
    assert (3, 1) == (opened.attempts, opened.circuits_open)
    for result in [*rejected, still_open]:
        assert isinstance(result.error, CircuitOpenError)
        assert (origin, 30.0, 0, ()) == (
            result.error.origin,
            result.error.retry_in,
            result.attempts,
            result.history,
        )
    assert (3, 5, 1) == (
        after_rejections.attempts,
        after_rejections.circuit_rejected,
        after_rejections.circuits_open,
    )
    assert (RequestStatus.SUCCESS, 200) == (probe.status, probe.status_code)
    assert (RequestStatus.SUCCESS, 200) == (follow_up.status, follow_up.status_code)
    assert (4, 6, 0) == (closed.attempts, closed.circuit_rejected, closed.circuits_open)
    assert 2 == server.hits["/"]
    assert [
        EventType.CIRCUIT_OPENED,
        EventType.CIRCUIT_HALF_OPEN,
        EventType.CIRCUIT_CLOSED,
    ] == [e.event_type for e in events]
    assert all(origin == e.data["origin"] for e in events)
    assert CircuitState.CLOSED == breaker.state(origin)


async def test_breaker_failed_probe_reopens(server: LocalServer) -> None:
    """A probe to a server still down opens the circuit again."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, recovery_time=10.0, clock=clock)
    url = server.url_for("/")
    await server.stop_listening()
    with anyio.fail_after(15):
        async with AsyncResilientClient(circuit_breaker=breaker) as client:
            events = _record(client, *CIRCUIT_EVENTS)
            for _ in range(2):
                await (await client.get(url, context=_once())).wait_result()
            clock.advance(10.0)
            probe = await (await client.get(url, context=_once())).wait_result()
            after = await (await client.get(url, context=_once())).wait_result()
            stats = client.stats()
    assert isinstance(probe.error, httpx.ConnectError)
    assert 1 == probe.attempts
    assert isinstance(after.error, CircuitOpenError)
    assert 10.0 == after.error.retry_in
    assert (3, 1) == (stats.attempts, stats.circuits_open)
    assert [
        EventType.CIRCUIT_OPENED,
        EventType.CIRCUIT_HALF_OPEN,
        EventType.CIRCUIT_OPENED,
    ] == [e.event_type for e in events]


async def test_breaker_recovers_on_the_real_clock(server: LocalServer) -> None:
    """With a short recovery_time and the server back, a probe closes the circuit."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_time=0.2)
    url = server.url_for("/")
    await server.stop_listening()
    with anyio.fail_after(15):
        async with AsyncResilientClient(circuit_breaker=breaker) as client:
            await (await client.get(url, context=_once())).wait_result()
            assert 1 == client.stats().circuits_open
            await server.start_listening()
            result = None
            for _ in range(200):
                result = await (await client.get(url, context=_once())).wait_result()
                if not isinstance(result.error, CircuitOpenError):
                    break
                await anyio.sleep(0.05)
            stats = client.stats()
    assert result is not None
    assert 200 == result.status_code
    assert (0, 2) == (stats.circuits_open, stats.attempts)
    assert 1 == server.hits["/"]


async def test_breaker_counts_5xx_responses_as_failures(server: LocalServer) -> None:
    """5xx responses open the circuit; 4xx responses do not."""
    breaker = CircuitBreaker(failure_threshold=2, clock=FakeClock())
    with anyio.fail_after(15):
        async with AsyncResilientClient(circuit_breaker=breaker) as client:
            for _ in range(5):
                await (await client.get(server.url_for("/status/404"), context=_once()))
            assert 0 == client.stats().circuits_open
            for _ in range(2):
                await (await client.get(server.url_for("/status/503"), context=_once()))
            blocked = await (await client.get(server.url_for("/"), context=_once())).wait_result()
    assert isinstance(blocked.error, CircuitOpenError)
    assert (5, 2, 0) == (server.hits["/status/404"], server.hits["/status/503"], server.hits["/"])


async def test_breaker_opening_mid_request_ends_its_retries(server: LocalServer) -> None:
    """A request whose own failures open the circuit stops retrying with CircuitOpenError."""
    breaker = CircuitBreaker(failure_threshold=2, clock=FakeClock())
    context = RequestContext(max_retries=5, base_delay=0.001, max_delay=0.002)
    await server.stop_listening()
    with anyio.fail_after(15):
        async with AsyncResilientClient(circuit_breaker=breaker) as client:
            result = await (await client.get(server.url_for("/"), context=context)).wait_result()
    assert isinstance(result.error, CircuitOpenError)
    assert isinstance(result.error.__cause__, httpx.ConnectError)
    assert 2 == result.attempts
    assert ["ConnectError", "ConnectError"] == [a.error for a in result.history]


async def test_breaker_is_per_origin(server: LocalServer) -> None:
    """A second server on another port is unaffected by the first one's open circuit."""
    breaker = CircuitBreaker(failure_threshold=2, clock=FakeClock())
    await server.stop_listening()
    with anyio.fail_after(15):
        async with LocalServer() as other, AsyncResilientClient(circuit_breaker=breaker) as client:
            for _ in range(2):
                await (await client.get(server.url_for("/"), context=_once())).wait_result()
            down = await (await client.get(server.url_for("/"), context=_once())).wait_result()
            up = [await (await client.get(other.url_for("/"), context=_once())) for _ in range(3)]
            stats = client.stats()
            other_hits = other.hits["/"]
    assert isinstance(down.error, CircuitOpenError)
    assert [200, 200, 200] == [r.status_code for r in up]
    assert 3 == other_hits
    assert {_origin(server): CircuitState.OPEN, _origin(other): CircuitState.CLOSED} == (
        breaker.states()
    )
    assert (1, 1) == (stats.circuits_open, stats.circuit_rejected)


async def test_breaker_half_open_lets_one_probe_through(server: LocalServer) -> None:
    """While a probe is in flight, other requests to the origin fail fast."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, recovery_time=5.0, clock=clock)
    origin = _origin(server)
    with anyio.fail_after(15):
        async with AsyncResilientClient(circuit_breaker=breaker) as client:
            await (await client.get(server.url_for("/status/500"), context=_once()))
            clock.advance(5.0)
            probe = await client.get(server.url_for("/delay/0.3"), context=_once())
            for _ in range(500):
                if breaker.state(origin) is CircuitState.HALF_OPEN:
                    break
                await anyio.sleep(0.01)
            refused = await (await client.get(server.url_for("/"), context=_once())).wait_result()
            probe_result = await probe.wait_result()
            after = await (await client.get(server.url_for("/"), context=_once())).wait_result()
    assert isinstance(refused.error, CircuitOpenError)
    assert 0.0 == refused.error.retry_in
    assert 200 == probe_result.status_code
    assert 200 == after.status_code
    assert CircuitState.CLOSED == breaker.state(origin)


@pytest.mark.parametrize("how", ["deadline", "cancel"])
async def test_cancelled_probe_frees_its_slot(server: LocalServer, how: str) -> None:
    """A probe cut off by its deadline or cancelled does not leave the circuit stuck half-open."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, recovery_time=5.0, clock=clock)
    origin = _origin(server)
    with anyio.fail_after(15):
        async with AsyncResilientClient(circuit_breaker=breaker) as client:
            await (await client.get(server.url_for("/status/500"), context=_once()))
            clock.advance(5.0)
            total_timeout = 0.2 if how == "deadline" else None
            slow = RequestContext(max_retries=0, total_timeout=total_timeout)
            handle = await client.get(server.url_for("/delay/5"), context=slow)
            if how == "cancel":
                for _ in range(500):
                    if 1 == server.hits["/delay/5"]:
                        break
                    await anyio.sleep(0.01)
                handle.cancel()
            probe = await handle.wait_result()
            half_open = breaker.state(origin)
            later = await (await client.get(server.url_for("/"), context=_once())).wait_result()
    expected = RequestStatus.ERROR if how == "deadline" else RequestStatus.CANCELLED
    assert (expected, 1) == (probe.status, probe.attempts)
    assert 1 == len(probe.history)
    assert CircuitState.HALF_OPEN == half_open
    assert (RequestStatus.SUCCESS, 200) == (later.status, later.status_code)
    assert CircuitState.CLOSED == breaker.state(origin)
