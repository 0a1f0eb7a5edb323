"""
A property of the whole lifecycle, checked with hypothesis: random sequences of submit (to the
client or to a shared batch, against a server fault), cancel, wait, close (with ``cancel``, a
grace, or inside a scope that cancels it), batch exit, an exception raised by a task, and a
close from an event callback, run from several tasks at once against a real loopback server,
on asyncio and trio, with a subscriber that reads every event.

After each run, whatever the interleaving:

* every request that a submission returned has exactly one final result, the one the client
  stores, and a plausible one: its route's natural outcome, or ``CANCELLED`` only if something
  in the run could cancel it;
* every request has exactly one final event at the callbacks and at a subscriber, or a counted
  drop, and each event's type is its result's status;
* a submission refused because the client closed raises ``ClientClosedError`` (one refused
  because its batch ended, ``ClientStateError``) and is not counted as submitted;
* the client ends closed with nothing in flight, its httpx client closed;
* ``async with client`` raises nothing but the exceptions the test raised on purpose (at the
  end of the block, or from a task inside it, which cancels the other tasks mid-operation);
* no task is left, and no file descriptor once the server has stopped (``ResourceWarning``
  is an error in the test configuration, so an unclosed stream fails the test too).

Three scenarios that the random runs found failing are replayed first on every run, as
explicit examples (``REGRESSIONS``). The drawn examples are derandomized, so CI runs the same
ones every time. A failing example is reported as drawn, without shrinking: a hung example
costs ``EXAMPLE_TIMEOUT`` seconds each time it is tried, and shrinking one tries it hundreds of
times. To hunt for bugs, run more examples and shrink what fails:
``HARDENING_EXAMPLES=200 HARDENING_SHRINK=1``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import httpx
import pytest
from anyio.abc import TaskStatus
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from typed_async_client import (
    AsyncEvent,
    AsyncResilientClient,
    Backoff,
    Batch,
    ClientClosedError,
    ClientStateError,
    EventType,
    Overflow,
    RequestCancelledError,
    RequestContext,
    RequestHandle,
    RequestResult,
    RequestStatus,
    RetryPolicy,
)
from typed_async_client.testing import LocalServer, instant_retries, refusing_url

if sys.version_info < (3, 11):
    from exceptiongroup import (  # type: ignore[import-not-found,unused-ignore]
        BaseExceptionGroup,
        ExceptionGroup,
    )

pytestmark = pytest.mark.anyio

EXAMPLES = int(os.environ.get("HARDENING_EXAMPLES", "25"))
SHRINK = os.environ.get("HARDENING_SHRINK", "") == "1"
LIFECYCLE = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[phase for phase in Phase if SHRINK or phase is not Phase.shrink],
)

#: Seconds one example may take, server and client included.
EXAMPLE_TIMEOUT = 5.0
FINAL_EVENTS = frozenset({EventType.SUCCESS, EventType.ERROR, EventType.CANCELLED})
#: The events of a request's life (the circuit and budget events never fire here).
REQUEST_EVENTS = (EventType.STARTED, EventType.RETRY, *sorted(FINAL_EVENTS))
#: Retries of every request; with instant_retries() they do not sleep.
MAX_RETRIES = 2
TRANSIENT = RetryPolicy.transient(backoff=Backoff(base=0.001, factor=1.0, cap=0.002))

Route = Literal["ok", "delay", "refused", "reset", "drop", "truncate", "retry503"]
ROUTES: tuple[Route, ...] = ("ok", "delay", "refused", "reset", "drop", "truncate", "retry503")
PATHS: dict[Route, str] = {
    "ok": "/ok",
    "delay": "/delay/0.05",
    "reset": "/reset",
    "drop": "/drop",
    "truncate": "/truncate/10",
    "retry503": "/status/503",
}


# -- what is drawn -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Submit:
    """
    Submit a request to the client, or to the shared batch.

    With ``cancelled_scope``, the submission runs in a scope that is already cancelled: the
    state of a task whose sibling has just failed, before its next checkpoint.
    """

    route: Route
    to_batch: bool
    cancelled_scope: bool = False


@dataclass(frozen=True)
class Cancel:
    """Cancel the request submitted ``index`` (modulo the count so far), done or not."""

    index: int


@dataclass(frozen=True)
class Wait:
    """Wait for the result of the request submitted ``index`` (modulo the count so far)."""

    index: int


@dataclass(frozen=True)
class Pause:
    """Sleep, to let the other tasks and the requests move."""

    seconds: float


@dataclass(frozen=True)
class Close:
    """``await client.close(cancel=..., grace=...)``, in ``move_on_after(within)`` if given."""

    cancel: bool
    grace: float | None
    within: float | None = None


@dataclass(frozen=True)
class ExitBatch:
    """Ask the batch's owner task to leave the batch's block."""


@dataclass(frozen=True)
class Raise:
    """Raise ``Boom`` from this task: the tasks' group cancels the others, then the client's."""


Op = Submit | Cancel | Wait | Pause | Close | ExitBatch | Raise


@dataclass(frozen=True)
class CallbackClose:
    """An event callback that closes the client on the first event of ``event_type``."""

    event_type: EventType
    close: Close


@dataclass(frozen=True)
class Subscriber:
    """A subscriber reading every event in a task of its own, pausing after each one."""

    buffer: int
    overflow: Overflow
    pause: float


@dataclass(frozen=True)
class Scenario:
    """One run: the client's limits, the batch, the tasks' operations and the body's end."""

    tasks: list[list[Op]]
    max_concurrency: int | None
    max_connections: int
    batch_concurrency: int
    fail_fast: bool
    callback_close: CallbackClose | None
    raise_in_body: bool
    subscriber: Subscriber


