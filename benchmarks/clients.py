"""
One client under test, in its own process, for one scenario: the child side of ``run.py``.

    python benchmarks/clients.py '{"client": "ours", "backend": "asyncio", "scenario": "a",
                                   "url": "http://127.0.0.1:PORT/", "requests": 5000,
                                   "concurrency": 100, "duration": 3}'

It prints one JSON line: requests completed, successes, errors (by type), retries, elapsed
time, latency percentiles, CPU seconds of the timed section (``resource.getrusage`` of this
process), peak RSS, and the scenario's own figures (events, memory).

Every client is driven the same way: ``concurrency`` workers each send requests one after the
other until ``requests`` have been sent or ``duration`` seconds have passed (then the requests
in flight finish); ``time_limit`` cancels whatever is left. The one exception is
``ours-batch``, which submits through the library's own ``client.batch(max_concurrency=)``.
In the fault scenarios every client gets the same retry budget: 10 retries (11 attempts),
exponential backoff from 10 ms capped at 1 s, with full jitter, and ``Retry-After`` honoured.

Clients (``client``, backends):

* ``ours`` (asyncio, trio): ``AsyncResilientClient``, ``await (await client.get(url))``;
* ``ours-batch`` (asyncio, trio): the same client through ``client.batch()``;
* ``ours-events-sub`` / ``ours-events-cb`` (asyncio, trio): ``ours`` with one
  ``client.events()`` subscriber to every event type, or with plain callbacks on ``STARTED``
  and ``SUCCESS`` (scenario d);
* ``httpx`` (asyncio, trio): a bare ``httpx.AsyncClient``, no retries;
* ``httpx-task`` (asyncio, trio): bare httpx with each request in a task of its own, awaited by
  its worker (anyio's task handle): the floor of our design, a task per request;
* ``tenacity``, ``stamina``, ``httpx-retries`` (asyncio): httpx with that retry library;
* ``aiohttp-retry`` (asyncio): aiohttp with aiohttp-retry;
* ``raw`` (asyncio): a minimal asyncio Protocol client, one keep-alive connection per worker,
  the limit of what Python can do here.

``"transport": "mock"`` (ours and httpx only) replaces the network with an in-process
``httpx.MockTransport`` that answers ``200 ok`` at once, or holds every request until
``requests`` of them are held at once (``"hold": true``): the memory of N requests in flight
without N sockets, whose cost in httpcore's pool grows with the square of the connections.
"""

from __future__ import annotations

import json
import os
import random
import resource
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx

# The retry settings every client gets in the fault scenarios.
MAX_RETRIES = 10
BASE_DELAY = 0.01
MAX_DELAY = 1.0

One = Callable[[], Awaitable[bool]]
MakeOne = Callable[[], One]


@dataclass
class Config:
    client: str
    backend: str
    scenario: str
    url: str
    requests: int
    concurrency: int
    duration: float | None = None  # stop sending new requests after this many seconds
    window: float | None = None  # scenario a: measure this many seconds, after the warm-up
    ramp: float = 0.0  # seconds between the start of two workers
    policy: str = "connect"  # "connect": connection errors only; "transient": + 503
    warmup: int = 0
    warmup_seconds: float = 5.0
    time_limit: float = 90.0  # hard limit of the timed section
    cpu: int | None = None
    hold: bool = False  # scenario e: RSS while `requests` requests are held in flight
    transport: str = "socket"  # or "mock"
    round: int | None = None  # the runner's round number, echoed back


@dataclass
class Tally:
    """Every finished request: (end time, latency, success, error type)."""

    records: list[tuple[float, float, bool, str | None]] = field(default_factory=list)
    retries: int = 0
    client: Any = None  # ours: the AsyncResilientClient, for its stats and events

    def record(self, good: bool, latency: float, error: str | None = None) -> None:
        self.records.append((time.monotonic(), latency, good, error))

    @property
    def done(self) -> int:
        return len(self.records)

    @property
    def first_done(self) -> float | None:
        return self.records[0][0] if self.records else None


