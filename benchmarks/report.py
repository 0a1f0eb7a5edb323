"""
Turn the raw results of ``run.py`` into figures and into ``docs/benchmarks.md``.

``summarize`` groups the runs by scenario, concurrency, client and backend and computes, per
group: the median requests per second with its min and max over the rounds, the ratio to bare
httpx taken pair by pair (the bare httpx run of the same round, scenario, concurrency and
backend; asyncio for the asyncio-only peers), CPU seconds per 1,000 requests, p99 latency,
peak RSS, retries and errors. ``markdown`` writes the page.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

LABELS = {
    "ours": "typed-async-client",
    "ours-batch": "typed-async-client, client.batch()",
    "ours-events-sub": "typed-async-client + 1 subscriber",
    "ours-events-cb": "typed-async-client + callbacks",
    "httpx": "bare httpx",
    "httpx-task": "bare httpx, a task per request (our design's floor)",
    "tenacity": "httpx + tenacity",
    "stamina": "httpx + stamina",
    "httpx-retries": "httpx + httpx-retries",
    "aiohttp-retry": "aiohttp + aiohttp-retry",
    "raw": "raw asyncio Protocol (the limit)",
}
OURS = ("ours", "ours-batch")
TARGET_RATIO = 0.95
TARGET_EXTRA_BYTES = 2048


def label(client: str, backend: str) -> str:
    return f"{LABELS.get(client, client)} ({backend})"


def one_line(result: dict[str, Any]) -> str:
    """A progress line for the log."""
    head = (
        f"  {result.get('scenario')} c={result.get('concurrency')} "
        f"{result.get('client')}/{result.get('backend')} r{result.get('round')}"
    )
    if "failed" in result:
        return f"{head}: FAILED {result['failed']}"
    rps = result.get("rps") or 0
    text = (
        f"{head}: {rps:,.0f} req/s, {result.get('ok')}/{result.get('completed')} ok, "
        f"{result.get('retries')} retries, p99 {result.get('p99_ms') or 0:.1f} ms, "
        f"cpu {result.get('cpu_per_1k') or 0:.3f} s/1k"
    )
    if result.get("events_per_second") is not None:
        text += (
            f", {result['events_per_second']:,.0f} events/s, {result.get('events_dropped')} dropped"
        )
    if result.get("extra_bytes_per_inflight") is not None:
        text += f", {result['extra_bytes_per_inflight']:,.0f} B per in-flight request"
    if result.get("kernel_refused") is not None:
        text += f", {result['kernel_refused']} connections refused by nftables"
    return text


def _med(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _span(values: list[float]) -> dict[str, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def _key(result: dict[str, Any]) -> tuple[str, int, str, str]:
    return (result["scenario"], result["concurrency"], result["client"], result["backend"])


def summarize(data: dict[str, Any]) -> dict[str, Any]:
    results = [r for r in data["results"] if r.get("scenario")]
    by_key: dict[tuple[str, int, str, str], list[dict[str, Any]]] = defaultdict(list)
    for result in results:
        by_key[_key(result)].append(result)
    # The bare httpx run of the same round, scenario, concurrency and backend.
    bare: dict[tuple[str, int, str, Any], dict[str, Any]] = {}
    for result in results:
        if result["client"] == "httpx" and "failed" not in result:
            key = (result["scenario"], result["concurrency"], result["backend"], result["round"])
            bare[key] = result
    groups = []
    for key, runs in by_key.items():
        scenario, concurrency, client, backend = key
        good = [r for r in runs if "failed" not in r]
        ratios = []
        for run in good:
            pair = bare.get((scenario, concurrency, backend, run.get("round")))
            if pair is not None and pair.get("rps") and run.get("rps") and client != "httpx":
                ratios.append(run["rps"] / pair["rps"])
        completed = sum(r.get("completed", 0) for r in good)
        ok = sum(r.get("ok", 0) for r in good)
        group: dict[str, Any] = {
            "scenario": scenario,
            "concurrency": concurrency,
            "client": client,
            "backend": backend,
            "label": label(client, backend),
            "runs": len(runs),
            "failed_runs": [r["failed"] for r in runs if "failed" in r],
            "rps": _span([r.get("rps") for r in good]),
            "ratio": _span(ratios),
            "cpu_per_1k": _med([r.get("cpu_per_1k") for r in good]),
            "p99_ms": _med([r.get("p99_ms") for r in good]),
            "peak_rss": max((r.get("peak_rss", 0) for r in good), default=None),
            "retries": _med([r.get("retries") for r in good]),
            "errors": sum(r.get("errors", 0) for r in good),
            "errors_per_run": _med([r.get("errors") for r in good]),
            "completed": completed,
            "ok": ok,
            "requests_per_run": _med([r.get("completed") for r in good]),
            "success_rate": ok / completed if completed else None,
            "error_types": _merge([r.get("error_types", {}) for r in good]),
            "events_emitted": _sum_stat(good, "events_emitted"),
        }
        if scenario == "b":
            group["kernel_refused"] = _med([r.get("kernel_refused") for r in good])
            group["lost"] = _lost(good)
        if scenario in ("b", "c"):
            group["server_requests"] = _med([(r.get("server") or {}).get("requests") for r in good])
            group["server_503"] = _med([(r.get("server") or {}).get("failed_503") for r in good])
        if scenario == "d":
            group["events_per_second"] = _span([r.get("events_per_second") for r in good])
            group["events_dropped"] = _med([r.get("events_dropped") for r in good])
            group["events_expected"] = _med([r.get("events_expected") for r in good])
            group["events_received"] = _med([r.get("events_received") for r in good])
        if scenario == "e":
            group["extra_bytes"] = _span([r.get("extra_bytes_per_inflight") for r in good])
            group["plateau_rss"] = _med([r.get("plateau_rss") for r in good])
            group["baseline_rss"] = _med([r.get("baseline_rss") for r in good])
            group["held_at_once"] = _med([r.get("held_at_once") for r in good])
        groups.append(group)
    summary: dict[str, Any] = {"groups": groups}
    summary["targets"] = targets(groups)
    return summary


def _sum_stat(runs: list[dict[str, Any]], key: str) -> int | None:
    values = [r["client_stats"][key] for r in runs if r.get("client_stats")]
    return sum(values) if values else None


def _merge(counters: list[dict[str, int]]) -> dict[str, int]:
    merged: dict[str, int] = defaultdict(int)
    for counter in counters:
        for name, count in counter.items():
            merged[name] += count
    return dict(merged)


def _lost(runs: list[dict[str, Any]]) -> int:
    """Requests whose end was never recorded: submitted but neither succeeded nor failed."""
    lost = 0
    for run in runs:
        lost += max(0, run.get("requests", 0) - run.get("completed", 0))
        stats = run.get("client_stats")
        if stats:
            ended = stats["succeeded"] + stats["failed"] + stats["cancelled"]
            lost += max(0, stats["started"] - ended)
    return lost


def find(groups: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    return [g for g in groups if all(g.get(k) == v for k, v in match.items())]


def targets(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, each with what was measured and whether it is met."""
    rows = []
    for backend in ("asyncio", "trio"):
        for group in sorted(
            find(groups, scenario="a", client="ours", backend=backend),
            key=lambda g: g["concurrency"],
        ):
            ratio = group["ratio"]["median"]
            floor = find(
                groups,
                scenario="a",
                client="httpx-task",
                backend=backend,
                concurrency=group["concurrency"],
            )
            floor_ratio = floor[0]["ratio"]["median"] if floor else None
            rows.append(
                {
                    "target": f"happy path >= {TARGET_RATIO}x bare httpx, {backend}, "
                    f"concurrency {group['concurrency']:,}",
                    "measured": None
                    if ratio is None
                    else f"{ratio:.2f}x "
                    f"(min {group['ratio']['min']:.2f}, max {group['ratio']['max']:.2f})"
                    + ("" if floor_ratio is None else f"; floor {floor_ratio:.2f}x"),
                    "met": None if ratio is None else ratio >= TARGET_RATIO,
                    "gap": None
                    if ratio is None or ratio >= TARGET_RATIO
                    else f"{(TARGET_RATIO - ratio) / TARGET_RATIO:.0%} short",
                }
            )
    for group in find(groups, scenario="b"):
        if group["client"] not in OURS:
            continue
        rate = group["success_rate"]
        rows.append(
            {
                "target": f"scenario b: 100 % success, no lost result ({group['label']})",
                "measured": None
                if rate is None
                else f"{rate:.2%} success, {group['lost']} lost, {group['errors']} errors",
                "met": rate == 1.0 and group["lost"] == 0,
                "gap": None,
            }
        )
    for backend in ("asyncio", "trio"):
        base = find(groups, scenario="e", client="httpx", backend=backend)
        for client in OURS:
            mine = find(groups, scenario="e", client=client, backend=backend)
            if not base or not mine:
                continue
            b, m = base[0]["extra_bytes"]["median"], mine[0]["extra_bytes"]["median"]
            if b is None or m is None:
                continue
            extra = m - b
            floor = find(groups, scenario="e", client="httpx-task", backend=backend)
            floor_extra = (
                None
                if client != "ours" or not floor or floor[0]["extra_bytes"]["median"] is None
                else floor[0]["extra_bytes"]["median"] - b
            )
            rows.append(
                {
                    "target": "extra memory per in-flight request <= 2 KiB "
                    f"({label(client, backend)})",
                    "measured": f"{extra:,.0f} B ({m:,.0f} B vs {b:,.0f} B for bare httpx)"
                    + ("" if floor_extra is None else f"; floor {floor_extra:,.0f} B"),
                    "met": extra <= TARGET_EXTRA_BYTES,
                    "gap": None
                    if extra <= TARGET_EXTRA_BYTES
                    else f"{extra - TARGET_EXTRA_BYTES:,.0f} B over",
                }
            )
    return [*rows, _unobserved(groups)]