closes = st.builds(
    Close,
    cancel=st.booleans(),
    grace=st.sampled_from([None, None, 0.0, 0.02, 0.2]),
    within=st.sampled_from([None, None, None, 0.0, 0.01]),
)
#: How often each kind of operation is drawn: mostly submissions, and a close or a batch exit
#: now and then, since either ends what can be submitted after it.
OP_WEIGHTS = {
    "submit": 10,
    "cancel": 2,
    "wait": 1,
    "pause": 2,
    "close": 1,
    "exit_batch": 1,
    "raise": 1,
}
OP_STRATEGIES: dict[str, st.SearchStrategy[Op]] = {
    "submit": st.builds(
        Submit,
        route=st.sampled_from(ROUTES),
        to_batch=st.booleans(),
        cancelled_scope=st.sampled_from([False] * 9 + [True]),
    ),
    "cancel": st.builds(Cancel, index=st.integers(0, 17)),
    "wait": st.builds(Wait, index=st.integers(0, 17)),
    "pause": st.builds(Pause, seconds=st.sampled_from([0.0, 0.005, 0.03])),
    "close": closes,
    "exit_batch": st.just(ExitBatch()),
    "raise": st.just(Raise()),
}
ops: st.SearchStrategy[Op] = st.sampled_from(
    [kind for kind, weight in OP_WEIGHTS.items() for _ in range(weight)]
).flatmap(OP_STRATEGIES.__getitem__)
scenarios = st.builds(
    Scenario,
    tasks=st.lists(st.lists(ops, min_size=1, max_size=6), min_size=1, max_size=3),
    max_concurrency=st.sampled_from([None, None, 1, 3]),
    max_connections=st.sampled_from([1, 4, 100]),
    batch_concurrency=st.integers(1, 3),
    fail_fast=st.booleans(),
    callback_close=st.none() | st.builds(CallbackClose, st.sampled_from(REQUEST_EVENTS), closes),
    raise_in_body=st.booleans(),
    subscriber=st.builds(
        Subscriber,
        buffer=st.sampled_from([10_000, 2]),
        overflow=st.sampled_from(["drop_oldest", "block"]),
        pause=st.sampled_from([0.0, 0.0, 0.005]),
    ),
)

