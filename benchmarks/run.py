"""
The benchmark suite: typed-async-client against bare httpx and the usual retry stacks.

    python benchmarks/run.py            # the full run (about 15-20 minutes on 2 cores)
    python benchmarks/run.py --quick    # a smoke run, under two minutes
    nox -s bench [-- --quick]           # the same, in a fresh virtualenv with the bench extra

It starts the servers (``server.py``, each in its own process, pinned to one core), measures
their ceiling with ``wrk`` when it is installed, sets up the refused connections (nftables, or
the server's toggling listener as a fallback), then runs every client of every scenario in its
own process (``clients.py``, pinned to another core), round after round, in alternating order
(A B ... B A), and writes ``docs/benchmarks.md``, the charts under ``benchmarks/results/`` and
the raw results (``benchmarks/results/<full|quick>.json``).

Scenarios (see docs/benchmarks.md for what each measures and why):

* a: keep-alive GETs at concurrency 1, 10, 100 and 1,000, pool as large as the concurrency;
* b: 1,000 requests at concurrency 100 on fresh connections, ~12 % of connections refused;
* c: 1,000 requests at concurrency 100, 12 % of responses 503 with ``Retry-After: 0``;
* d: events per second to one subscriber and to callbacks (over an in-process transport);
* e: memory with 10,000 requests in flight (over an in-process transport that holds them).

Only loopback addresses are used. Every run is bounded in requests and in time, and each child
process has a timeout after which it is killed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import charts  # noqa: E402
import report  # noqa: E402
from faults import NftRefuser  # noqa: E402

PYTHON = sys.executable
REFUSED_PERCENT = 12
FAIL_FRACTION = 0.12

# (client, backend); the bare httpx client of each backend is the pair of ours.
PAIRS_A = [
    ("httpx", "asyncio"),
    ("httpx-task", "asyncio"),
    ("ours", "asyncio"),
    ("ours-batch", "asyncio"),
    ("httpx", "trio"),
    ("httpx-task", "trio"),
    ("ours", "trio"),
    ("ours-batch", "trio"),
]
PEERS = [
    ("tenacity", "asyncio"),
    ("stamina", "asyncio"),
    ("httpx-retries", "asyncio"),
    ("aiohttp-retry", "asyncio"),
    ("raw", "asyncio"),
]


@dataclass
class Plan:
    """What a run does: rounds, clients, sizes."""

    quick: bool
    rounds: int
    concurrencies: list[int]
    duration: float  # scenario a: seconds of sending per run
    warmup_seconds: float
    a_clients: list[tuple[str, str]]
    a_clients_1000: list[tuple[str, str]]
    fault_clients: list[tuple[str, str]]
    fault_requests: int
    events_clients: list[tuple[str, str]]
    events_requests: int
    events_concurrencies: list[int]
    memory_clients: list[tuple[str, str]]
    memory_inflight: int
    wrk_seconds: int
    profile_requests: int
    scenarios: str = "abcde"

    @classmethod
    def make(cls, quick: bool, rounds: int | None) -> Plan:
        events = [
            (client, backend)
            for backend in ("asyncio", "trio")
            for client in ("httpx", "ours", "ours-events-sub", "ours-events-cb")
        ]
        memory = [
            (client, backend)
            for backend in ("asyncio", "trio")
            for client in ("httpx", "httpx-task", "ours", "ours-batch")
        ]
        if quick:
            core = [("httpx", "asyncio"), ("ours", "asyncio"), ("httpx", "trio"), ("ours", "trio")]
            return cls(
                quick=True,
                rounds=rounds or 1,
                # Concurrency 1,000 is left out: with httpx, opening and draining 1,000
                # connections takes about 15 s per run.
                concurrencies=[1, 10, 100],
                duration=0.5,
                warmup_seconds=5.0,
                a_clients=[*core, ("httpx-task", "asyncio"), ("raw", "asyncio")],
                a_clients_1000=[("httpx", "asyncio"), ("ours", "asyncio")],
                fault_clients=[*core, ("raw", "asyncio")],
                fault_requests=300,
                events_clients=[(c, b) for c, b in events if b == "asyncio"],
                events_requests=2_000,
                events_concurrencies=[100],
                memory_clients=[(c, b) for c, b in memory if c != "ours-batch"],
                memory_inflight=2_000,
                wrk_seconds=1,
                profile_requests=1_000,
            )
        return cls(
            quick=False,
            rounds=rounds or 3,
            concurrencies=[1, 10, 100, 1000],
            duration=2.0,
            warmup_seconds=15.0,
            a_clients=[*PAIRS_A, *PEERS],
            # At 1,000 connections httpcore's pool costs ~7 ms of CPU per request (it scans
            # every connection on every change): the httpx-based peers are bare httpx plus a
            # wrapper there, and are left out to keep the run under 20 minutes.
            a_clients_1000=[
                ("httpx", "asyncio"),
                ("httpx-task", "asyncio"),
                ("ours", "asyncio"),
                ("httpx", "trio"),
                ("httpx-task", "trio"),
                ("ours", "trio"),
                ("aiohttp-retry", "asyncio"),
                ("raw", "asyncio"),
            ],
            # The floor sends no retries: it is bare httpx in the fault scenarios.
            fault_clients=[pair for pair in [*PAIRS_A, *PEERS] if pair[0] != "httpx-task"],
            fault_requests=1_000,
            events_clients=events,
            events_requests=5_000,
            events_concurrencies=[10, 100],
            memory_clients=memory,
            memory_inflight=10_000,
            wrk_seconds=3,
            profile_requests=5_000,
        )


# -- processes ----------------------------------------------------------------------------------


def cpus() -> tuple[int | None, int | None]:
    """The server's core and the clients' core, when there are two or more."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return None, None
    return available[0], available[1]


