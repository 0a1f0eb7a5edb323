"""
Where our client spends its time and memory: the hot spots in ``src/typed_async_client``.

    python benchmarks/profile_ours.py --url http://127.0.0.1:PORT/ [--requests 5000]
                                      [--concurrency 100] [--cpu 1] [--json]

1. CPU, scenario a: ``ours`` (``await (await client.get(url))`` from ``concurrency`` workers)
   against a keep-alive server (``benchmarks/server.py``), under cProfile, on asyncio and on
   trio; then the same request loop over an in-process ``httpx.MockTransport`` for ours and for
   bare httpx, so the layer's own cost is not hidden behind httpcore's pool. Reported: the
   share of all profiled time spent *in our functions' own code* (self time), the top
   functions of our package by self time, and by cumulative time.
2. Memory, scenario e: ``tracemalloc`` with ``--inflight`` requests held in flight over the
   in-process transport, for ours and for bare httpx: bytes per in-flight request, and the
   allocation sites that hold most of our extra bytes.

Without ``--url`` only the in-process parts run. ``--json`` prints one JSON line at the end.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import anyio
import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import clients  # noqa: E402

OURS = "typed_async_client"


def _ours(filename: str) -> bool:
    return f"{OURS}{os.sep}" in filename and f"{OURS}{os.sep}testing" not in filename


def _label(key: tuple[str, int, str]) -> str:
    filename, line, name = key
    filename = filename[filename.index(OURS) :] if _ours(filename) else Path(filename).name
    return f"{filename}:{line}({name})"


def cprofile(cfg: clients.Config, top: int = 12) -> dict[str, Any]:
    """Profile one run of ``cfg``; return our share and our top functions."""
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    result = anyio.run(clients.run, cfg, backend=cfg.backend)
    profiler.disable()
    wall = time.perf_counter() - started
    stats = pstats.Stats(profiler)
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_cc, _nc, tt, _ct, _callers) in entries.values()) or 1e-9
    ours = {key: value for key, value in entries.items() if _ours(key[0])}
    ours_self = sum(value[2] for value in ours.values())
    by_self = sorted(ours.items(), key=lambda item: item[1][2], reverse=True)[:top]
    by_cum = sorted(ours.items(), key=lambda item: item[1][3], reverse=True)[:top]
    overall = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)[:top]

    def row(key: tuple[str, int, str], value: tuple[Any, ...]) -> dict[str, Any]:
        _cc, calls, tt, ct, _callers = value
        return {
            "function": _label(key),
            "calls": calls,
            "self_s": round(tt, 4),
            "self_share": round(tt / total, 4),
            "cum_s": round(ct, 4),
            "cum_share": round(ct / total, 4),
            "self_us_per_request": round(tt / max(1, result["completed"]) * 1e6, 2),
        }

    per_request = max(1, result["completed"])
    by_function = {
        _label(key): round(value[2] / per_request * 1e6, 2)
        for key, value in entries.items()
        if value[2] / per_request * 1e6 >= 0.3
    }
    return {
        "self_us_by_function": by_function,
        "backend": cfg.backend,
        "transport": cfg.transport,
        "client": cfg.client,
        "requests": result["completed"],
        "rps_under_profiler": round(result["rps"], 1) if result.get("rps") else None,
        "wall_s": round(wall, 3),
        "profiled_s": round(total, 3),
        "ours_self_s": round(ours_self, 4),
        "ours_self_share": round(ours_self / total, 4),
        "ours_self_us_per_request": round(ours_self / max(1, result["completed"]) * 1e6, 2),
        "top_self": [row(k, v) for k, v in by_self],
        "top_cumulative": [row(k, v) for k, v in by_cum],
        "top_overall": [row(k, v) for k, v in overall],
    }


async def _held(client_name: str, inflight: int, backend: str) -> dict[str, Any]:
    """Hold ``inflight`` requests over the mock transport; tracemalloc them at the peak."""
    mock = clients.MockServer()
    snapshots: dict[str, Any] = {}
    original = mock.handler

    async def handler(request: httpx.Request) -> httpx.Response:
        if mock.target and mock.held + 1 >= mock.target:
            snapshots["peak"] = tracemalloc.take_snapshot()
            snapshots["peak_traced"] = tracemalloc.get_traced_memory()[0]
        return await original(request)

    mock.handler = handler  # type: ignore[method-assign]
    cfg = clients.Config(
        client=client_name,
        backend=backend,
        scenario="e",
        url="http://bench.invalid/",
        requests=inflight,
        concurrency=inflight,
        transport="mock",
        hold=True,
    )
    tally = clients.Tally()
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:
        if client_name == "ours-batch":
            from typed_async_client import AsyncResilientClient

            client = await stack.enter_async_context(
                AsyncResilientClient(**clients._ours_options(cfg, mock))
            )

            async def submit_all(n: int) -> None:
                async with client.batch(max_concurrency=inflight) as batch:
                    for _ in range(n):
                        await batch.get(cfg.url)

            await submit_all(10)
            gc.collect()
            base_snapshot = tracemalloc.take_snapshot()
            base = tracemalloc.get_traced_memory()[0]
            mock.arm(inflight)
            await submit_all(inflight)
        else:
            make_one = await clients.SETUPS[client_name](cfg, stack, tally, mock)
            await clients.drive(make_one, 10, 10, clients.Tally())
            gc.collect()
            base_snapshot = tracemalloc.take_snapshot()
            base = tracemalloc.get_traced_memory()[0]
            mock.arm(inflight)
            await clients.drive(make_one, inflight, inflight, tally)
    peak = snapshots.get("peak_traced", base)
    diff = snapshots["peak"].compare_to(base_snapshot, "lineno") if "peak" in snapshots else []
    sites = []
    for stat in diff[:15]:
        frame = stat.traceback[0]
        name = frame.filename
        name = name[name.index(OURS) :] if OURS in name else "/".join(Path(name).parts[-2:])
        sites.append(
            {
                "site": f"{name}:{frame.lineno}",
                "bytes_per_request": round(stat.size_diff / inflight, 1),
                "count_per_request": round(stat.count_diff / inflight, 2),
            }
        )
    return {
        "client": client_name,
        "backend": backend,
        "inflight": inflight,
        "traced_bytes_per_request": round((peak - base) / inflight, 1),
        "top_sites": sites,
    }


def memory(inflight: int, backend: str) -> list[dict[str, Any]]:
    out = []
    for name in ("httpx", "ours", "ours-batch"):
        tracemalloc.start(1)
        try:
            out.append(anyio.run(_held, name, inflight, backend, backend=backend))
        finally:
            tracemalloc.stop()
        gc.collect()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--url", default=None, help="the keep-alive server (benchmarks/server.py)")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--inflight", type=int, default=10_000)
    parser.add_argument("--cpu", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    out: dict[str, Any] = {"cpu": [], "memory": []}
    runs: list[tuple[str, str, str]] = []
    if args.url:
        runs += [("ours", "asyncio", "socket"), ("ours", "trio", "socket")]
    runs += [
        ("ours", "asyncio", "mock"),
        ("httpx", "asyncio", "mock"),
        ("ours", "trio", "mock"),
        ("httpx", "trio", "mock"),
    ]
    for client, backend, transport in runs:
        cfg = clients.Config(
            client=client,
            backend=backend,
            scenario="a",
            url=args.url if transport == "socket" else "http://bench.invalid/",
            requests=args.requests,
            concurrency=args.concurrency,
            warmup=min(args.concurrency, 100),
            transport=transport,
            time_limit=120,
        )
        found = cprofile(cfg)
        out["cpu"].append(found)
        if not args.json:
            print(
                f"\n== {client} on {backend}, {transport} transport: our self time "
                f"{found['ours_self_share']:.1%} of {found['profiled_s']} s profiled"
            )
            for row in found["top_self"]:
                print(
                    f"  {row['self_share']:6.1%} self {row['cum_share']:6.1%} cum  "
                    f"{row['calls']:>8}  {row['function']}"
                )
    inflight = max(100, min(args.inflight, 10_000))
    for backend in ("asyncio", "trio"):
        found_memory = memory(inflight, backend)
        out["memory"].extend(found_memory)
        if not args.json:
            for item in found_memory:
                print(
                    f"\n== memory, {item['client']} on {backend}: "
                    f"{item['traced_bytes_per_request']} traced bytes per in-flight request"
                )
                for site in item["top_sites"][:8]:
                    print(
                        f"  {site['bytes_per_request']:>8} B  {site['count_per_request']:>5}  "
                        f"{site['site']}"
                    )
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
