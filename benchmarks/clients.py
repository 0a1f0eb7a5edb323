"""
One client under test, in its own process, for one scenario: the child side of ``run.py``.

    python benchmarks/clients.py '{"client": "ours", "backend": "asyncio", "scenario": "a",
                                   "url": "http://127.0.0.1:PORT/", "requests": 5000,
                                   "concurrency": 100}'

It prints one JSON line: requests completed, successes, errors (by type), retries, elapsed
time, latency percentiles, CPU seconds of the timed section (``resource.getrusage`` of this
process), peak RSS, and the scenario's own figures (events, memory).

Every client is driven the same way: ``concurrency`` workers each send requests one after the
other until ``requests`` have been sent (bounded in count, and in time by ``time_limit``). The
one exception is ``ours-batch``, which uses the library's own ``client.batch(max_concurrency=)``.
Every client gets the same retry budget in the fault scenarios: 10 retries (11 attempts),
exponential backoff from 10 ms capped at 1 s, with jitter where the library has it.

Clients (``client`` / ``backend``):

* ``ours`` (asyncio, trio): ``AsyncResilientClient``, ``await (await client.get(url))``;
* ``ours-batch`` (asyncio, trio): the same client through ``client.batch()``;
* ``ours-events-sub`` / ``ours-events-cb``: ``ours`` with one ``client.events()`` subscriber
  to every event, or a plain callback on ``STARTED`` and ``SUCCESS`` (scenario d);
* ``httpx`` (asyncio, trio): a bare ``httpx.AsyncClient``, no retries;
* ``tenacity``, ``stamina``, ``httpx-retries``: httpx with that retry library (asyncio);
* ``aiohttp-retry``: aiohttp with aiohttp-retry (asyncio);
* ``raw``: a minimal asyncio Protocol client, one keep-alive connection per worker: the limit.
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
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
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


@dataclass
class Config:
    client: str
    backend: str
    scenario: str
    url: str
    requests: int
    concurrency: int
    policy: str = "connect"  # "connect": connection errors only; "transient": + 503 Retry-After
    warmup: int = 0
    time_limit: float = 60.0
    cpu: int | None = None
    hold: bool = False  # scenario e: requests to /hold/N, RSS sampled while they are held


@dataclass
class Tally:
    ok: int = 0
    errors: int = 0
    error_types: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    retries: int = 0
    first_done: float | None = None
    client: Any = None  # ours: the AsyncResilientClient, for its stats and events

    def record(self, good: bool, latency: float, error: str | None = None) -> None:
        if self.first_done is None:
            self.first_done = time.monotonic()
        self.latencies.append(latency)
        if good:
            self.ok += 1
        else:
            self.errors += 1
            self.error_types[error or "bad status"] += 1


# -- the common driver ------------------------------------------------------------------------


async def drive(make_one: Callable[[], One], n: int, concurrency: int, tally: Tally) -> bool:
    """``concurrency`` workers send ``n`` requests in all; returns whether all were sent."""
    sent = 0

    async def worker() -> None:
        nonlocal sent
        one = make_one()
        while sent < n:
            sent += 1
            start = time.perf_counter()
            try:
                good = await one()
            except Exception as exc:
                tally.record(False, time.perf_counter() - start, type(exc).__name__)
            else:
                tally.record(good, time.perf_counter() - start)

    async with anyio.create_task_group() as tg:
        for _ in range(min(concurrency, n)):
            tg.start_soon(worker)
    return sent >= n


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


# -- the clients --------------------------------------------------------------------------------


async def setup_ours(cfg: Config, stack: AsyncExitStack, tally: Tally) -> Callable[[], One]:
    from typed_async_client import (  # noqa: PLC0415
        AsyncResilientClient,
        RequestContext,
        RetryPolicy,
    )

    options: dict[str, Any] = {}
    if cfg.scenario in ("b", "c"):
        options["default_context"] = RequestContext(
            max_retries=MAX_RETRIES, base_delay=BASE_DELAY, max_delay=MAX_DELAY
        )
    if cfg.policy == "transient":
        options["retry_policy"] = RetryPolicy.transient()
    client = await stack.enter_async_context(
        AsyncResilientClient(limits=_limits(cfg), timeout=_timeout(cfg), **options)
    )
    tally.client = client

    async def one() -> bool:
        handle = await client.get(cfg.url)
        response = await handle
        return response.status_code == 200

    return lambda: one


async def setup_httpx(cfg: Config, stack: AsyncExitStack, tally: Tally) -> Callable[[], One]:
    client = await stack.enter_async_context(
        httpx.AsyncClient(limits=_limits(cfg), timeout=_timeout(cfg))
    )
    async def one() -> bool:
        response = await client.get(cfg.url)
        return response.status_code == 200

    return lambda: one


async def setup_tenacity(cfg: Config, stack: AsyncExitStack, tally: Tally) -> Callable[[], One]:
    import tenacity  # noqa: PLC0415

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
        return exponential(state)

    def count(state: tenacity.RetryCallState) -> None:
        tally.retries += 1

    retry = tenacity.retry_if_exception_type(httpx.ConnectError)
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


async def setup_stamina(cfg: Config, stack: AsyncExitStack, tally: Tally) -> Callable[[], One]:
    import stamina  # noqa: PLC0415

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
    cfg: Config, stack: AsyncExitStack, tally: Tally
) -> Callable[[], One]:
    from httpx_retries import Retry, RetryTransport  # noqa: PLC0415

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
        retry_on_exceptions=[httpx.ConnectError]
        if cfg.policy == "connect"
        else [httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError],
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
    cfg: Config, stack: AsyncExitStack, tally: Tally
) -> Callable[[], One]:
    import aiohttp  # noqa: PLC0415
    from aiohttp_retry import ExponentialRetry, RetryClient  # noqa: PLC0415

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
            return response.status == 200

    return lambda: one


async def setup_raw(cfg: Config, stack: AsyncExitStack, tally: Tally) -> Callable[[], One]:
    import asyncio  # noqa: PLC0415

    parts = urlsplit(cfg.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    requests: dict[str, bytes] = {}

    def request_for(url: str) -> bytes:
        request = requests.get(url)
        if request is None:
            target = urlsplit(url).path or "/"
            request = requests[url] = f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
        return request

    transient = cfg.policy == "transient"
    loop = asyncio.get_running_loop()
    connections: list[RawConnection] = []
    stack.callback(lambda: [c.close() for c in connections])

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
                        await asyncio.sleep(
                            random.uniform(0, min(MAX_DELAY, BASE_DELAY * 2**attempt))
                        )
                        continue
                    connections.append(conn)
                    state[0] = conn
                status, close = await conn.send(request_for(cfg.url))
                if close:
                    conn.close()
                    state[0] = None
                if status == 503 and transient and attempt < MAX_RETRIES:
                    tally.retries += 1
                    continue
                return status == 200
            return False

        return one

    return make_one


class RawConnection:
    """An asyncio Protocol that sends one request at a time and parses the response head."""

    def __init__(self) -> None:
        import asyncio  # noqa: PLC0415

        self._asyncio = asyncio
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
        self.waiter = self._asyncio.get_running_loop().create_future()
        self.transport.write(request)
        result: tuple[int, bool] = await self.waiter
        return result

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()


SETUPS: dict[str, Callable[[Config, AsyncExitStack, Tally], Awaitable[Callable[[], One]]]] = {
    "ours": setup_ours,
    "ours-events-sub": setup_ours,
    "ours-events-cb": setup_ours,
    "httpx": setup_httpx,
    "tenacity": setup_tenacity,
    "stamina": setup_stamina,
    "httpx-retries": setup_httpx_retries,
    "aiohttp-retry": setup_aiohttp_retry,
    "raw": setup_raw,
}
ASYNCIO_ONLY = {"tenacity", "stamina", "httpx-retries", "aiohttp-retry", "raw"}


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
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


async def run(cfg: Config) -> dict[str, Any]:
    tally = Tally()
    extra: dict[str, Any] = {}
    async with AsyncExitStack() as stack:
        if cfg.client == "ours-batch":
            return await run_ours_batch(cfg, stack, tally)
        make_one = await SETUPS[cfg.client](cfg, stack, tally)
        events = None
        if cfg.client in ("ours-events-sub", "ours-events-cb"):
            events = await EventCounter.start(cfg, stack, tally.client)
        if cfg.warmup:
            await drive(make_one, cfg.warmup, min(cfg.concurrency, cfg.warmup), Tally())
            if events is not None:
                await events.wait_for(2 * cfg.warmup)
        tally.retries = 0
        retries0 = 0 if tally.client is None else tally.client.stats().retries
        if cfg.hold:
            # The closures read cfg.url at each call: the timed requests are held.
            cfg.url = cfg.url.rstrip("/") + f"/hold/{cfg.requests}"
        if events is not None:
            events.mark()
        baseline = rss_bytes()
        sampler = RssSampler() if cfg.hold else None
        cpu0 = cpu_seconds()
        t0 = time.monotonic()
        complete = False
        with anyio.move_on_after(cfg.time_limit):
            if sampler is not None:
                with sampler:
                    complete = await drive(make_one, cfg.requests, cfg.concurrency, tally)
            else:
                complete = await drive(make_one, cfg.requests, cfg.concurrency, tally)
        elapsed = time.monotonic() - t0
        if events is not None:
            extra.update(await events.finish(2 * cfg.requests, t0))
        cpu = cpu_seconds() - cpu0
        if tally.client is not None:
            tally.retries = tally.client.stats().retries - retries0
            extra["client_stats"] = _stats_dict(tally.client.stats())
        if sampler is not None:
            plateau = sampler.peak_before(tally.first_done)
            extra.update(
                baseline_rss=baseline,
                plateau_rss=plateau,
                extra_bytes_per_inflight=(plateau - baseline) / cfg.requests,
                rss_samples=len(sampler.samples),
            )
    return summarize(cfg, tally, elapsed, cpu, complete, extra)


def _stats_dict(stats: Any) -> dict[str, Any]:
    keys = ("started", "succeeded", "failed", "cancelled", "attempts", "retries")
    return {key: getattr(stats, key) for key in keys} | {
        "events_emitted": stats.events_emitted,
        "events_dropped": stats.events_dropped,
    }


async def run_ours_batch(cfg: Config, stack: AsyncExitStack, tally: Tally) -> dict[str, Any]:
    from typed_async_client import (  # noqa: PLC0415
        AsyncResilientClient,
        RequestContext,
        RequestStatus,
    )

    options: dict[str, Any] = {}
    if cfg.scenario in ("b", "c"):
        options["default_context"] = RequestContext(
            max_retries=MAX_RETRIES, base_delay=BASE_DELAY, max_delay=MAX_DELAY
        )
    if cfg.policy == "transient":
        from typed_async_client import RetryPolicy  # noqa: PLC0415

        options["retry_policy"] = RetryPolicy.transient()
    client = await stack.enter_async_context(
        AsyncResilientClient(limits=_limits(cfg), timeout=_timeout(cfg), **options)
    )

    async def batch(url: str, n: int) -> list[Any]:
        async with client.batch(max_concurrency=cfg.concurrency) as b:
            for _ in range(n):
                await b.get(url)
        return b.results

    if cfg.warmup:
        await batch(cfg.url, cfg.warmup)
    retries0 = client.stats().retries
    url = cfg.url.rstrip("/") + f"/hold/{cfg.requests}" if cfg.hold else cfg.url
    baseline = rss_bytes()
    sampler = RssSampler() if cfg.hold else None
    results: list[Any] = []
    extra: dict[str, Any] = {}
    cpu0 = cpu_seconds()
    t0 = time.monotonic()
    with anyio.move_on_after(cfg.time_limit):
        if sampler is not None:
            with sampler:
                results = await batch(url, cfg.requests)
        else:
            results = await batch(url, cfg.requests)
    elapsed = time.monotonic() - t0
    cpu = cpu_seconds() - cpu0
    first_end = None
    for result in results:
        latency = result.total_time - result.wait_time
        first_end = result.end_time if first_end is None else min(first_end, result.end_time)
        good = result.status is RequestStatus.SUCCESS and result.response.status_code == 200
        error = None if result.error is None else type(result.error).__name__
        tally.record(good, latency, error)
    tally.retries = client.stats().retries - retries0
    if sampler is not None:
        # end_time is wall-clock time: convert the first end to the monotonic clock.
        moment = None if first_end is None else time.monotonic() - (time.time() - first_end)
        plateau = sampler.peak_before(moment)
        extra.update(
            baseline_rss=baseline,
            plateau_rss=plateau,
            extra_bytes_per_inflight=(plateau - baseline) / cfg.requests,
            rss_samples=len(sampler.samples),
        )
    return summarize(cfg, tally, elapsed, cpu, len(results) == cfg.requests, extra)


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
        from typed_async_client import EventType  # noqa: PLC0415

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
            while self.received + self.dropped() - self.dropped0 < expected:
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
    complete: bool,
    extra: dict[str, Any],
) -> dict[str, Any]:
    done = tally.ok + tally.errors
    ordered = sorted(tally.latencies)
    p50 = percentile(ordered, 50)
    p99 = percentile(ordered, 99)
    return {
        "client": cfg.client,
        "backend": cfg.backend,
        "scenario": cfg.scenario,
        "concurrency": cfg.concurrency,
        "requests": cfg.requests,
        "completed": done,
        "complete": complete and done == cfg.requests,
        "ok": tally.ok,
        "errors": tally.errors,
        "error_types": dict(tally.error_types),
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
    raw = json.loads(sys.argv[1])
    cfg = Config(**raw)
    if cfg.client in ASYNCIO_ONLY and cfg.backend != "asyncio":
        raise SystemExit(f"{cfg.client} runs on asyncio only")
    pinned = _pin(cfg.cpu)
    try:
        # Clients run on the standard asyncio loop (not uvloop), like most users' code.
        result = anyio.run(run, cfg, backend=cfg.backend)
        result["pinned"] = pinned
    except BaseException as exc:  # report, do not hang the runner
        result = {
            "client": cfg.client,
            "backend": cfg.backend,
            "scenario": cfg.scenario,
            "concurrency": cfg.concurrency,
            "failed": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc()[-2000:],
        }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
