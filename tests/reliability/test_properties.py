"""
Properties, checked with hypothesis: the seeded fault mix of the test server, backoff bounds,
the Retry-After cap as the engine applies it, and a model-checked run of submit / cancel /
close / fetch-result sequences on asyncio and trio.

Every example is deterministic (``derandomize=True``) and small; the async ones run in the
test's event loop through anyio's pytest plugin, once per backend.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Literal

import anyio
import httpx
import pytest
from anyio.abc import TaskStatus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from typed_async_client import (
    AsyncEvent,
    AsyncResilientClient,
    Backoff,
    ClientClosedError,
    EventType,
    RequestCancelledError,
    RequestContext,
    RequestHandle,
    RequestResult,
    RequestStatus,
    RetryAfterTooLongError,
    RetryPolicy,
    parse_retry_after,
)
from typed_async_client._retrying import Retrying
from typed_async_client.testing import FaultMix, LocalServer, instant_retries, refusing_url

#: Settings of the pure properties.
PURE = settings(max_examples=200, derandomize=True, deadline=None)
#: Settings of the properties that run requests: few examples, each one bounded.
LIVE = settings(
    max_examples=30,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

FINAL_EVENTS = (EventType.SUCCESS, EventType.ERROR, EventType.CANCELLED)
#: What the client sees of each fault, per backend where httpx differs (RELIABILITY.md, fact 8).
OUTCOME_OF_FAULT = {
    "ok": {"200"},
    "delay": {"200"},
    "close": {"200"},
    "status_500": {"500"},
    "status_503": {"503"},
    "status_429": {"429"},
    "reset": {"ReadError", "RemoteProtocolError"},
    "drop": {"RemoteProtocolError"},
    "truncate": {"RemoteProtocolError"},
}


def outcome(result: RequestResult) -> str:
    """A result in short: its HTTP status, or its error's type name."""
    if result.error is not None:
        return type(result.error).__name__
    return str(result.status_code)


# -- the fault mix -------------------------------------------------------------------------------


probabilities = st.lists(
    st.sampled_from([0.0, 0.0, 0.05, 0.1, 0.25, 0.5]), min_size=8, max_size=8
).filter(lambda ps: sum(ps) <= 1.0)


def make_mix(seed: int, ps: list[float]) -> FaultMix:
    """A mix with the probabilities ``ps``, in the order of ``FaultMix.KINDS``."""
    return FaultMix(seed, *ps, delay_seconds=0.0)


@PURE
@given(seed=st.integers(0, 2**64), ps=probabilities, count=st.integers(0, 300))
def test_fault_mix_draws_are_reproducible_and_respect_the_mix(
    seed: int, ps: list[float], count: int
) -> None:
    """A seed gives one sequence; kinds of probability 0 never appear, nor "ok" in a full mix."""
    mix = make_mix(seed, ps)
    draws = mix.draws(count)
    assert draws == make_mix(seed, ps).draws(count)
    assert draws[: count // 2] == mix.draws(count // 2)
    allowed = {kind for kind, p in zip(FaultMix.KINDS, ps, strict=True) if p}
    if math.isclose(sum(ps), 1.0):
        assert set(draws) <= allowed
    else:
        assert set(draws) <= allowed | {"ok"}


def test_fault_mix_seeds_differ() -> None:
    """Two seeds give two different sequences of a 50 % mix."""
    assert FaultMix(seed=1, reset=0.5).draws(64) != FaultMix(seed=2, reset=0.5).draws(64)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"reset": -0.1}, ValueError),
        ({"drop": 1.5}, ValueError),
        ({"delay": math.nan}, ValueError),
        ({"reset": 0.6, "drop": 0.6}, ValueError),
        ({"delay_seconds": -1.0}, ValueError),
        ({"delay_seconds": math.inf}, ValueError),
        ({"status_503": "0.1"}, TypeError),
        ({"seed": 1.5}, TypeError),
    ],
)
def test_fault_mix_rejects_bad_values(kwargs: dict[str, object], error: type[Exception]) -> None:
    """Probabilities outside [0, 1], a sum above 1 and bad delays are refused at construction."""
    with pytest.raises(error):
        FaultMix(**kwargs)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_mix_route_serves_the_seeded_sequence_in_request_order() -> None:
    """Sequential requests to /mix get the mix's draws in order, each seen as its fault."""
    mix = FaultMix(
        seed=0,
        reset=0.1,
        drop=0.1,
        truncate=0.1,
        status_500=0.1,
        status_503=0.1,
        status_429=0.1,
        delay=0.1,
        close=0.1,
        delay_seconds=0.01,
    )
    count = 36  # the first 36 draws of seed 0 hold every kind
    with anyio.fail_after(30):
        async with LocalServer(fault_mix=mix) as server, AsyncResilientClient() as client:
            handles = []
            for i in range(count):
                handle = await client.get(server.url_for(f"/mix/{i}"))
                await handle.wait_result()
                handles.append(handle)
            clean = await client.get(server.url_for("/elsewhere"))
            await clean.wait_result()
            counts = Counter(server.fault_counts)
            server.set_fault_mix(mix)
            again = await client.get(server.url_for("/mix"))
            await again.wait_result()
    draws = mix.draws(count)
    seen = [outcome(h.result) for h in handles if h.result is not None]
    assert [] == [
        (i, kind, got)
        for i, (kind, got) in enumerate(zip(draws, seen, strict=True))
        if got not in OUTCOME_OF_FAULT[kind]
    ]
    assert Counter(draws) == counts
    assert set(FaultMix.KINDS) | {"ok"} == set(counts)
    assert clean.result is not None
    assert "200" == outcome(clean.result)
    # set_fault_mix starts the sequence over and resets the counts.
    assert Counter(draws[:1]) == server.fault_counts