def _unobserved(groups: list[dict[str, Any]]) -> dict[str, Any]:
    """Events built while nobody listened: ``events_emitted`` of ours in scenarios a to c."""
    emitted = [
        g["events_emitted"]
        for g in groups
        if g["client"] in OURS and g["scenario"] in "abc" and g["events_emitted"] is not None
    ]
    if not emitted:
        return {
            "target": "no event built when nobody listens",
            "measured": "not measured",
            "met": None,
            "gap": None,
        }
    total = sum(emitted)
    return {
        "target": "no event built when nobody listens (ours in scenarios a-c, no observer)",
        "measured": f"{total} events built (client.stats().events_emitted)",
        "met": total == 0,
        "gap": None if total == 0 else f"{total} events built",
    }


# -- markdown ----------------------------------------------------------------------------------


def _n(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _range(span: dict[str, Any], digits: int = 0) -> str:
    if span["median"] is None:
        return "-"
    return f"{_n(span['median'], digits)} ({_n(span['min'], digits)}-{_n(span['max'], digits)})"


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:,.1f}"


def _throughput_table(groups: list[dict[str, Any]], with_faults: bool) -> list[str]:
    head = "| client | req/s median (min-max) | ratio to bare httpx | CPU s / 1k req | p99 ms "
    head += "| peak RSS MiB | retries / run | errors |"
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    if with_faults:
        lines[0] = head + " success |"
        lines[1] += "---:|"
    for g in groups:
        ratio = "pair" if g["client"] == "httpx" else _range(g["ratio"], 2)
        row = (
            f"| {g['label']} | {_range(g['rps'])} | {ratio} | {_n(g['cpu_per_1k'], 3)} "
            f"| {_n(g['p99_ms'], 1)} | {_mib(g['peak_rss'])} | {_n(g['retries'])} "
            f"| {g['errors']} |"
        )
        if with_faults:
            rate = g["success_rate"]
            row += f" {'-' if rate is None else f'{rate:.1%}'} |"
        if g["failed_runs"]:
            row += f" (failed runs: {len(g['failed_runs'])}: {g['failed_runs'][0][:80]})"
        lines.append(row)
    return lines