#: The base of the regression examples: one task, no limits, a subscriber that keeps up.
PLAIN = Scenario(
    tasks=[],
    max_concurrency=None,
    max_connections=100,
    batch_concurrency=1,
    fail_fast=False,
    callback_close=None,
    raise_in_body=False,
    subscriber=Subscriber(buffer=10_000, overflow="drop_oldest", pause=0.0),
)
#: Four submissions, each given the time to publish its STARTED event.
FOUR_SUBMISSIONS: list[Op] = [Submit("ok", to_batch=False), Pause(0.01)] * 4
#: Failures the random runs found, replayed on every run (explicit examples run first).
REGRESSIONS = [
    # A callback's close() while another close() waits for the dispatcher (here the task's,
    # on the SUCCESS event of the request it waits for).
    dataclasses.replace(
        PLAIN,
        tasks=[[Submit("delay", to_batch=False), Close(cancel=False, grace=None)]],
        callback_close=CallbackClose(EventType.SUCCESS, Close(cancel=False, grace=None)),
    ),
    # A submission from a task whose scope is already cancelled.
    dataclasses.replace(PLAIN, tasks=[[Submit("ok", to_batch=False, cancelled_scope=True)]]),
    # A request cancelled while its STARTED event waits for room at a blocking subscriber.
    dataclasses.replace(
        PLAIN,
        tasks=[[*FOUR_SUBMISSIONS, Cancel(3)]],
        subscriber=Subscriber(buffer=2, overflow="block", pause=0.1),
    ),
    # A blocking subscriber's waiter cancelled just as the subscriber took its event: the event
    # was delivered, and must not be counted as dropped too (found with 1,500 examples).
    Scenario(
        tasks=[
            [
                Submit("ok", to_batch=False),
                Submit("ok", to_batch=False),
                Submit("ok", to_batch=False),
                Cancel(16),
                Submit("ok", to_batch=False),
            ],
            [
                Submit("ok", to_batch=False),
                Submit("ok", to_batch=False),
                Cancel(16),
                Submit("retry503", to_batch=True),
            ],
        ],
        max_concurrency=None,
        max_connections=100,
        batch_concurrency=1,
        fail_fast=True,
        callback_close=CallbackClose(
            EventType.CANCELLED, Close(cancel=True, grace=None, within=0.01)
        ),
        raise_in_body=False,
        subscriber=Subscriber(buffer=2, overflow="block", pause=0.0),
    ),
]


# -- what is recorded ----------------------------------------------------------------------------


class Boom(Exception):
    """The exception the body of ``async with client`` raises on purpose."""


@dataclass
class Tracked:
    """A request that a submission returned, and whether the run cancelled it directly."""

    route: Route
    handle: RequestHandle
    in_batch: bool
    cancel_called: bool = False


@dataclass
class Run:
    """Everything the run saw, checked once it is over."""

    tracked: list[Tracked] = field(default_factory=list)
    events: list[AsyncEvent] = field(default_factory=list)
    streamed: list[AsyncEvent] = field(default_factory=list)
    stream_dropped: int = 0
    refused_closed: int = 0
    refused_batch: int = 0
    #: Something that may cancel requests has happened: a close() with cancel=True or a grace,
    #: an exception in the client's block.
    closing_cancels: bool = False
    #: A task was cancelled while it was in close(): the requests it cancelled end after the
    #: event streams, their final events are dropped (and counted).
    closer_cancelled: bool = False
    #: The exceptions the test raised on purpose.
    booms: list[Boom] = field(default_factory=list)
    callback_closed: bool = False
    batch: Batch | None = None
    batch_group: ExceptionGroup[Exception] | None = None
    escaped: BaseException | None = None