@pytest.mark.anyio
@pytest.mark.parametrize("kind", FaultMix.KINDS)
async def test_each_fault_of_the_mix_alone(kind: str) -> None:
    """A mix of one fault kind serves it every time; the next request still succeeds."""
    mix = FaultMix(seed=0, delay_seconds=0.01, **{kind: 1.0})  # type: ignore[arg-type]
    with anyio.fail_after(20):
        async with LocalServer(fault_mix=mix) as server, AsyncResilientClient() as client:
            first = await (await client.get(server.url_for("/mix/a"))).wait_result()
            second = await (await client.get(server.url_for("/mix/b"))).wait_result()
            follow_up = await client.get(server.url_for("/follow-up"))
            response = await follow_up
    assert outcome(first) in OUTCOME_OF_FAULT[kind]
    assert outcome(second) in OUTCOME_OF_FAULT[kind]
    assert Counter({kind: 2}) == server.fault_counts
    assert 200 == response.status_code
    assert 1 == first.attempts


@pytest.mark.anyio
async def test_mix_route_without_a_mix_echoes() -> None:
    """Without a mix, /mix answers like the default route and nothing is counted."""
    with anyio.fail_after(10):
        async with LocalServer() as server, AsyncResilientClient() as client:
            response = await (await client.get(server.url_for("/mix/x")))
    assert (200, "/mix/x") == (response.status_code, response.json()["path"])
    assert Counter() == server.fault_counts
    assert server.fault_mix is None


# -- backoff bounds ------------------------------------------------------------------------------


def ceiling(retry: int, base: float, factor: float, cap: float) -> float:
    """The backoff ceiling of retry ``retry``, computed directly (a float overflow means cap)."""
    if base == 0.0:
        return 0.0
    try:
        raw = base * factor ** (retry - 1)
    except OverflowError:
        return cap
    return min(cap, raw)


@st.composite
def backoffs(draw: st.DrawFn) -> Backoff:
    """A valid Backoff of any jitter."""
    base = draw(st.floats(0.0, 10.0))
    cap = base + draw(st.floats(0.0, 100.0))
    factor = draw(st.floats(1.0, 10.0))
    jitter = draw(st.sampled_from(["full", "equal", "none", "decorrelated"]))
    return Backoff(base=base, factor=factor, cap=cap, jitter=jitter)


attempts = st.integers(0, 10**6)


@PURE
@given(attempt=attempts, base=st.floats(0.0, 5.0), factor=st.floats(1.0, 10.0), u=st.floats(0, 1))
def test_context_backoff_delay_is_full_jitter_below_the_cap(
    attempt: int, base: float, factor: float, u: float
) -> None:
    """RequestContext.backoff_delay stays in [0, ceiling], whatever the attempt number."""
    u = min(u, 0.999_999)
    context = RequestContext(
        max_retries=10**6, current_attempt=attempt, base_delay=base, backoff_factor=factor
    )
    delay = context.backoff_delay(lambda: u)
    top = ceiling(attempt + 1, base, factor, context.max_delay)
    assert 0.0 <= delay <= context.max_delay
    assert pytest.approx(top * u, rel=1e-9, abs=1e-12) == delay


