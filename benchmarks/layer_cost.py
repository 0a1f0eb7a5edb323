"""
The cost of our layer alone, in-process, over httpx's MockTransport (no socket, no pool).

    python benchmarks/layer_cost.py [--backend asyncio|trio] [--requests 3000] [--rounds 7]

For three clients driven the same way (``--concurrency`` workers, one request after the other):

* ``bare``: a bare ``httpx.AsyncClient``;
* ``floor``: bare httpx with each request in a task of its own, created by an anyio task group
  and awaited by its worker: the structure the specification asks for, without our code;
* ``ours``: ``await (await client.get(url))`` on an ``AsyncResilientClient``.

it prints the CPU per request (best of ``--rounds`` alternating rounds: the machine's noise only
adds), the garbage collector's time per request, and the traced bytes per request in flight
(``--inflight`` requests held by the transport at once). The differences ``floor - bare`` and
``ours - floor`` are what the structure costs and what our code costs on top of it.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx

from typed_async_client import AsyncResilientClient

URL = "http://127.0.0.1:8000/layer-cost"  # never connected: the mock transport answers
One = Callable[[], Awaitable[Any]]


class GcClock:
    """Seconds spent in the garbage collector since the last reset."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started


class Holder:
    """The mock server: answers at once, or holds requests until ``target`` are held."""

    def __init__(self) -> None:
        self.target = 0
        self.held = 0
        self.all_held = anyio.Event()
        self.release = anyio.Event()

    async def handler(self, request: httpx.Request) -> httpx.Response:
        if self.target:
            self.held += 1
            if self.held >= self.target:
                self.all_held.set()
            await self.release.wait()
        return httpx.Response(200, content=b"ok")


@asynccontextmanager
async def client_for(kind: str, holder: Holder, pool: int) -> AsyncIterator[One]:
    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    transport = httpx.MockTransport(holder.handler)
    if kind == "ours":
        async with AsyncResilientClient(transport=transport, limits=limits) as ours:

            async def one_ours() -> Any:
                return await (await ours.get(URL))

            yield one_ours
        return
    async with (
        httpx.AsyncClient(transport=transport, limits=limits) as bare,
        anyio.create_task_group() as owner,
    ):

        async def get() -> httpx.Response:
            return await bare.get(URL)

        async def one_floor() -> Any:
            return await owner.create_task(get())

        yield get if kind == "bare" else one_floor


async def drive(one: One, requests: int, concurrency: int) -> None:
    left = requests

    async def worker() -> None:
        nonlocal left
        for _ in range(requests):  # bounded: at most `requests` each
            if left <= 0:
                return
            left -= 1
            await one()

    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)


async def cpu_round(kind: str, args: argparse.Namespace, clock: GcClock) -> tuple[float, float]:
    """CPU and GC microseconds per request, after a warm-up that fills the result store."""
    holder = Holder()
    async with client_for(kind, holder, max(args.concurrency, 10)) as one:
        await drive(one, args.warmup, args.concurrency)
        clock.seconds = 0.0
        started = time.process_time()
        await drive(one, args.requests, args.concurrency)
        cpu = time.process_time() - started
    return cpu / args.requests * 1e6, clock.seconds / args.requests * 1e6


async def bytes_in_flight(kind: str, inflight: int) -> float:
    """Traced bytes per request while ``inflight`` requests are held by the transport."""
    holder = Holder()
    async with client_for(kind, holder, inflight + 10) as one:
        await drive(one, 20, 10)
        holder.target = inflight
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            async with anyio.create_task_group() as tg:
                for _ in range(inflight):
                    tg.start_soon(one)
                with anyio.fail_after(60):
                    await holder.all_held.wait()
                gc.collect()
                during = tracemalloc.take_snapshot()
                holder.release.set()
        finally:
            tracemalloc.stop()
    return sum(stat.size_diff for stat in during.compare_to(before, "filename")) / inflight


async def main(args: argparse.Namespace) -> None:
    clock = GcClock()
    kinds = ("bare", "floor", "ours")
    cpu: dict[str, list[float]] = {kind: [] for kind in kinds}
    gc_us: dict[str, list[float]] = {kind: [] for kind in kinds}
    for number in range(args.rounds):
        order = kinds if number % 2 == 0 else kinds[::-1]
        for kind in order:
            used, collected = await cpu_round(kind, args, clock)
            cpu[kind].append(used)
            gc_us[kind].append(collected)
    memory = {kind: await bytes_in_flight(kind, args.inflight) for kind in kinds}
    best = {kind: min(values) for kind, values in cpu.items()}
    print(
        f"{args.backend}, concurrency {args.concurrency}, {args.requests:,} requests x "
        f"{args.rounds} rounds (best round), {args.inflight:,} in flight for memory"
    )
    print("client  CPU us/request  GC us/request (median)  bytes per request in flight")
    for kind in kinds:
        median_gc = sorted(gc_us[kind])[len(gc_us[kind]) // 2]
        print(f"{kind:6}  {best[kind]:14.1f}  {median_gc:22.1f}  {memory[kind]:27,.0f}")
    print(
        f"structure (floor - bare): {best['floor'] - best['bare']:+.1f} us, "
        f"{memory['floor'] - memory['bare']:+,.0f} B; "
        f"our code (ours - floor): {best['ours'] - best['floor']:+.1f} us, "
        f"{memory['ours'] - memory['floor']:+,.0f} B"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=3_000)
    parser.add_argument("--warmup", type=int, default=1_500)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--inflight", type=int, default=2_000)
    arguments = parser.parse_args()
    for name in ("concurrency", "requests", "warmup", "rounds", "inflight"):
        if getattr(arguments, name) < 1:
            parser.error(f"--{name} must be >= 1")
    anyio.run(main, arguments, backend=arguments.backend)