ORDER = [
    ("httpx", "asyncio"),
    ("httpx-task", "asyncio"),
    ("ours", "asyncio"),
    ("ours-batch", "asyncio"),
    ("httpx", "trio"),
    ("httpx-task", "trio"),
    ("ours", "trio"),
    ("ours-batch", "trio"),
    ("ours-events-sub", "asyncio"),
    ("ours-events-cb", "asyncio"),
    ("ours-events-sub", "trio"),
    ("ours-events-cb", "trio"),
    ("tenacity", "asyncio"),
    ("stamina", "asyncio"),
    ("httpx-retries", "asyncio"),
    ("aiohttp-retry", "asyncio"),
    ("raw", "asyncio"),
]


def _sorted(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rank = {pair: i for i, pair in enumerate(ORDER)}
    return sorted(groups, key=lambda g: rank.get((g["client"], g["backend"]), 99))


def markdown(data: dict[str, Any], summary: dict[str, Any], name: str) -> str:
    meta = data["meta"]
    groups = summary["groups"]
    out: list[str] = []
    w = out.append
    w("# Benchmarks")
    w("")
    w("<!-- Generated by benchmarks/run.py: rerun it rather than editing this page. -->")
    w("")
    kind = (
        "a **quick** smoke run (one round, few requests: not for comparisons)"
        if meta["quick"]
        else f"a full run ({meta['rounds']} rounds)"
    )
    w(
        f"Results of {kind}, {meta['date']}, in {meta['seconds']:,.0f} s, on the machine below. "
        "Every client ran in its own process, round after round in alternating order "
        "(A B ... B A), so that drifts of the machine hit every client alike. The machine was "
        "**not quiet**: other work shared its two cores (load average "
        f"{meta.get('load_before')} before, {meta.get('load_after')} after), so single runs are "
        "noisy; read the medians and the pair-by-pair ratios, not one number."
    )
    w("")
    w("Reproduce:")
    w("")
    w("```bash")
    w(f"{meta['command']}")
    w("nox -s bench            # the full run, in a fresh virtualenv with the bench extra")
    w("nox -s bench -- --quick # the smoke run CI uses, under two minutes")
    w("```")
    w("")
    w(f"![requests per second, scenario a](../benchmarks/results/{name}-throughput.svg)")
    w("")
    w(f"![ours / bare httpx, scenario a](../benchmarks/results/{name}-ratio.svg)")
    w("")
    w("## Targets of issue 6")
    w("")
    w("| target | measured | met |")
    w("|---|---|---|")
    for row in summary["targets"]:
        met = {
            True: "yes",
            False: f"**no** ({row['gap']})" if row["gap"] else "**no**",
            None: "see below",
        }[row["met"]]
        w(f"| {row['target']} | {row['measured'] or '-'} | {met} |")
    w("")
    _machine(w, meta)
    _ceiling(w, meta)
    w("## a. Keep-alive GETs")
    w("")
    w(
        "`concurrency` workers each send one request after the other; the pool is as large "
        "as the concurrency. Only the requests that end inside a measured window of "
        f"{'0.5' if meta['quick'] else '2'} s count: it opens once `max(concurrency, 50)` "
        "requests have finished (every connection is open and used), so neither the start, "
        "when every worker fires at once, nor the drain weighs on the figures; CPU is measured "
        "over the same window. The ratio is the client's req/s over the bare httpx run of the "
        "same round and backend."
    )
    w("")
    for concurrency in sorted({g["concurrency"] for g in find(groups, scenario="a")}):
        w(f"### Concurrency {concurrency:,}")
        w("")
        out.extend(
            _throughput_table(_sorted(find(groups, scenario="a", concurrency=concurrency)), False)
        )
        w("")
    _fault(w, out, meta, groups)
    _events(w, groups)
    _memory(w, groups)
    _profile(w, meta.get("profile"))
    _method(w, meta, groups)
    return "\n".join(out) + "\n"


def _machine(w: Any, meta: dict[str, Any]) -> None:
    w("## Machine and versions")
    w("")
    w(
        f"- {meta['cores']} cores, {meta['cpu_model']}, {meta['memory']}, Linux "
        f"{meta['kernel']}; {meta['implementation']} {meta['python']}."
    )
    w(f"- Pinning: {meta['pinning']}.")
    dirty = ", ".join(meta["src_dirty"]) or "none"
    w(f"- Code: commit {meta['git_commit']}; uncommitted changes in src at the start: {dirty}.")
    before, after = meta.get("src_before"), meta.get("src_after")
    if meta.get("snapshot"):
        changed = (
            ""
            if before == after
            else (
                " (the working tree changed during the run; the snapshot kept every run on the "
                "same code)"
            )
        )
        w(
            "- Every client process imported one snapshot of `src/typed_async_client`, copied "
            f"at the start (fingerprint {meta['snapshot']}){changed}."
        )
    elif before and after and before != after:
        w(
            f"- **The package's sources changed during the run** ({before} -> {after}): "
            "each client process imported them anew, so the runs did not all measure the same "
            "code."
        )
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    w(f"- Versions: {versions}.")
    w("")


def _ceiling(w: Any, meta: dict[str, Any]) -> None:
    ceiling = meta.get("ceiling") or {}
    servers = meta.get("servers") or {}
    loop = (servers.get("keepalive") or {}).get("loop", "?")
    w("## The server and its ceiling")
    w("")
    w(
        f"`benchmarks/server.py`: an asyncio Protocol on {loop}, one process, a fixed "
        "2-byte `200` response, keep-alive (or `Connection: close` on every response for "
        "scenario b)."
    )
    w("")
    if not ceiling.get("measured"):
        w(f"Ceiling: **not measured**: {ceiling.get('why', 'unknown')}.")
    else:
        w(f"Ceiling measured with `{ceiling['tool']}` (one thread, pinned like the clients):")
        w("")
        for key, value in ceiling.items():
            if key in ("measured", "tool"):
                continue
            w(f"- {key}: {_n(value)} req/s")
        w("")
        w("Every Python client below stays far under it: the client is the bottleneck.")
    w("")


def _fault(w: Any, out: list[str], meta: dict[str, Any], groups: list[dict[str, Any]]) -> None:
    refusal = meta.get("refusal") or {}
    w("## b. Fresh connections, about 12 % refused")
    w("")
    w(
        "1,000 requests (quick: 300) at concurrency 100; the server closes every connection "
        "after its response, so each request opens one. Every client retries connection errors "
        "up to 10 times (exponential backoff from 10 ms, capped at 1 s, full jitter); bare httpx "
        "does not retry, so its success rate shows the real share of refused connections."
    )
    w("")
    if refusal.get("mode") == "nftables":
        w(
            "Refused connections: **nftables** (true `ECONNREFUSED`, before any byte is sent). "
            "The rule, on loopback, for the server's port only, removed at the end:"
        )
        w("")
        w("```")
        w(refusal["rule"].rstrip())
        w("```")
    elif refusal:
        w(
            f"Refused connections: **toggling listener** (nftables unavailable: "
            f"{refusal.get('why')}). The server closes its listening socket for 12 % of every "
            "100 ms; connections the kernel had completed but not handed over are reset, so "
            "some failures are resets after connect rather than refusals."
        )
    w("")
    rows = _sorted(find(groups, scenario="b"))
    out.extend(_throughput_table(rows, True))
    w("")
    if rows:
        w(
            "Connections refused per run (kernel counter of the nftables rule, median): "
            + ", ".join(
                f"{g['label']}: {_n(g.get('kernel_refused'))}"
                for g in rows
                if g.get("kernel_refused") is not None
            )
            + "."
        )
        w("")
        w(
            "Requests that reached the server per run (median), against successes: "
            + ", ".join(f"{g['label']}: {_n(g.get('server_requests'))}" for g in rows)
            + "."
        )
        w("")
    w("## c. 12 % of responses 503 with `Retry-After: 0`")
    w("")
    w(
        "1,000 requests (quick: 300) at concurrency 100 on keep-alive connections; the server "
        "answers a seeded 12 % of requests `503` with `Retry-After: 0`. Ours uses "
        "`RetryPolicy.transient()`; tenacity, stamina and aiohttp-retry get a wait function "
        "that honours `Retry-After` (else the same backoff); httpx-retries honours it itself "
        "(but treats `0` as absent and falls back to its backoff); the raw client retries at "
        "once."
    )
    w("")
    out.extend(_throughput_table(_sorted(find(groups, scenario="c")), True))
    w("")


def _events(w: Any, groups: list[dict[str, Any]]) -> None:
    rows = _sorted(find(groups, scenario="d"))
    if not rows:
        return
    w("## d. Events")
    w("")
    w(
        "Requests over an in-process `httpx.MockTransport` (answers at once: no socket, no "
        "pool), so that the event machinery, not the network, is what is measured. Each request "
        "emits `STARTED` and `SUCCESS`: one subscriber (`client.events()`, default buffer, "
        "`drop_oldest`) takes every event; the callbacks are plain functions on both types. "
        "Events/s = events delivered / time until the last one was delivered. The rows without "
        "observers (bare httpx, ours) are the baseline: their ratio is the layer's own cost "
        "over a free transport."
    )
    w("")
    w(
        "| concurrency | client | req/s median (min-max) | ratio to bare httpx | "
        "events/s delivered | delivered / emitted | dropped / run | CPU s / 1k req |"
    )
    w("|---:|---|---:|---:|---:|---:|---:|---:|")
    for g in sorted(rows, key=lambda g: g["concurrency"]):
        ratio = "pair" if g["client"] == "httpx" else _range(g["ratio"], 2)
        events = "-"
        share = "-"
        if g["client"].startswith("ours-events"):
            events = _range(g["events_per_second"])
            expected = g.get("events_expected") or 0
            share = f"{(g.get('events_received') or 0) / expected:.1%}" if expected else "-"
        w(
            f"| {g['concurrency']:,} | {g['label']} | {_range(g['rps'])} | {ratio} | {events} "
            f"| {share} | {_n(g.get('events_dropped'))} | {_n(g['cpu_per_1k'], 3)} |"
        )
    w("")


def _memory(w: Any, groups: list[dict[str, Any]]) -> None:
    rows = _sorted(find(groups, scenario="e"))
    if not rows:
        return
    inflight = rows[0].get("held_at_once") or rows[0]["concurrency"]
    w(f"## e. Memory with {inflight:,.0f} requests in flight")
    w("")
    w(
        "The requests go to an in-process `httpx.MockTransport` that holds each one until all "
        "of them are held at once, and reads the process's RSS at that moment. Ten thousand "
        "real sockets would measure httpcore's pool instead: it scans every connection on every "
        "change, so 2,000 loopback connections already take bare httpx about 80 s of CPU on "
        "this machine. Bytes per in-flight request = (RSS with all held - RSS before) / "
        "count. `ours` is driven by one worker task per request, like bare httpx; "
        "`client.batch()` needs no worker."
    )
    w("")
    w(
        "| client | bytes per in-flight request, median (min-max) | extra over bare httpx "
        "| RSS before, MiB | RSS with all held, MiB | peak RSS, MiB |"
    )
    w("|---|---:|---:|---:|---:|---:|")
    for g in rows:
        base = find(groups, scenario="e", client="httpx", backend=g["backend"])
        extra = "-"
        if base and g["client"] != "httpx" and base[0]["extra_bytes"]["median"] is not None:
            extra = _n(g["extra_bytes"]["median"] - base[0]["extra_bytes"]["median"])
        w(
            f"| {g['label']} | {_range(g['extra_bytes'])} | {extra} | {_mib(g['baseline_rss'])} "
            f"| {_mib(g['plateau_rss'])} | {_mib(g['peak_rss'])} |"
        )
    w("")


def _profile(w: Any, profile: dict[str, Any] | None) -> None:
    w("## Profile: hot spots in our code")
    w("")
    if not profile:
        w("Not run (`--no-profile`).")
        w("")
        return
    if "failed" in profile:
        w(f"The profile failed: {profile['failed']}")
        w("")
        return
    w(
        "`python benchmarks/profile_ours.py --url ...` (run by `run.py`): cProfile over "
        "scenario a at concurrency 100 (workers awaiting `client.get`), against the keep-alive "
        "server and over the in-process mock transport; cProfile inflates small calls, so read "
        "the shares, not the absolute times. *Self* is time in the function's own code; "
        "*cum* includes what it calls (httpx included)."
    )
    w("")
    for run in profile.get("cpu", []):
        if run["client"] != "ours":
            continue
        w(f"### ours on {run['backend']}, {run['transport']} transport")
        w("")
        w(
            f"{run['requests']:,} requests; our code's own time: **{run['ours_self_share']:.1%}** "
            f"of {run['profiled_s']} s profiled ({run['ours_self_us_per_request']} µs per "
            "request)."
        )
        mock_pair = [
            r
            for r in profile.get("cpu", [])
            if r["client"] == "httpx"
            and r["backend"] == run["backend"]
            and r["transport"] == run["transport"]
        ]
        if mock_pair:
            other = mock_pair[0]
            w(
                f"Bare httpx over the same transport: {other['profiled_s']} s profiled for "
                f"{other['requests']:,} requests: ours costs "
                f"{run['profiled_s'] / other['profiled_s']:.2f}x."
            )
        w("")
        w("| function (self time) | calls | self share | cum share | self µs / request |")
        w("|---|---:|---:|---:|---:|")
        for row in run["top_self"][:10]:
            w(
                f"| `{row['function']}` | {row['calls']:,} | {row['self_share']:.1%} "
                f"| {row['cum_share']:.1%} | {row['self_us_per_request']} |"
            )
        w("")
    _induced(w, profile.get("cpu", []))
    memory = profile.get("memory") or []
    if memory:
        w("### Memory: where the bytes of a request in flight go (tracemalloc)")
        w("")
        for item in memory:
            w(
                f"- {label(item['client'], item['backend'])}: {item['traced_bytes_per_request']:,} "
                "traced bytes per in-flight request; top sites: "
                + "; ".join(
                    f"`{s['site']}` {s['bytes_per_request']:,.0f} B" for s in item["top_sites"][:6]
                )
            )
        w("")


def _curve(groups: list[dict[str, Any]]) -> str:
    """Bare httpx's median req/s per concurrency, against aiohttp's, for the method notes."""
    parts = []
    for g in sorted(
        find(groups, scenario="a", client="httpx", backend="asyncio"),
        key=lambda g: g["concurrency"],
    ):
        other = find(groups, scenario="a", client="aiohttp-retry", concurrency=g["concurrency"])
        text = f"{_n(g['rps']['median'])} req/s at concurrency {g['concurrency']:,}"
        if other and other[0]["rps"]["median"]:
            text += f" (aiohttp: {_n(other[0]['rps']['median'])})"
        parts.append(text)
    return ", ".join(parts) or "not measured"


def _induced(w: Any, runs: list[dict[str, Any]]) -> None:
    """Where ours spends more than bare httpx over the mock transport, function by function."""
    for backend in ("asyncio", "trio"):
        pair = {
            r["client"]: r
            for r in runs
            if r["transport"] == "mock" and r["backend"] == backend and "self_us_by_function" in r
        }
        if "ours" not in pair or "httpx" not in pair:
            continue
        mine = pair["ours"]["self_us_by_function"]
        theirs = pair["httpx"]["self_us_by_function"]
        diff = {name: mine.get(name, 0.0) - theirs.get(name, 0.0) for name in {*mine, *theirs}}
        total = sum(mine.values()) - sum(theirs.values())
        top = sorted(diff.items(), key=lambda item: item[1], reverse=True)[:12]
        w(f"### Where the extra time goes, {backend} (ours minus bare httpx, mock transport)")
        w("")
        w(
            f"Ours spends {total:,.0f} µs more per request than bare httpx under cProfile. The "
            "functions whose self time grows the most, ours included and the library code our "
            "layer calls (anyio tasks, cancel scopes, events, limiters). cProfile timings of "
            "small functions are noisy: a function both clients call can show up here."
        )
        w("")
        w("| function | extra self µs / request |")
        w("|---|---:|")
        for name, extra in top:
            w(f"| `{name}` | {extra:,.1f} |")
        w("")


def _method(w: Any, meta: dict[str, Any], groups: list[dict[str, Any]]) -> None:
    w("## Method, and what was not measured")
    w("")
    w(
        "What the profiles say about the misses, and what to fix: see "
        "[benchmarks/README.md](../benchmarks/README.md#findings)."
    )
    w("")
    w(
        "- Processes: one server process per scenario family (`benchmarks/server.py`), one "
        "process per client run (`benchmarks/clients.py`), started by `benchmarks/run.py`; "
        "clients run on the standard asyncio loop (not uvloop) or on trio. CPU seconds are "
        "`resource.getrusage` of the client process over the timed section; peak RSS is its "
        "`ru_maxrss`; p99 is over every request of the run (nearest rank)."
    )
    w(
        "- Bounded: each run is bounded in requests and in seconds, and each child process is "
        "killed after a timeout; the servers stop by themselves after an hour."
    )
    w(
        "- httpcore's connection pool re-examines every connection (an `is_readable` poll and a "
        "`getpeername` call each) whenever a request arrives or a response closes, so its cost "
        f"per request grows with the pool: here bare httpx on asyncio ran {_curve(groups)}. "
        "Every httpx-based client, ours included, carries that cost; scenario d shows the "
        "layer's own cost over a free transport."
    )
    w(
        "- Workers start 1 ms apart (scenarios a to c). Started all at once, 100 or more "
        "workers put httpx's pool into a slow state, about 8 times slower, that lasts exactly "
        "`keepalive_expiry` (5 s): some connections stay idle while requests queue, until they "
        "expire."
    )
    w(
        "- Our client keeps up to 1,000 results (`max_results`, the default), each with its "
        "response: that is most of its higher peak RSS in scenarios a to c, and the self time "
        "of `ResultStore.add` in the profile is mostly the evicted result being freed."
    )
    w(
        "- `bare httpx, a task per request` is the floor of our design: bare httpx with each "
        "request in a task of its own (an anyio task group's `create_task`), awaited by its "
        "worker. It is what the structure the specification asks for (every request a task in "
        "a task group the client owns) costs before any code of ours runs."
    )
    w(
        "- The measurement harness gives the requests no deadline (its time limit is a "
        "watchdog, not a cancel scope), so our client does not shrink each attempt's timeout, "
        "as it would under `anyio.fail_after`."
    )
    w(
        "- At concurrency 1,000 the full run leaves out tenacity, stamina and httpx-retries "
        "(bare httpx plus a wrapper, dominated by that pool) and `client.batch()`, to keep the "
        "run under 20 minutes."
    )
    w(
        "- stamina logs every retry (its default instrumentation, a warning on stderr); the "
        "runner discards the children's stderr."
    )
    if (meta.get("refusal") or {}).get("mode") == "nftables":
        w(
            "- nftables' `numgen random` is not seeded: about 12 % of connections are refused "
            "on average, not the same ones each run; the rule's counter gives the real count."
        )
    w("")