def leaves(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions in ``exc``, through any nesting of exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        for each in exc.exceptions:
            yield from leaves(each)
    else:
        yield exc


def fd_count() -> int:
    """The process's open file descriptors."""
    return len(os.listdir("/proc/self/fd"))


def other_tasks() -> set[int]:
    """The ids of the running tasks but the current one."""
    me = anyio.get_current_task().id
    return {task.id for task in anyio.get_running_tasks() if task.id != me}


async def play(scenario: Scenario, run: Run) -> None:
    """Run the scenario against a fresh server and client; record what happens in ``run``."""
    exit_batch = anyio.Event()
    client = AsyncResilientClient(
        limits=httpx.Limits(max_connections=scenario.max_connections),
        timeout=5.0,
        max_concurrency=scenario.max_concurrency,
    )

    async def close_from(close: Close) -> None:
        # Documented: a closer cancelled while it waits cancels the requests still in flight.
        if close.cancel or close.grace is not None or close.within is not None:
            run.closing_cancels = True
        with anyio.move_on_after(math.inf if close.within is None else close.within):
            try:
                await client.close(cancel=close.cancel, grace=close.grace)
            except anyio.get_cancelled_exc_class():
                run.closer_cancelled = True
                raise
        assert client.is_closed

    async def close_once(event: AsyncEvent) -> None:
        assert scenario.callback_close is not None
        if not run.callback_closed:
            run.callback_closed = True
            await close_from(scenario.callback_close.close)

    async def subscribe(*, task_status: TaskStatus[None]) -> None:
        subscriber = scenario.subscriber
        async with client.events(buffer=subscriber.buffer, overflow=subscriber.overflow) as stream:
            task_status.started()
            async for event in stream:
                run.streamed.append(event)
                await anyio.sleep(subscriber.pause)
        run.stream_dropped = stream.dropped

    async def own_batch(*, task_status: TaskStatus[None]) -> None:
        try:
            async with client.batch(
                max_concurrency=scenario.batch_concurrency, fail_fast=scenario.fail_fast
            ) as batch:
                run.batch = batch
                task_status.started()
                await exit_batch.wait()
        except ExceptionGroup as group:
            run.batch_group = group

    async def submit(op: Submit, request_id: str, urls: dict[Route, str]) -> None:
        context = RequestContext(request_id=request_id, max_retries=MAX_RETRIES)
        policy = TRANSIENT if op.route == "retry503" else None
        if op.to_batch:
            assert run.batch is not None
            try:
                handle = await run.batch.get(urls[op.route], context=context, retry_policy=policy)
            except ClientStateError:
                # Documented: the batch's block has been left (or is being left: asked to, failed
                # fast, or cancelled by a failing sibling task), or the client is closing.
                assert exit_batch.is_set() or scenario.fail_fast or run.booms or client.is_closed
                run.refused_batch += 1
                return
        else:
            try:
                handle = await client.get(urls[op.route], context=context, retry_policy=policy)
            except ClientClosedError:
                assert client.is_closed
                run.refused_closed += 1
                return
        # Submitted from a cancelled scope, a request may end cancelled (or not be submitted).
        run.tracked.append(Tracked(op.route, handle, op.to_batch, op.cancelled_scope))

    def raise_boom() -> None:
        run.closing_cancels = True  # leaving the client's block with an exception cancels
        run.booms.append(Boom())
        raise run.booms[-1]

    async def work(number: int, task_ops: list[Op], urls: dict[Route, str]) -> None:
        for step, op in enumerate(task_ops):
            if isinstance(op, Submit):
                with anyio.CancelScope() as scope:
                    if op.cancelled_scope:
                        scope.cancel()
                    await submit(op, f"t{number}-{step}", urls)
            elif isinstance(op, Cancel | Wait) and run.tracked:
                item = run.tracked[op.index % len(run.tracked)]
                if isinstance(op, Cancel):
                    before = item.handle.result
                    item.cancel_called = True
                    item.handle.cancel()
                    assert before is None or before is item.handle.result
                else:
                    result = await item.handle.wait_result()
                    assert result is item.handle.result
                    assert result is client.get_result(item.handle.request_id)
            elif isinstance(op, Pause):
                await anyio.sleep(op.seconds)
            elif isinstance(op, Close):
                await close_from(op)
            elif isinstance(op, ExitBatch):
                exit_batch.set()
            elif isinstance(op, Raise):
                raise_boom()

    with refusing_url() as refused:
        async with LocalServer() as server, anyio.create_task_group() as outer:
            urls = {route: server.url_for(path) for route, path in PATHS.items()}
            urls["refused"] = refused
            try:
                async with client:
                    for event_type in EventType:
                        client.add_event_callback(event_type, run.events.append)
                    if scenario.callback_close is not None:
                        client.add_event_callback(scenario.callback_close.event_type, close_once)
                    # The subscriber's task lives outside the client: its stream ends when the
                    # client closes, not when the block's own task group is left.
                    await outer.start(subscribe)
                    async with anyio.create_task_group() as inner:
                        await inner.start(own_batch)
                        async with anyio.create_task_group() as workers:
                            for number, task_ops in enumerate(scenario.tasks):
                                workers.start_soon(work, number, task_ops, urls)
                        exit_batch.set()
                    if scenario.raise_in_body:
                        raise_boom()
            except Exception as exc:
                run.escaped = exc
    # The client is checked after the run, outside every scope.
    check(scenario, run, client)


NATURAL_ERRORS: dict[Route, tuple[type[Exception], ...]] = {
    "refused": (httpx.ConnectError,),
    "reset": (httpx.ReadError, httpx.RemoteProtocolError),
    "drop": (httpx.RemoteProtocolError,),
    "truncate": (httpx.RemoteProtocolError,),
}


def check_outcome(run: Run, batch_failed: bool, item: Tracked, result: RequestResult) -> None:
    """A result is its route's natural outcome, or a cancellation that the run could cause."""
    rid = item.handle.request_id
    if result.is_cancelled:
        assert isinstance(result.error, RequestCancelledError), rid
        may_cancel = item.cancel_called or run.closing_cancels or (item.in_batch and batch_failed)
        assert may_cancel, f"{rid} ({item.route}) was cancelled, but nothing cancelled it"
        return
    if item.route in NATURAL_ERRORS:
        assert RequestStatus.ERROR == result.status, (rid, result)
        assert isinstance(result.error, NATURAL_ERRORS[item.route]), (rid, result.error)
        expected_attempts = MAX_RETRIES + 1 if item.route == "refused" else 1
        assert expected_attempts == result.attempts, rid
    else:
        expected = 503 if item.route == "retry503" else 200
        assert (RequestStatus.SUCCESS, expected) == (result.status, result.status_code), rid
        assert (MAX_RETRIES + 1 if item.route == "retry503" else 1) == result.attempts, rid


def check(scenario: Scenario, run: Run, client: AsyncResilientClient) -> None:
    """The invariants of the module docstring."""
    # `async with client` raised nothing but what the test raised on purpose.
    escaped = [] if run.escaped is None else list(leaves(run.escaped))
    assert sorted(map(id, run.booms)) == sorted(map(id, escaped)), repr(run.escaped)
    results: dict[str, RequestResult] = {}
    batch_failed = False
    for item in run.tracked:
        result = item.handle.result
        assert result is not None, f"{item.handle.request_id} has no result"
        assert item.handle.request_id == result.request_id
        assert result is client.get_result(item.handle.request_id)
        results[result.request_id] = result
        batch_failed |= item.in_batch and result.is_error
    assert len(run.tracked) == len(results), "a request id was returned twice"
    batch_failed &= scenario.fail_fast
    if run.batch_group is not None:
        assert batch_failed, repr(run.batch_group)
        assert 1 == len(run.batch_group.exceptions)
    for item in run.tracked:
        check_outcome(run, batch_failed, item, results[item.handle.request_id])

    stats = client.stats()
    statuses = Counter(result.status for result in results.values())
    assert (len(results), 0, 0) == (stats.started, stats.in_flight, stats.waiting)
    assert (
        statuses[RequestStatus.SUCCESS],
        statuses[RequestStatus.ERROR],
        statuses[RequestStatus.CANCELLED],
    ) == (stats.succeeded, stats.failed, stats.cancelled)
    assert client.is_closed
    assert 0 == client.active_tasks_count
    assert client.http_client.is_closed
    assert run.batch is not None
    assert run.batch.submitted == sum(item.in_batch for item in run.tracked)

    # One final event per request at the callbacks and at the subscriber, or a counted drop.
    # A final event emitted after the subscriber has left (a closer was cancelled) is counted
    # once, at the callbacks' stream, so the subscriber's misses are bounded by the total.
    callback_dropped = stats.events_dropped - run.stream_dropped
    for seen, dropped in ((run.events, callback_dropped), (run.streamed, stats.events_dropped)):
        finals = [event for event in seen if event.event_type in FINAL_EVENTS]
        per_id = Counter(event.context.request_id for event in finals)
        assert [] == [rid for rid, count in per_id.items() if count > 1]
        assert set(per_id) <= set(results)
        for event in finals:
            status = results[event.context.request_id].status
            assert status.value == event.event_type.value, event
        assert len(results) - len(per_id) <= dropped
    # Each event built reached the callbacks or was counted as dropped (both, if its callbacks
    # were interrupted half-way), and reached the subscriber or was counted on its stream,
    # unless a closer was cancelled: the last events then come after the subscriber has left.
    assert len(run.events) <= stats.events_emitted <= len(run.events) + callback_dropped
    assert len(run.streamed) + run.stream_dropped <= stats.events_emitted
    if not run.closer_cancelled:
        assert stats.events_emitted == len(run.streamed) + run.stream_dropped
        if scenario.subscriber.buffer > stats.events_emitted:
            assert 0 == run.stream_dropped


def with_regressions(test: Callable[..., Any]) -> Callable[..., Any]:
    """Add the regression scenarios to a test as hypothesis' explicit examples."""
    for regression in reversed(REGRESSIONS):
        test = example(scenario=regression)(test)
    return test


@LIFECYCLE
@with_regressions
@given(scenario=scenarios)
async def test_any_interleaving_of_submit_cancel_close_and_faults_keeps_the_invariants(
    scenario: Scenario,
) -> None:
    """Whatever several tasks do to a client, every request ends once and nothing is left."""
    tasks_before = other_tasks()
    fds_before = fd_count()
    run = Run()
    with anyio.fail_after(EXAMPLE_TIMEOUT), instant_retries():
        await play(scenario, run)
    assert set() == other_tasks() - tasks_before
    assert fds_before == fd_count()