class Window:
    """
    The measured window of scenario a: it opens once ``warm_count`` requests have finished
    (every connection opened and used; at most ``warm_max`` seconds), lasts ``seconds``, then
    tells the workers to stop. Only requests that end inside it count, so neither the start
    (all workers firing at once) nor the drain at the end weighs on the figures.
    """

    def __init__(self, warm_count: int, warm_max: float, seconds: float) -> None:
        self.warm_count = warm_count
        self.warm_max = warm_max
        self.seconds = seconds
        self.stop = False
        self.start = self.end = 0.0
        self.start_wall = self.end_wall = 0.0
        self.cpu = 0.0

    async def watch(self, done: Callable[[], int]) -> None:
        began = time.monotonic()
        while done() < self.warm_count and time.monotonic() - began < self.warm_max:  # noqa: ASYNC110
            await anyio.sleep(0.005)
        cpu0 = cpu_seconds()
        self.start, self.start_wall = time.monotonic(), time.time()
        await anyio.sleep(self.seconds)
        self.end, self.end_wall = time.monotonic(), time.time()
        self.cpu = cpu_seconds() - cpu0
        self.stop = True


# -- the common driver ------------------------------------------------------------------------


async def drive(
    make_one: MakeOne,
    n: int,
    concurrency: int,
    tally: Tally,
    duration: float | None = None,
    window: Window | None = None,
    ramp: float = 0.0,
) -> None:
    """
    ``concurrency`` workers send ``n`` requests in all, or until told to stop.

    With ``ramp``, the workers start ``ramp`` seconds apart. Started all at once, 100 or more
    workers put httpx's pool into a slow state (some connections stay idle while requests
    queue) that lasts until the idle ones expire, ``keepalive_expiry`` (5 s) later.
    """
    sent = 0
    stop_at = time.monotonic() + (duration if duration is not None else 1e9)

    async def worker() -> None:
        nonlocal sent
        one = make_one()
        while sent < n and time.monotonic() < stop_at and not (window and window.stop):
            sent += 1
            start = time.perf_counter()
            try:
                good = await one()
            except Exception as exc:
                tally.record(False, time.perf_counter() - start, type(exc).__name__)
            else:
                tally.record(good, time.perf_counter() - start)

    async with anyio.create_task_group() as tg:
        if window is not None:
            tg.start_soon(window.watch, lambda: tally.done)
        count = min(concurrency, n)
        for i in range(count):
            tg.start_soon(worker)
            if ramp and i + 1 < count:
                await anyio.sleep(ramp)


@asynccontextmanager
async def time_limit(seconds: float) -> AsyncIterator[None]:
    """
    Cancel the block after ``seconds``, without giving it a deadline.

    ``anyio.move_on_after`` would set a deadline that our client's requests inherit (and then
    shrink every attempt's timeout to), work that a happy path without a deadline never does:
    a watchdog task cancels the block instead.
    """
    async with anyio.create_task_group() as tg:

        async def watchdog() -> None:
            await anyio.sleep(seconds)
            tg.cancel_scope.cancel()

        tg.start_soon(watchdog)
        try:
            yield
        finally:
            tg.cancel_scope.cancel()


def _limits(cfg: Config) -> httpx.Limits:
    size = max(cfg.concurrency, 10)
    return httpx.Limits(max_connections=size, max_keepalive_connections=size)


def _timeout(cfg: Config) -> httpx.Timeout:
    return httpx.Timeout(60.0 if cfg.hold else 10.0)


def _retry_after(headers: Any) -> float | None:
    value = headers.get("retry-after")
    if value is not None and value.strip().isdigit():
        return float(value.strip())
    return None


class MockServer:
    """The in-process answer of ``"transport": "mock"``; holds requests once armed."""

    def __init__(self) -> None:
        self.target = 0
        self.held = 0
        self.release: anyio.Event | None = None
        self.rss_at_peak: int | None = None

    def arm(self, target: int) -> None:
        self.target = target
        self.held = 0
        self.release = anyio.Event()

    async def handler(self, request: httpx.Request) -> httpx.Response:
        if self.target:
            assert self.release is not None
            self.held += 1
            if self.held >= self.target:
                # Every request is in flight right now: this is the plateau.
                self.rss_at_peak = rss_bytes()
                self.release.set()
            else:
                await self.release.wait()
        return httpx.Response(200, content=b"ok")


def _transport(cfg: Config, mock: MockServer | None) -> httpx.AsyncBaseTransport | None:
    if cfg.transport == "mock":
        assert mock is not None
        return httpx.MockTransport(mock.handler)
    return None