@PURE
@given(backoff=backoffs(), numbers=st.lists(attempts, min_size=1, max_size=5))
def test_policy_backoff_stays_within_its_jitter_range(backoff: Backoff, numbers: list[int]) -> None:
    """Each jitter of a Backoff policy keeps each retry's sleep in its range, at the cap at most."""
    policy = RetryPolicy.transient(backoff=backoff)
    context = RequestContext(max_retries=10**6)
    retrying = Retrying(policy, "GET", "http://127.0.0.1/", {}, context, httpx.Headers())
    for number in numbers:
        delay = retrying.next_delay(context.clone(current_attempt=number))
        top = ceiling(number + 1, backoff.base, backoff.factor, backoff.cap)
        assert 0.0 <= delay <= backoff.cap
        if backoff.jitter == "full":
            assert delay <= top * (1 + 1e-9)
        elif backoff.jitter == "equal":
            assert top / 2 * (1 - 1e-9) <= delay <= top * (1 + 1e-9)
        elif backoff.jitter == "none":
            assert pytest.approx(top, rel=1e-9) == delay
        else:
            assert backoff.base <= delay


# -- Retry-After and the engine's cap ------------------------------------------------------------

#: The policy's max_retry_after in the engine property, in seconds.
CAP = 0.5
#: The computed backoff that applies when Retry-After is unusable.
SMALL_BACKOFF = Backoff(base=0.001, factor=1.0, cap=0.002)
NOW = time.time()


def http_date(offset: float, form: Literal["imf", "rfc850", "asctime"]) -> str:
    """An HTTP-date ``offset`` seconds from now, in one of RFC 9110's three formats."""
    when = email.utils.formatdate(NOW + offset, usegmt=True)
    stamp = time.gmtime(NOW + offset)
    if form == "rfc850":
        return time.strftime("%A, %d-%b-%y %H:%M:%S GMT", stamp)
    if form == "asctime":
        return time.strftime("%a %b %e %H:%M:%S %Y", stamp)
    return when


header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.just("\t"), max_size=30
)
retry_after_values = st.one_of(
    st.integers(0, 10**15).map(str),
    st.integers(-(10**6), -1).map(str),
    st.sampled_from(["0", "1.0", "nan", "inf", "-0", "+1", " 0 ", "", "1e3", "0x10"]),
    st.builds(
        http_date,
        st.floats(-(10**9), -1.0) | st.floats(3_600.0, 10**9),
        st.sampled_from(["imf", "rfc850", "asctime"]),
    ),
    header_text,
)


@PURE
@given(value=st.text(max_size=80) | retry_after_values)
def test_parse_retry_after_never_raises(value: str) -> None:
    """Any value parses to None or to a finite delay of at least zero."""
    delay = parse_retry_after(value)
    assert delay is None or (math.isfinite(delay) and delay >= 0.0)


@pytest.mark.anyio
@LIVE
@given(value=retry_after_values)
async def test_engine_never_waits_longer_than_max_retry_after(value: str) -> None:
    """A 503's Retry-After is slept if within the cap, ends the request if not, else ignored."""
    policy = RetryPolicy.transient(backoff=SMALL_BACKOFF, max_retry_after=CAP)
    retries: list[AsyncEvent] = []
    with anyio.fail_after(10):
        async with LocalServer() as server, AsyncResilientClient(retry_policy=policy) as client:
            client.add_event_callback(EventType.RETRY, retries.append)
            handle = await client.get(
                server.url_for("/sequence/k"),
                params={"codes": "503,200", "retry_after": value},
                context=RequestContext(max_retries=1),
            )
            result = await handle.wait_result()
    requested = parse_retry_after(value)
    assert all(attempt.sleep <= CAP for attempt in result.history)
    if requested is not None and requested > CAP:
        assert isinstance(result.error, RetryAfterTooLongError)
        assert CAP == result.error.limit
        assert result.error.requested_delay > CAP
        assert (1, 1, []) == (result.attempts, server.sequence_hits["k"], retries)
        return
    assert ("200", 2) == (outcome(result), result.attempts)
    sleep = result.history[0].sleep
    if requested is None:
        assert sleep <= SMALL_BACKOFF.cap
        assert [None] == [event.data["retry_after"] for event in retries]
    else:
        assert requested == sleep == retries[0].data["retry_after"]


# -- submit / cancel / close / fetch -------------------------------------------------------------

Kind = Literal["fast", "status", "slow", "refused"]
KINDS: tuple[Kind, ...] = ("fast", "status", "slow", "refused")
#: The outcome of a request that nothing interrupted.
NATURAL = {"fast": "200", "status": "503", "refused": "ConnectError"}
MAX_STEPS = 20