def _pinned(cpu: int | None) -> Any:
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return None

    def pin() -> None:
        os.sched_setaffinity(0, {cpu})

    return pin


@dataclass
class Server:
    name: str
    args: list[str]
    cpu: int | None
    proc: subprocess.Popen[str] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return int(self.info["port"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self, port: int = 0) -> None:
        cmd = [PYTHON, str(HERE / "server.py"), "--port", str(port), *self.args]
        if self.cpu is not None:
            cmd += ["--cpu", str(self.cpu)]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 15
        line = ""
        while time.monotonic() < deadline and not line:
            line = self.proc.stdout.readline()
            if self.proc.poll() is not None:
                break
        if not line:
            raise RuntimeError(f"server {self.name} did not start")
        self.info = json.loads(line)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def control(self, path: str) -> dict[str, Any] | None:
        """GET a control path (retried: the refusing port may refuse us too)."""
        for _ in range(30):
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                conn.request("GET", path)
                body = conn.getresponse().read()
                return dict(json.loads(body))
            except (OSError, ValueError, http.client.HTTPException):
                time.sleep(0.01)
            finally:
                conn.close()
        return None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def run_client(config: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one client in its own process; kill it after ``timeout`` seconds."""
    cmd = [PYTHON, str(HERE / "clients.py"), json.dumps(config)]
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT
        )
    except subprocess.TimeoutExpired:
        return {**_ident(config), "failed": f"killed after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = done.stderr.strip().splitlines()[-5:]
        return {**_ident(config), "failed": f"exit {done.returncode}: {' | '.join(tail)}"}
    result = dict(json.loads(lines[-1]))
    result["stderr_lines"] = len(done.stderr.splitlines())
    return result


def _ident(config: dict[str, Any]) -> dict[str, Any]:
    keys = ("client", "backend", "scenario", "concurrency", "transport")
    return {key: config.get(key) for key in keys}


# -- the scenarios ----------------------------------------------------------------------------


class Runner:
    def __init__(self, plan: Plan, out: Path, log: Any) -> None:
        self.plan = plan
        self.server_cpu, self.client_cpu = cpus()
        self.results: list[dict[str, Any]] = []
        self.meta: dict[str, Any] = {}
        self.servers: dict[str, Server] = {}
        self.refuser: NftRefuser | None = None
        self.out = out
        self.log = log

    def say(self, text: str) -> None:
        print(text, file=self.log, flush=True)

    def order(self, clients: Sequence[tuple[str, str]], round_: int) -> list[tuple[str, str]]:
        """Alternate the order from round to round: A B ... then ... B A."""
        return list(clients) if round_ % 2 == 0 else list(reversed(clients))

    def child(self, server: Server | None, config: dict[str, Any], timeout: float) -> None:
        config = {**config, "cpu": self.client_cpu}
        if server is not None and not server.alive():
            self.say(f"  server {server.name} died: restarting it")
            server.start(server.port)
        before = server.control("/__reset?seed=6") if server is not None else None
        refused0 = self.refuser.refused() if self.refuser and config["scenario"] == "b" else None
        started = time.monotonic()
        result = run_client(config, timeout)
        result["round"] = config.get("round")
        result["wall"] = time.monotonic() - started
        if server is not None and before is not None:
            result["server"] = server.control("/__stats")
        if refused0 is not None and self.refuser is not None:
            refused1 = self.refuser.refused()
            if refused1 is not None:
                result["kernel_refused"] = refused1 - refused0
        self.results.append(result)
        self.say(report.one_line(result))

    def scenario_a(self) -> None:
        plan = self.plan
        server = self.servers["keepalive"]
        for round_ in range(plan.rounds):
            for concurrency in plan.concurrencies:
                clients = plan.a_clients_1000 if concurrency >= 1000 else plan.a_clients
                for client, backend in self.order(clients, round_):
                    config = {
                        "client": client,
                        "backend": backend,
                        "scenario": "a",
                        "url": server.url,
                        "requests": 1_000_000,  # the window ends the run, this only bounds it
                        "concurrency": concurrency,
                        "window": plan.duration,
                        # The window opens once every worker has finished a request (so
                        # every connection is open), or after warmup_seconds.
                        "warmup": max(concurrency, 50),
                        "warmup_seconds": plan.warmup_seconds,
                        "ramp": 0.001,
                        "time_limit": 60,
                        "round": round_,
                    }
                    self.child(server, config, timeout=120)

    def scenario_fault(self, scenario: str) -> None:
        plan = self.plan
        server = self.servers["refusing" if scenario == "b" else "503"]
        for round_ in range(plan.rounds):
            for client, backend in self.order(plan.fault_clients, round_):
                config = {
                    "client": client,
                    "backend": backend,
                    "scenario": scenario,
                    "url": server.url,
                    "requests": plan.fault_requests,
                    "concurrency": 100,
                    "policy": "connect" if scenario == "b" else "transient",
                    "warmup": 0 if scenario == "b" else 100,
                    "ramp": 0.001,
                    "time_limit": 90,
                    "round": round_,
                }
                self.child(server, config, timeout=150)

    def scenario_d(self) -> None:
        plan = self.plan
        for round_ in range(plan.rounds):
            for concurrency in plan.events_concurrencies:
                for client, backend in self.order(plan.events_clients, round_):
                    config = {
                        "client": client,
                        "backend": backend,
                        "scenario": "d",
                        "transport": "mock",
                        "url": "http://bench.invalid/",
                        "requests": plan.events_requests,
                        "concurrency": concurrency,
                        "warmup": 100,
                        "time_limit": 60,
                        "round": round_,
                    }
                    self.child(None, config, timeout=90)

    def scenario_e(self) -> None:
        plan = self.plan
        for round_ in range(plan.rounds):
            for client, backend in self.order(plan.memory_clients, round_):
                config = {
                    "client": client,
                    "backend": backend,
                    "scenario": "e",
                    "transport": "mock",
                    "url": "http://bench.invalid/",
                    "requests": plan.memory_inflight,
                    "concurrency": plan.memory_inflight,
                    "warmup": 10,
                    "hold": True,
                    "time_limit": 60,
                    "round": round_,
                }
                self.child(None, config, timeout=90)

    # -- set-up --------------------------------------------------------------------------------

    def start_servers(self) -> None:
        cpu = self.server_cpu
        specs = {
            "keepalive": [],
            "503": ["--fail-503", str(FAIL_FRACTION), "--seed", "6"],
            "refusing": ["--close"],
        }
        for name, args in specs.items():
            server = Server(name, [*args, "--max-seconds", "3600"], cpu)
            server.start()
            self.servers[name] = server
            self.say(f"server {name}: {server.info}")

    def ceilings(self) -> dict[str, Any]:
        wrk = shutil.which("wrk")
        if wrk is None:
            return {"measured": False, "why": "wrk is not installed (apt-get install wrk)"}
        found: dict[str, Any] = {"measured": True, "tool": _wrk_version(wrk)}
        runs = {
            "keep-alive, 100 connections": (self.servers["keepalive"], 100),
            "keep-alive, 1,000 connections": (self.servers["keepalive"], 1000),
            "fresh connection per request, 100 at once": (self.servers["refusing"], 100),
        }
        for label, (server, connections) in runs.items():
            cmd = [wrk, "-t1", f"-c{connections}", f"-d{self.plan.wrk_seconds}s", server.url]
            try:
                done = subprocess.run(
                    cmd,
                    capture_output=True,
                    text=True,
                    timeout=self.plan.wrk_seconds + 30,
                    check=False,
                    preexec_fn=_pinned(self.client_cpu),
                )
            except subprocess.TimeoutExpired:
                found[label] = None
                continue
            match = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
            found[label] = float(match.group(1)) if match else None
            self.say(f"wrk {label}: {found[label]} req/s")
        return found

    def setup_refusal(self) -> dict[str, Any]:
        server = self.servers["refusing"]
        refuser = NftRefuser(server.port, REFUSED_PERCENT)
        if refuser.install():
            self.refuser = refuser
            self.say(f"refused connections: nftables rule on port {server.port}")
            return {"mode": "nftables", "rule": refuser.ruleset(), "percent": REFUSED_PERCENT}
        self.say(f"nftables unavailable ({refuser.reason}): toggling listener instead")
        port = server.port
        server.stop()
        server.args = [*server.args, "--toggle-refuse", str(REFUSED_PERCENT / 100)]
        server.start(port)
        return {
            "mode": "toggling listener",
            "why": refuser.reason,
            "percent": REFUSED_PERCENT,
            "period_s": 0.1,
        }

    def profile(self) -> dict[str, Any] | None:
        server = self.servers["keepalive"]
        cmd = [
            PYTHON,
            str(HERE / "profile_ours.py"),
            "--url",
            server.url,
            "--requests",
            str(self.plan.profile_requests),
            "--concurrency",
            "100",
            "--inflight",
            str(self.plan.memory_inflight),
            "--json",
        ]
        if self.client_cpu is not None:
            cmd += ["--cpu", str(self.client_cpu)]
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=300, check=False, cwd=ROOT
            )
        except subprocess.TimeoutExpired:
            return {"failed": "profile killed after 300 s"}
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if not lines:
            return {"failed": done.stderr.strip()[-500:]}
        return dict(json.loads(lines[-1]))

    def run(self, scenarios: str, do_profile: bool) -> None:
        started = time.time()
        self.meta = machine_info(self.server_cpu, self.client_cpu)
        self.meta["quick"] = self.plan.quick
        self.meta["rounds"] = self.plan.rounds
        self.meta["command"] = " ".join(["python", "benchmarks/run.py", *sys.argv[1:]])
        self.meta["load_before"] = _loadavg()
        self.meta["src_before"] = src_fingerprint()
        snapshot, self.meta["snapshot"] = snapshot_package()
        try:
            self.start_servers()
            self.meta["servers"] = {k: s.info for k, s in self.servers.items()}
            self.meta["ceiling"] = self.ceilings()
            if "b" in scenarios:
                self.meta["refusal"] = self.setup_refusal()
            steps = {
                "a": self.scenario_a,
                "b": lambda: self.scenario_fault("b"),
                "c": lambda: self.scenario_fault("c"),
                "d": self.scenario_d,
                "e": self.scenario_e,
            }
            for name in "abcde":
                if name in scenarios:
                    self.say(f"== scenario {name}")
                    t0 = time.monotonic()
                    steps[name]()
                    self.meta[f"seconds_{name}"] = round(time.monotonic() - t0, 1)
            if do_profile:
                self.say("== profile (cProfile, ours on asyncio, scenario a at concurrency 100)")
                self.meta["profile"] = self.profile()
        finally:
            if self.refuser is not None:
                self.refuser.remove()
            for server in self.servers.values():
                server.stop()
            shutil.rmtree(snapshot, ignore_errors=True)
        self.meta["load_after"] = _loadavg()
        self.meta["src_after"] = src_fingerprint()
        self.meta["seconds"] = round(time.time() - started, 1)


# -- machine and versions -----------------------------------------------------------------------


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _wrk_version(wrk: str) -> str:
    done = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10, check=False)
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0] if text else "wrk"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_total() -> str:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "unknown"


def _git(*args: str) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=10, check=False, cwd=ROOT
        )
        return done.stdout.rstrip()
    return ""


VERSIONED = (
    "typed-async-client",
    "httpx",
    "httpcore",
    "h11",
    "anyio",
    "trio",
    "tenacity",
    "stamina",
    "httpx-retries",
    "aiohttp",
    "aiohttp-retry",
    "uvloop",
)


def src_fingerprint(package: Path = ROOT / "src" / "typed_async_client") -> str:
    """A hash of the package's sources (``*.py`` under ``package``)."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def snapshot_package() -> tuple[Path, str]:
    """
    Copy ``src/typed_async_client`` to a temporary directory put first on the children's
    ``PYTHONPATH``: every client process imports the package anew, and other people edit src/
    while a run lasts, so without a snapshot the runs would not all measure the same code.
    """
    directory = Path(tempfile.mkdtemp(prefix="tac-bench-"))
    shutil.copytree(
        ROOT / "src" / "typed_async_client",
        directory / "typed_async_client",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    paths = [str(directory), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    return directory, src_fingerprint(directory / "typed_async_client")


def machine_info(server_cpu: int | None, client_cpu: int | None) -> dict[str, Any]:
    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    dirty = _git("status", "--porcelain", "--", "src")
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory": _mem_total(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "versions": versions,
        "git_commit": _git("rev-parse", "--short", "HEAD").strip(),
        "src_dirty": [line[3:] for line in dirty.splitlines()],
        "pinning": "not pinned"
        if server_cpu is None
        else f"servers on cpu {server_cpu}, clients and wrk on cpu {client_cpu}",
    }


@contextlib.contextmanager
def _log_to(path: Path | None) -> Iterator[Any]:
    if path is None:
        yield sys.stdout
        return
    with path.open("w", encoding="utf-8") as handle:

        class Tee:
            def write(self, text: str) -> None:
                sys.stdout.write(text)
                handle.write(text)

            def flush(self) -> None:
                sys.stdout.flush()
                handle.flush()

        yield Tee()


def _stop_on_signals() -> None:
    """SIGTERM (and SIGINT, even where a shell started us with it ignored) end the run cleanly:
    the nftables table is removed and the servers are stopped by the ``finally`` blocks."""

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)


def render(path: Path, out: Path) -> None:
    """Rewrite the page and the charts from saved raw results, without running anything."""
    data = json.loads(path.read_text(encoding="utf-8"))
    name = "quick" if data["meta"].get("quick") else "full"
    summary = report.summarize(data)
    charts.write_all(summary, HERE / "results", name)
    out.write_text(report.markdown(data, summary, name), encoding="utf-8")
    print(f"wrote {out} from {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="typed-async-client benchmarks")
    parser.add_argument("--quick", action="store_true", help="a smoke run, under two minutes")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3, quick 1)")
    parser.add_argument("--scenarios", default="abcde", help="a subset, such as 'ab'")
    parser.add_argument("--no-profile", action="store_true", help="skip the profile")
    parser.add_argument("--profile", action="store_true", help="profile in --quick too")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="the page (default docs/benchmarks.md; with --quick benchmarks/results/quick.md)",
    )
    parser.add_argument("--render", type=Path, default=None, help="re-render from a JSON file")
    args = parser.parse_args(argv)
    if args.out is None:
        # A smoke run never overwrites the page of the last full run.
        args.out = HERE / "results" / "quick.md" if args.quick else ROOT / "docs" / "benchmarks.md"
    if args.render is not None:
        render(args.render, args.out)
        return 0
    _stop_on_signals()
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be >= 1")
    plan = Plan.make(args.quick, args.rounds)
    results_dir = HERE / "results"
    results_dir.mkdir(exist_ok=True)
    name = "quick" if args.quick else "full"
    with _log_to(results_dir / f"{name}.log") as log:
        runner = Runner(plan, args.out, log)
        do_profile = not args.no_profile and (args.profile or not args.quick)
        runner.run(args.scenarios, do_profile=do_profile)
        data = {"meta": runner.meta, "results": runner.results}
        (results_dir / f"{name}.json").write_text(json.dumps(data, indent=1), encoding="utf-8")
        summary = report.summarize(data)
        charts.write_all(summary, results_dir, name)
        args.out.write_text(report.markdown(data, summary, name), encoding="utf-8")
        print(
            f"wrote {args.out} and benchmarks/results/{name}.* in {runner.meta['seconds']} s",
            file=log,
            flush=True,
        )
        failures = [r for r in runner.results if "failed" in r]
    return 1 if failures and len(failures) == len(runner.results) else 0


if __name__ == "__main__":
    sys.exit(main())