# -- the clients --------------------------------------------------------------------------------


def _ours_options(cfg: Config, mock: MockServer | None) -> dict[str, Any]:
    from typed_async_client import RequestContext, RetryPolicy

    options: dict[str, Any] = {"limits": _limits(cfg), "timeout": _timeout(cfg)}
    if cfg.scenario in ("b", "c"):
        options["default_context"] = RequestContext(
            max_retries=MAX_RETRIES, base_delay=BASE_DELAY, max_delay=MAX_DELAY
        )
    if cfg.policy == "transient":
        options["retry_policy"] = RetryPolicy.transient()
    transport = _transport(cfg, mock)
    if transport is not None:
        options["transport"] = transport
    return options


async def setup_ours(
    cfg: Config, stack: AsyncExitStack, tally: Tally, mock: MockServer | None
) -> MakeOne:
    from typed_async_client import AsyncResilientClient

    client = await stack.enter_async_context(AsyncResilientClient(**_ours_options(cfg, mock)))
    tally.client = client

    async def one() -> bool:
        handle = await client.get(cfg.url)
        response = await handle
        return response.status_code == 200

    return lambda: one


async def setup_httpx(
    cfg: Config, stack: AsyncExitStack, tally: Tally, mock: MockServer | None
) -> MakeOne:
    client = await stack.enter_async_context(
        httpx.AsyncClient(
            limits=_limits(cfg), timeout=_timeout(cfg), transport=_transport(cfg, mock)
        )
    )

    async def one() -> bool:
        response = await client.get(cfg.url)
        return response.status_code == 200

    return lambda: one


async def setup_httpx_task(
    cfg: Config, stack: AsyncExitStack, tally: Tally, mock: MockServer | None
) -> MakeOne:
    """
    Bare httpx, each request in a task of its own that the worker awaits: the floor of the
    design (a task per request in a task group the client owns), with nothing else of ours.
    """
    bare = (await setup_httpx(cfg, stack, tally, mock))()
    owner = await stack.enter_async_context(anyio.create_task_group())

    async def one() -> bool:
        return await owner.create_task(bare())

    return lambda: one