#: A step: ("submit", kind), ("cancel" | "fetch" | "wait", index of a request) or ("close", 0).
Step = tuple[str, "Kind | int"]
operations = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), st.sampled_from(KINDS)),
        st.tuples(st.sampled_from(["cancel", "fetch", "wait"]), st.integers(0, MAX_STEPS - 1)),
        st.just(("close", 0)),
    ),
    max_size=MAX_STEPS,
)


@dataclass
class Tracked:
    """A submitted request and what the sequence did to it."""

    kind: Kind
    handle: RequestHandle
    interrupted: bool = False


@pytest.mark.anyio
@LIVE
@given(ops=operations)
async def test_any_sequence_of_submit_cancel_close_fetch_keeps_the_invariants(
    ops: list[Step],
) -> None:
    """Each submitted request ends with one result, stored, fetched and reported once."""
    tracked: list[Tracked] = []
    refused_after_close = 0
    events: list[AsyncEvent] = []
    streamed: list[AsyncEvent] = []
    with anyio.fail_after(30), refusing_url() as refused, instant_retries():
        # The subscriber's task group encloses the client: closing a client must not exit a
        # task group entered after it.
        async with (
            LocalServer() as server,
            anyio.create_task_group() as tg,
            AsyncResilientClient(event_queue_size=1_000) as client,
        ):
            urls = {
                "fast": server.url_for("/ok"),
                "status": server.url_for("/status/503"),
                "slow": server.url_for("/delay/30"),
                "refused": refused,
            }
            for event_type in FINAL_EVENTS:
                client.add_event_callback(event_type, events.append)

            async def subscribe(*, task_status: TaskStatus[None]) -> None:
                async with client.events(*FINAL_EVENTS, buffer=100) as stream:
                    task_status.started()
                    streamed.extend([event async for event in stream])

            await tg.start(subscribe)
            for op, arg in ops:
                if isinstance(arg, str):  # submit
                    context = RequestContext(request_id=f"r{len(tracked)}")
                    if client.is_closed:
                        with pytest.raises(ClientClosedError):
                            await client.get(urls[arg], context=context)
                        refused_after_close += 1
                    else:
                        tracked.append(Tracked(arg, await client.get(urls[arg], context=context)))
                elif op == "close":
                    for each in tracked:
                        each.interrupted |= not each.handle.done()
                    await client.close(cancel=True)
                    assert client.is_closed
                elif tracked:
                    item = tracked[arg % len(tracked)]
                    handle = item.handle
                    if op == "cancel":
                        before = handle.result
                        item.interrupted |= before is None
                        handle.cancel()
                        if before is not None:
                            assert before is handle.result
                    elif op == "fetch":
                        assert handle.result is client.get_result(handle.request_id)
                    elif item.kind != "slow" or item.interrupted:  # wait
                        result = await handle.wait_result()
                        assert result is client.get_result(handle.request_id)
            for each in tracked:
                if each.kind != "slow" and not client.is_closed:
                    await each.handle.wait_result()
                each.interrupted |= not each.handle.done()
            await client.close(cancel=True)
            await client.close()
            # The subscriber's stream has ended with the client, so the task group can exit.

    results = [each.handle.result for each in tracked]
    assert [] == [r for r in results if r is None]
    for each, result in zip(tracked, results, strict=True):
        assert result is not None
        assert result is client.get_result(each.handle.request_id)
        if result.is_cancelled:
            assert isinstance(result.error, RequestCancelledError)
            assert each.interrupted
        elif each.kind == "slow":
            pytest.fail(f"a slow request ended {outcome(result)} without being cancelled")
        else:
            assert NATURAL[each.kind] == outcome(result)
        if each.kind == "slow":
            assert RequestStatus.CANCELLED == result.status
    ids = [each.handle.request_id for each in tracked]
    by_status = {r.request_id: str(r.status) for r in results if r is not None}
    for seen in (events, streamed):
        assert sorted(ids) == sorted(e.context.request_id for e in seen)
        assert by_status == {e.context.request_id: str(e.event_type) for e in seen}
    stats = client.stats()
    assert (len(tracked), 0, 0) == (stats.started, stats.in_flight, stats.events_dropped)
    statuses = Counter(by_status.values())
    assert (statuses["success"], statuses["error"], statuses["cancelled"]) == (
        stats.succeeded,
        stats.failed,
        stats.cancelled,
    )
    assert client.http_client.is_closed
    assert 0 == client.active_tasks_count
    assert refused_after_close == sum(1 for op, _ in ops if op == "submit") - len(tracked)