async def setup_tenacity(
    cfg: Config, stack: AsyncExitStack, tally: Tally, mock: MockServer | None
) -> MakeOne:
    import tenacity

    client = await stack.enter_async_context(
        httpx.AsyncClient(limits=_limits(cfg), timeout=_timeout(cfg))
    )
    exponential = tenacity.wait_random_exponential(multiplier=BASE_DELAY, max=MAX_DELAY)

    def wait(state: tenacity.RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            requested = _retry_after(outcome.result().headers)
            if requested is not None:
                return requested
        return float(exponential(state))

    def count(state: tenacity.RetryCallState) -> None:
        tally.retries += 1

    retry: Any = tenacity.retry_if_exception_type(httpx.ConnectError)
    if cfg.policy == "transient":
        retry = retry | tenacity.retry_if_result(lambda r: r.status_code == 503)

    @tenacity.retry(
        stop=tenacity.stop_after_attempt(MAX_RETRIES + 1),
        wait=wait,
        retry=retry,
        before_sleep=count,
        reraise=True,
    )
    async def get() -> httpx.Response:
        return await client.get(cfg.url)

    async def one() -> bool:
        response = await get()
        return response.status_code == 200

    return lambda: one


class _Status503(Exception):
    def __init__(self, wait: float | None) -> None:
        self.wait = wait


async def setup_stamina(
    cfg: Config, stack: AsyncExitStack, tally: Tally, mock: MockServer | None
) -> MakeOne:
    import stamina

    client = await stack.enter_async_context(
        httpx.AsyncClient(limits=_limits(cfg), timeout=_timeout(cfg))
    )
    transient = cfg.policy == "transient"

    def on(exc: Exception) -> bool | float:
        if isinstance(exc, _Status503):
            return True if exc.wait is None else exc.wait
        return isinstance(exc, httpx.ConnectError)

    async def one() -> bool:
        response: httpx.Response | None = None
        async for attempt in stamina.retry_context(
            on=on,
            attempts=MAX_RETRIES + 1,
            timeout=None,
            wait_initial=BASE_DELAY,
            wait_max=MAX_DELAY,
            wait_jitter=BASE_DELAY,
        ):
            with attempt:
                if attempt.num > 1:
                    tally.retries += 1
                response = await client.get(cfg.url)
                if transient and response.status_code == 503:
                    raise _Status503(_retry_after(response.headers))
        assert response is not None
        return response.status_code == 200

    return lambda: one


async def setup_httpx_retries(
    cfg: Config, stack: AsyncExitStack, tally: Tally, mock: MockServer | None
) -> MakeOne:
    from httpx_retries import Retry, RetryTransport

    original = Retry.asleep

    async def counting_asleep(self: Retry, response: Any) -> None:
        tally.retries += 1
        await original(self, response)

    Retry.asleep = counting_asleep  # type: ignore[method-assign]
    retry = Retry(
        total=MAX_RETRIES,
        backoff_factor=BASE_DELAY,
        max_backoff_wait=MAX_DELAY,
        backoff_jitter=1.0,
        retry_on_exceptions=[httpx.ConnectError],
        status_forcelist=[503],
    )
    transport = RetryTransport(transport=httpx.AsyncHTTPTransport(limits=_limits(cfg)), retry=retry)
    client = await stack.enter_async_context(
        httpx.AsyncClient(transport=transport, timeout=_timeout(cfg))
    )

    async def one() -> bool:
        response = await client.get(cfg.url)
        return response.status_code == 200

    return lambda: one


async def setup_aiohttp_retry(
    cfg: Config, stack: AsyncExitStack, tally: Tally, mock: MockServer | None
) -> MakeOne:
    import aiohttp
    from aiohttp_retry import ExponentialRetry, RetryClient

    class Options(ExponentialRetry):  # type: ignore[misc]
        def get_timeout(self, attempt: int, response: Any = None) -> float:
            tally.retries += 1
            if response is not None:
                requested = _retry_after(response.headers)
                if requested is not None:
                    return requested
            # ExponentialRetry has no jitter of its own: add full jitter like the others.
            return random.uniform(0, super().get_timeout(attempt, response))

    options = Options(
        attempts=MAX_RETRIES + 1,
        start_timeout=BASE_DELAY,
        max_timeout=MAX_DELAY,
        statuses={503} if cfg.policy == "transient" else set(),
        exceptions={aiohttp.ClientConnectorError},
        retry_all_server_errors=False,
    )
    size = max(cfg.concurrency, 10)
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=size, limit_per_host=0),
        timeout=aiohttp.ClientTimeout(total=60.0 if cfg.hold else 10.0),
    )
    client = await stack.enter_async_context(
        RetryClient(client_session=session, retry_options=options, raise_for_status=False)
    )

    async def one() -> bool:
        async with client.get(cfg.url) as response:
            await response.read()
            return bool(response.status == 200)

    return lambda: one


async def setup_raw(
    cfg: Config, stack: AsyncExitStack, tally: Tally, mock: MockServer | None
) -> MakeOne:
    import asyncio

    parts = urlsplit(cfg.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    transient = cfg.policy == "transient"
    loop = asyncio.get_running_loop()
    connections: list[RawConnection] = []
    stack.callback(lambda: [c.close() for c in connections])
    heads: dict[str, bytes] = {}

    def request_for(url: str) -> bytes:
        head = heads.get(url)
        if head is None:
            target = urlsplit(url).path or "/"
            text = f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n"
            head = heads[url] = text.encode()
        return head

    def make_one() -> One:
        state: list[RawConnection | None] = [None]

        async def one() -> bool:
            for attempt in range(MAX_RETRIES + 1):
                conn = state[0]
                if conn is None or conn.closed:
                    try:
                        _, conn = await loop.create_connection(RawConnection, host, port)
                    except ConnectionRefusedError:
                        if attempt == MAX_RETRIES:
                            raise
                        tally.retries += 1
                        ceiling = min(MAX_DELAY, BASE_DELAY * 2**attempt)
                        await asyncio.sleep(random.uniform(0, ceiling))
                        continue
                    connections.append(conn)
                    state[0] = conn
                status, close = await conn.send(request_for(cfg.url))
                if close:
                    conn.close()
                    state[0] = None
                if status == 503 and transient and attempt < MAX_RETRIES:
                    tally.retries += 1  # Retry-After: 0, so no sleep
                    continue
                return status == 200
            return False

        return one

    return make_one


class RawConnection:
    """An asyncio Protocol that sends one request at a time and parses the response head."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.buffer = b""
        self.waiter: Any = None
        self.closed = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionResetError("connection lost"))

    def eof_received(self) -> bool:
        return False

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = self.buffer[:end]
        length = 0
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                close = value.strip().lower() == b"close"
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        status = int(head[9:12])
        self.buffer = self.buffer[total:]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result((status, close))

    async def send(self, request: bytes) -> tuple[int, bool]:
        import asyncio

        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        result: tuple[int, bool] = await self.waiter
        return result

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()


Setup = Callable[[Config, AsyncExitStack, Tally, "MockServer | None"], Awaitable[MakeOne]]
SETUPS: dict[str, Setup] = {
    "ours": setup_ours,
    "ours-events-sub": setup_ours,
    "ours-events-cb": setup_ours,
    "httpx": setup_httpx,
    "httpx-task": setup_httpx_task,
    "tenacity": setup_tenacity,
    "stamina": setup_stamina,
    "httpx-retries": setup_httpx_retries,
    "aiohttp-retry": setup_aiohttp_retry,
    "raw": setup_raw,
}
ASYNCIO_ONLY = frozenset({"tenacity", "stamina", "httpx-retries", "aiohttp-retry", "raw"})
MOCKABLE = frozenset(
    {"ours", "ours-batch", "ours-events-sub", "ours-events-cb", "httpx", "httpx-task"}
)


# -- measuring ------------------------------------------------------------------------------


def rss_bytes() -> int:
    """The current resident set size (Linux: /proc/self/statm), else the peak so far."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return peak_rss_bytes()


def peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


class RssSampler:
    """Samples the RSS every 5 ms in a thread, with the time of each sample."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.samples.append((time.monotonic(), rss_bytes()))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def peak_before(self, moment: float | None) -> int:
        kept = [rss for at, rss in self.samples if moment is None or at < moment]
        return max(kept, default=0)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(ordered: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


class Memory:
    """Scenario e: the RSS before the held requests and while all of them are in flight."""

    def __init__(self, cfg: Config, mock: MockServer | None) -> None:
        self.cfg = cfg
        self.mock = mock
        self.baseline = 0
        self.sampler: RssSampler | None = None

    def start(self) -> None:
        if self.mock is not None:
            self.mock.arm(self.cfg.requests)
        else:
            # The closures read cfg.url at each call: from now on the requests are held.
            self.cfg.url = self.cfg.url.rstrip("/") + f"/hold/{self.cfg.requests}"
            self.sampler = RssSampler()
            self.sampler.__enter__()
        self.baseline = rss_bytes()

    def finish(self, first_done: float | None) -> dict[str, Any]:
        if self.sampler is not None:
            self.sampler.__exit__()
            plateau = self.sampler.peak_before(first_done)
        else:
            assert self.mock is not None
            plateau = self.mock.rss_at_peak or 0
        return {
            "baseline_rss": self.baseline,
            "plateau_rss": plateau,
            "held_at_once": self.mock.held if self.mock is not None else None,
            "extra_bytes_per_inflight": (plateau - self.baseline) / self.cfg.requests,
        }


async def run(cfg: Config) -> dict[str, Any]:
    if cfg.client == "ours-batch":
        return await run_ours_batch(cfg)
    tally = Tally()
    extra: dict[str, Any] = {}
    mock = MockServer() if cfg.transport == "mock" else None
    window = _window(cfg)
    async with AsyncExitStack() as stack:
        make_one = await SETUPS[cfg.client](cfg, stack, tally, mock)
        events = None
        if cfg.client in ("ours-events-sub", "ours-events-cb"):
            events = await EventCounter.start(cfg, stack, tally.client)
        if cfg.warmup and window is None:
            warm = min(cfg.concurrency, cfg.warmup)
            await drive(make_one, cfg.warmup, warm, Tally(), cfg.warmup_seconds, None, cfg.ramp)
            if events is not None:
                await events.wait_for(2 * cfg.warmup)
        tally.retries = 0
        retries0 = 0 if tally.client is None else tally.client.stats().retries
        if events is not None:
            events.mark()
        memory = Memory(cfg, mock) if cfg.hold else None
        if memory is not None:
            memory.start()
        cpu0 = cpu_seconds()
        t0 = time.monotonic()
        async with time_limit(cfg.time_limit):
            await drive(
                make_one, cfg.requests, cfg.concurrency, tally, cfg.duration, window, cfg.ramp
            )
        elapsed = time.monotonic() - t0
        if events is not None:
            extra.update(await events.finish(2 * tally.done, t0))
        cpu = cpu_seconds() - cpu0
        if memory is not None:
            extra.update(memory.finish(tally.first_done))
        if tally.client is not None:
            tally.retries = tally.client.stats().retries - retries0
            extra["client_stats"] = _stats_dict(tally.client.stats())
    return summarize(cfg, tally, elapsed, cpu, extra, window)


def _window(cfg: Config) -> Window | None:
    if cfg.window is None:
        return None
    return Window(max(cfg.warmup, 1), cfg.warmup_seconds, cfg.window)


def _stats_dict(stats: Any) -> dict[str, Any]:
    keys = ("started", "succeeded", "failed", "cancelled", "attempts", "retries")
    return {key: getattr(stats, key) for key in keys} | {
        "events_emitted": stats.events_emitted,
        "events_dropped": stats.events_dropped,
    }


async def run_ours_batch(cfg: Config) -> dict[str, Any]:
    from typed_async_client import AsyncResilientClient, RequestStatus

    tally = Tally()
    mock = MockServer() if cfg.transport == "mock" else None
    extra: dict[str, Any] = {}
    window = _window(cfg)
    async with AsyncResilientClient(**_ours_options(cfg, mock)) as client:
        batches: list[Any] = []

        async def batch(n: int, duration: float | None) -> list[Any]:
            stop_at = time.monotonic() + (duration if duration is not None else 1e9)
            async with anyio.create_task_group() as tg:
                if window is not None:
                    stats = client.stats
                    tg.start_soon(window.watch, lambda: stats().succeeded + stats().failed)
                async with client.batch(max_concurrency=cfg.concurrency) as b:
                    batches.append(b)
                    for _ in range(n):
                        if time.monotonic() >= stop_at or (window and window.stop):
                            break
                        await b.get(cfg.url)
            return b.results

        if cfg.warmup and window is None:
            await batch(cfg.warmup, cfg.warmup_seconds)
        retries0 = client.stats().retries
        memory = Memory(cfg, mock) if cfg.hold else None
        if memory is not None:
            memory.start()
        cpu0 = cpu_seconds()
        t0 = time.monotonic()
        async with time_limit(cfg.time_limit):
            await batch(cfg.requests, cfg.duration)
        results = batches[-1].results if batches else []  # what ended, even if cut short
        elapsed = time.monotonic() - t0
        cpu = cpu_seconds() - cpu0
        first_end = None
        offset = time.monotonic() - time.time()  # wall clock -> monotonic clock
        for result in results:
            # total_time counts from submission, wait_time the wait for a batch slot.
            latency = result.total_time - result.wait_time
            first_end = result.end_time if first_end is None else min(first_end, result.end_time)
            response = result.response
            good = result.status is RequestStatus.SUCCESS and response.status_code == 200
            error = None if result.error is None else type(result.error).__name__
            tally.records.append((result.end_time + offset, latency, good, error))
        tally.records.sort()
        tally.retries = client.stats().retries - retries0
        extra["client_stats"] = _stats_dict(client.stats())
        if memory is not None:
            extra.update(memory.finish(None if first_end is None else first_end + offset))
    return summarize(cfg, tally, elapsed, cpu, extra, window)


class EventCounter:
    """Scenario d: one subscriber to every event, or callbacks on STARTED and SUCCESS."""

    def __init__(self, client: Any, mode: str) -> None:
        self.client = client
        self.mode = mode
        self.received = 0
        self.stream: Any = None
        self.dropped0 = 0

    @classmethod
    async def start(cls, cfg: Config, stack: AsyncExitStack, client: Any) -> EventCounter:
        from typed_async_client import EventType

        counter = cls(client, "subscriber" if cfg.client == "ours-events-sub" else "callbacks")
        if counter.mode == "subscriber":
            tg = await stack.enter_async_context(anyio.create_task_group())
            counter.stream = await stack.enter_async_context(client.events())
            tg.start_soon(counter._consume)
        else:
            client.add_event_callback(EventType.STARTED, counter._callback)
            client.add_event_callback(EventType.SUCCESS, counter._callback)
        return counter

    def dropped(self) -> int:
        if self.stream is not None:
            return int(self.stream.dropped)
        return int(self.client.stats().events_dropped)

    async def _consume(self) -> None:
        async for _event in self.stream:
            self.received += 1

    def _callback(self, event: Any) -> None:
        self.received += 1

    async def wait_for(self, expected: int, limit: float = 10.0) -> bool:
        """Wait (bounded) until ``expected`` events were delivered or dropped since mark()."""
        with anyio.move_on_after(limit):
            while self.received + self.dropped() - self.dropped0 < expected:  # noqa: ASYNC110
                await anyio.sleep(0.0005)
            return True
        return False

    def mark(self) -> None:
        self.received = 0
        self.dropped0 = self.dropped()

    async def finish(self, expected: int, t0: float) -> dict[str, Any]:
        at_end = self.received
        caught_up = await self.wait_for(expected)
        elapsed = time.monotonic() - t0
        return {
            "event_mode": self.mode,
            "events_expected": expected,
            "events_received": self.received,
            "events_received_when_requests_ended": at_end,
            "events_dropped": self.dropped() - self.dropped0,
            "events_caught_up": caught_up,
            "events_per_second": self.received / elapsed if elapsed else None,
            "events_elapsed": elapsed,
        }


def summarize(
    cfg: Config,
    tally: Tally,
    elapsed: float,
    cpu: float,
    extra: dict[str, Any],
    window: Window | None = None,
) -> dict[str, Any]:
    records = tally.records
    if window is not None and window.end > window.start:
        records = [r for r in records if window.start <= r[0] <= window.end]
        extra = {
            **extra,
            "window_s": window.end - window.start,
            "warm_requests": sum(1 for r in tally.records if r[0] < window.start),
            "all_requests": tally.done,
        }
        elapsed, cpu = window.end - window.start, window.cpu
    done = len(records)
    ok = sum(1 for r in records if r[2])
    errors = Counter(r[3] or "bad status" for r in records if not r[2])
    ordered = sorted(r[1] for r in records)
    p50 = percentile(ordered, 50)
    p99 = percentile(ordered, 99)
    return {
        "client": cfg.client,
        "backend": cfg.backend,
        "scenario": cfg.scenario,
        "transport": cfg.transport,
        "concurrency": cfg.concurrency,
        "requests": cfg.requests,
        "completed": done,
        "ok": ok,
        "errors": done - ok,
        "error_types": dict(errors),
        "retries": tally.retries,
        "elapsed": elapsed,
        "rps": done / elapsed if elapsed > 0 else None,
        "p50_ms": None if p50 is None else p50 * 1000,
        "p99_ms": None if p99 is None else p99 * 1000,
        "cpu_s": cpu,
        "cpu_per_1k": cpu / done * 1000 if done else None,
        "peak_rss": peak_rss_bytes(),
        **extra,
    }


def _pin(cpu: int | None) -> str:
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return "not pinned"
    try:
        available = os.sched_getaffinity(0)
        if cpu in available and len(available) > 1:
            os.sched_setaffinity(0, {cpu})
            return f"cpu {cpu}"
    except OSError as exc:
        return f"not pinned ({exc})"
    return "not pinned (one cpu)"


def main() -> None:
    cfg = Config(**json.loads(sys.argv[1]))
    if cfg.client in ASYNCIO_ONLY and cfg.backend != "asyncio":
        raise SystemExit(f"{cfg.client} runs on asyncio only")
    if cfg.transport == "mock" and cfg.client not in MOCKABLE:
        raise SystemExit(f"{cfg.client} has no mock transport")
    pinned = _pin(cfg.cpu)
    try:
        # Clients run on the standard asyncio loop (not uvloop), like most users' code.
        result = anyio.run(run, cfg, backend=cfg.backend)
        result["pinned"] = pinned
    except BaseException as exc:  # report it; never hang the runner
        result = {
            "client": cfg.client,
            "backend": cfg.backend,
            "scenario": cfg.scenario,
            "concurrency": cfg.concurrency,
            "failed": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc()[-3000:],
        }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
