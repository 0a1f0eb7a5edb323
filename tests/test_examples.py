"""
The examples run, and do what they say.

Each example's ``main()`` is imported by path and run against a loopback server. Examples written
with anyio run on both backends, including those the seed writes with asyncio primitives
(``asyncio.gather``, ``asyncio.create_task``, ``asyncio.Semaphore``), which are ported to anyio's
(task groups, ``anyio.CapacityLimiter``, ``anyio.sleep``). ``trio_app`` and ``trio_usage`` are
trio-native. Finally every example is run as a script, as a user would.
"""

from __future__ import annotations

import ast
import importlib.util
import math
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import httpx
import pytest

from typed_async_client import (
    RequestContext,
    RequestStatus,
    create_async_resilient_client,
)
from typed_async_client.testing import LocalServer

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = ROOT / "examples"
DOCS_DIR = ROOT / "docs"
EXAMPLES = (
    "advanced_client",
    "basic_usage",
    "batch_usage",
    "benchmark",
    "concurrent_requests",
    "custom_context",
    "dashboard_example",
    "error_handling",
    "event_stream",
    "fastapi_integration",
    "load_testing",
    "monitoring_example",
    "trio_app",
    "trio_usage",
    "troubleshooting",
)
TRIO_ONLY = pytest.mark.parametrize("anyio_backend", ["trio"])
TIMEOUT = 30


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` once, as module ``examples_<name>``."""
    module_name = f"examples_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES_DIR / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before running, as dataclasses look their module up in sys.modules.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


# -- the set of examples ------------------------------------------------------------------------


def test_examples_directory_holds_the_documented_examples() -> None:
    """The examples directory holds exactly the examples this suite knows."""
    assert sorted(EXAMPLES) == sorted(path.stem for path in EXAMPLES_DIR.glob("*.py"))


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_imports_only_public_names(name: str) -> None:
    """An example imports typed_async_client's public modules only, and defines main()."""
    tree = ast.parse((EXAMPLES_DIR / f"{name}.py").read_text(encoding="utf-8"))
    imported = [
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module is not None
    ]
    ours = [module for module in imported if module.startswith("typed_async_client")]
    assert ours
    assert [] == [module for module in ours if "._" in module]
    names = {node.name for node in tree.body if isinstance(node, ast.AsyncFunctionDef)}
    assert "main" in names


# -- anyio-neutral examples: both backends ------------------------------------------------------


async def test_basic_usage() -> None:
    """simple_async_request returns the decoded body; a refused URL ends in None."""
    example = load_example("basic_usage")
    with anyio.fail_after(TIMEOUT):
        outcome = await example.main()
    assert "GET" == outcome["data"]["method"]
    assert "/data" == outcome["data"]["path"]
    assert outcome["refused"] is None


async def test_advanced_client() -> None:
    """The seed's advanced request succeeds with its header; callbacks see the refused one."""
    example = load_example("advanced_client")
    with anyio.fail_after(TIMEOUT):
        outcome = await example.main()
    assert 200 == outcome["status_code"]
    assert 1 == outcome["attempts"]
    assert "Bearer YOUR_TOKEN" == outcome["authorization"]
    assert {"priority": "high"} == outcome["metadata"]
    assert [1, 2] == outcome["retry_attempts"]
    assert ["refused"] == outcome["errors"]
    assert 3 == outcome["refused_attempts"]


async def test_custom_context() -> None:
    """ApiRequestContext's headers reach the server, passed explicitly or added by a hook."""
    example = load_example("custom_context")
    with anyio.fail_after(TIMEOUT):
        received = await example.main()
    explicit = received["custom_api_call"]
    assert ("v2", "high", "trace_12345") == (
        explicit["x-api-version"],
        explicit["x-priority"],
        explicit["x-trace-id"],
    )
    hooked = received["hooked_call"]
    assert ("v1", "low", "hooked_call", "1") == (
        hooked["x-api-version"],
        hooked["x-priority"],
        hooked["x-trace-id"],
        hooked["x-attempt"],
    )


async def test_custom_context_is_kept_by_the_client() -> None:
    """The subclass survives the client's cloning: the result holds an ApiRequestContext."""
    example = load_example("custom_context")
    with anyio.fail_after(TIMEOUT):
        async with LocalServer() as server, create_async_resilient_client() as client:
            context = example.ApiRequestContext(request_id="typed", trace_id="t-1")
            await (await client.get(server.url_for("/data"), context=context))
            result = client.get_result("typed")
    assert result is not None
    assert isinstance(result.context, example.ApiRequestContext)
    assert "t-1" == result.context.trace_id


async def test_error_handling(server: LocalServer) -> None:
    """Each failure surfaces with its documented type; 503 and read timeouts are not retried."""
    example = load_example("error_handling")
    with anyio.fail_after(TIMEOUT):
        outcomes = await example.main(server.url)
    assert "ClientNotOpenError" == outcomes["not_open"]
    assert "ConnectError after 3 attempts" == outcomes["refused"]
    assert "503" == outcomes["http_503"]
    assert "HTTPStatusError" == outcomes["raise_for_status"]
    assert "ReadTimeout after 1 attempts" == outcomes["read_timeout"]
    assert "RequestCancelledError" == outcomes["cancelled"]
    assert outcomes["bad_context"].startswith("ValueError: max_retries")
    assert outcomes["bad_url"].startswith("ValueError: url scheme")
    assert "DuplicateRequestIdError" == outcomes["duplicate_id"]
    assert "ClientClosedError" == outcomes["closed"]
    assert 1 == server.hits["/status/503"]
    assert 1 == server.hits["/delay/1"]


async def test_fastapi_integration() -> None:
    """The seed's FastAPI app proxies the external API, maps its failure to 503, closes."""
    example = load_example("fastapi_integration")
    with anyio.fail_after(TIMEOUT):
        outcome = await example.main()
    status, body = outcome["ok"]
    assert 200 == status
    assert "/data/42" == body["path"]
    assert (503, {"detail": "Service externe indisponible"}) == outcome["down"]
    assert outcome["client_closed"] is True


async def test_batch_usage(server: LocalServer) -> None:
    """Batches: ordered results under a bound, fail_fast and body errors caught, huge batches."""
    example = load_example("batch_usage")
    with anyio.fail_after(TIMEOUT):
        outcome = await example.main(server.url)

    in_order = outcome["in_order"]
    assert (300, True, True) == (
        in_order["count"],
        in_order["all_succeeded"],
        in_order["in_submission_order"],
    )
    assert 1 <= in_order["peak_in_flight"] <= 20
    assert [1] * 300 == [server.hits[f"/items/{i}"] for i in range(300)]

    fail_fast = outcome["fail_fast"]
    assert ["ConnectError"] == fail_fast["caught"]
    assert (RequestStatus.ERROR, 2) == (fail_fast["down_status"], fail_fast["down_attempts"])
    assert fail_fast["others_cancelled"] is True
    # The body was cancelled while it waited for a slot: most of the batch was never submitted.
    assert 3 <= fail_fast["submitted"] < fail_fast["planned"]

    assert {
        "reason": "the body changed its mind",
        "statuses": ["cancelled"],
        "outside_status": 200,
    } == outcome["block_error"]

    assert {
        "submitted": 1000,
        "listed": 0,
        "succeeded": 1000,
        "failed": 0,
        "results_kept": 100,
    } == outcome["huge"]
    assert 1000 == sum(server.hits[f"/bulk/{i}"] for i in range(10))


async def test_event_stream() -> None:
    """Two subscribers and a callback: every event, the RETRY-only stream's drops, the end."""
    example = load_example("event_stream")
    with anyio.fail_after(TIMEOUT):
        outcome = await example.main()
    assert {"started": 7, "retry": 9, "success": 4, "error": 3} == outcome["counts"]
    refused = ["started", "retry", "retry", "retry", "error"]
    assert {
        **{f"ok-{i}": ["started", "success"] for i in range(4)},
        **{f"down-{i}": refused for i in range(3)},
    } == outcome["by_request"]
    # The late RETRY-only reader kept the two newest of nine retries, and counted the rest.
    assert (2, 7) == (outcome["retry_received"], outcome["retry_dropped"])
    assert ["down-0", "down-1", "down-2"] == outcome["callback_errors"]
    assert (23, 7) == (outcome["events_emitted"], outcome["events_dropped"])


# -- examples ported from the seed's asyncio primitives to anyio: both backends -----------------


async def test_concurrent_requests() -> None:
    """Handles awaited from a task group: users and posts succeed, the refused comments fail."""
    example = load_example("concurrent_requests")
    with anyio.fail_after(TIMEOUT):
        results = await example.main()
    assert {
        "users": ("success", 1),
        "posts": ("success", 1),
        "comments": ("error", 2),
    } == results


async def test_concurrent_requests_gathers_like_return_exceptions(
    server: LocalServer, refused_url: str
) -> None:
    """gather_handles keeps the handles' order, with a response or the exception for each."""
    example = load_example("concurrent_requests")
    with anyio.fail_after(TIMEOUT):
        async with create_async_resilient_client() as client:
            handles = [
                await client.get(server.url_for("/users"), context=RequestContext(max_retries=0)),
                await client.get(f"{refused_url}/comments", context=RequestContext(max_retries=0)),
                await client.get(server.url_for("/posts"), context=RequestContext(max_retries=0)),
            ]
            outcomes = await example.gather_handles(handles)
    assert 3 == len(outcomes)
    assert isinstance(outcomes[0], httpx.Response)
    assert "/users" == outcomes[0].json()["path"]
    assert isinstance(outcomes[1], httpx.ConnectError)
    assert isinstance(outcomes[2], httpx.Response)
    assert "/posts" == outcomes[2].json()["path"]


async def test_monitoring_example() -> None:
    """Eight successes, two refused requests retried three times each, then two errors."""
    example = load_example("monitoring_example")
    with anyio.fail_after(TIMEOUT):
        metrics = await example.main()
    assert (10, 8, 2) == (metrics["total_requests"], metrics["succeeded"], metrics["failed"])
    assert (6, 2) == (metrics["retries"], metrics["retried_requests"])
    assert (0.8, 0.2, 0.2) == (
        metrics["success_rate"],
        metrics["retry_rate"],
        metrics["error_rate"],
    )
    assert metrics["avg_response_time"] >= 0
    summary = example.format_metrics(metrics)
    assert summary.startswith("10 requests: 8 succeeded, 2 failed (80%)\n"), summary


async def test_dashboard_example() -> None:
    """The dashboard refreshes while requests run; its last view shows all six done."""
    example = load_example("dashboard_example")
    with anyio.fail_after(TIMEOUT):
        snapshots = await example.main()
    assert len(snapshots) >= 2
    last = snapshots[-1]
    assert (0, 6, 6, False) == (last["active"], last["results"], last["successes"], last["closed"])


async def test_troubleshooting() -> None:
    """Each troubleshooting section measures what it claims."""
    example = load_example("troubleshooting")
    with anyio.fail_after(TIMEOUT):
        outcome = await example.main()
    assert outcome["dropped_small_queue"] > 0
    assert 0 == outcome["dropped_large_queue"]
    assert {"kept": 3, "evicted": 2, "cleaned": 3} == outcome["results"]
    assert 1 <= outcome["peak_in_flight"] <= 10
    assert {"new_client_each_call": 5, "reused_client": 1} == outcome["connections"]
    assert 200 == outcome["optimal_status"]


async def test_troubleshooting_with_an_external_server(server: LocalServer) -> None:
    """Given a base_url, the sections that need no server access run against it."""
    example = load_example("troubleshooting")
    with anyio.fail_after(TIMEOUT):
        outcome = await example.main(server.url)
        async with example.optimal_client() as client:
            response = await (await client.get(server.url_for("/data")))
    assert "connections" not in outcome
    assert 200 == outcome["optimal_status"]
    assert 100 == sum(server.hits[f"/items/{i}"] for i in range(100))
    assert "keep-alive" == response.json()["headers"]["connection"]


# -- trio-native example ------------------------------------------------------------------------


@TRIO_ONLY
async def test_trio_app() -> None:
    """A nursery of workers: one succeeds, one gives up at its deadline, one cannot connect."""
    example = load_example("trio_app")
    with anyio.fail_after(TIMEOUT):
        outcomes = await example.main()
    assert {
        "users": "200 (X-Request-ID: users)",
        "slow": "gave up after 0.2s (cancelled)",
        "down": "ConnectError after 3 attempts",
    } == outcomes


@TRIO_ONLY
async def test_trio_usage() -> None:
    """Nursery under client-wide limits, trio deadlines inherited or owned, cancel, stats."""
    example = load_example("trio_usage")
    with anyio.fail_after(TIMEOUT):
        outcome = await example.main()
    workers = outcome["workers"]
    assert ([200], 12) == (workers["statuses"], workers["count"])
    assert 1 <= workers["peak"] <= 4
    assert {
        "inherited": True,
        "is_timeout_error": True,
        "last_error": "ConnectError",
        "retried": True,
        "opted_out_deadline": math.inf,
        "opted_out_status": 200,
    } == outcome["inherited"]
    assert {"status": "error", "timeout": 0.2, "attempts": 1, "last_error": None} == outcome["own"]
    assert {
        "doomed_status": "cancelled",
        "raised": "RequestCancelledError",
        "patient_status": 200,
    } == outcome["cancel"]
    assert {
        "in_flight": 0,
        "waiting": 0,
        "started": 17,
        "succeeded": 14,
        "failed": 2,
        "cancelled": 1,
        "waited": True,
    } == outcome["stats"]


async def test_benchmark_example_reports_the_four_figures(anyio_backend: str) -> None:
    """The benchmark example gets every request through its connection faults and reports."""
    example = load_example("benchmark")
    with anyio.fail_after(TIMEOUT):
        figures = await example.main(requests=200)
    assert 200 == figures["requests"]
    assert 1.0 == figures["success_rate"]
    assert figures["attempts"] == 200 + figures["retries"]
    assert 0 < figures["retries"]
    assert {"ConnectError"} == set(figures["faults"])


async def test_load_testing_counts_every_request_once(anyio_backend: str) -> None:
    """A small load test on the fault mix: each request sent has one outcome, figures agree."""
    example = load_example("load_testing")
    with anyio.fail_after(TIMEOUT):
        report = await example.main(requests=200, concurrency=20)
    assert (200, 200, False) == (report.planned, report.sent, report.capped)
    assert report.sent == report.succeeded + report.failed
    assert report.sent == sum(report.outcomes.values())
    assert report.sent == report.started
    assert report.succeeded == report.outcomes.get("200", 0)
    assert 0.6 <= report.success_rate <= 0.9  # a tenth goes to the down replica
    # The down replica's 20 requests: refused connections until its circuit opened, then
    # refused by the circuit, one rejection per request; the server's circuit stayed closed.
    assert 20 == report.outcomes.get("ConnectError", 0) + report.outcomes.get("CircuitOpenError", 0)
    assert report.circuit_rejected == report.outcomes.get("CircuitOpenError", 0) > 0
    assert report.circuit_events["circuit_opened"] >= 1
    assert 1 == report.circuits_open
    # The budget's bound: ratio per request, 1 token per second and 1 at the start.
    assert report.retries <= 0.1 * report.sent + 1.0 * (report.seconds + 1.0) + 1.0
    assert report.retries + report.retries_refused >= 1
    assert report.retries <= report.attempts <= report.sent + report.retries
    # Each attempt that reached the server drew the next fault of the seeded mix.
    drawn = sum(report.faults_drawn.values())
    assert 0 < drawn <= report.attempts
    assert Counter(example.MIX.draws(drawn)) == report.faults_drawn
    latencies = [report.latencies[name] for name in ("p50", "p90", "p95", "p99", "max")]
    assert sorted(latencies) == latencies
    assert 0 <= latencies[0]
    assert latencies[-1] <= report.seconds
    assert math.isclose(report.sent / report.seconds, report.throughput)
    assert 0 == report.events_dropped


async def test_load_testing_stops_at_its_duration(anyio_backend: str) -> None:
    """--duration caps the run: requests cut by it are failures, none is lost or left running."""
    example = load_example("load_testing")
    with anyio.fail_after(TIMEOUT):
        started = anyio.current_time()
        report = await example.main(requests=1_000_000, concurrency=10, duration=0.5)
        elapsed = anyio.current_time() - started
    assert report.capped is True
    assert 0 < report.sent < report.planned
    assert report.sent == report.succeeded + report.failed == report.started
    assert 0.45 <= report.seconds < 0.5 + example.SETTLE
    assert elapsed < 0.5 + example.SETTLE + 1.0


async def test_load_testing_against_a_given_url(server: LocalServer) -> None:
    """Pointed at a URL, it loads that URL only: no down replica, no fault, no retry."""
    example = load_example("load_testing")
    url = server.url_for("/data")
    with anyio.fail_after(TIMEOUT):
        report = await example.main(url, requests=50, concurrency=5)
    assert (url, 0.0, 50, 50, {"200": 50}) == (
        report.target,
        report.down_share,
        report.sent,
        report.succeeded,
        report.outcomes,
    )
    assert (50, 0, 0, 0, {}) == (
        report.attempts,
        report.retries,
        report.circuit_rejected,
        report.circuits_open,
        report.faults_drawn,
    )
    assert 50 == server.hits["/data"]


@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        ({"url": "ftp://127.0.0.1/"}, "url"),
        ({"requests": -1}, "requests"),
        ({"concurrency": 0}, "concurrency"),
        ({"duration": math.inf}, "duration"),
        ({"request_timeout": 0}, "request_timeout"),
        ({"down_share": 1.0}, "down_share"),
        ({"budget_ratio": -0.1}, "budget_ratio"),
    ],
)
async def test_load_testing_refuses_bad_arguments(arguments: dict[str, Any], name: str) -> None:
    """A bad argument is refused before any request, with its name in the message."""
    example = load_example("load_testing")
    with pytest.raises(ValueError, match=f"^{name} must be"):
        await example.main(**arguments)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_load_testing_script_prints_consistent_figures(backend: str) -> None:
    """The script's printed counts add up: successes plus failures are the requests sent."""
    script = str(EXAMPLES_DIR / "load_testing.py")
    arguments = ["--requests", "120", "--concurrency", "12", "--backend", backend]
    completed = subprocess.run(
        [sys.executable, "-W", "error", script, *arguments],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert 0 == completed.returncode, completed.stderr
    out = completed.stdout
    assert re.search(r"^requests: +120 sent of 120 in [0-9.]+ s$", out, re.MULTILINE), out
    success = re.search(r"^success: +([0-9,]+) \(([0-9.]+)%\), failed ([0-9,]+)$", out, re.M)
    assert success is not None, out
    succeeded, failed = int(success[1]), int(success[3])
    assert 120 == succeeded + failed
    assert math.isclose(100 * succeeded / 120, float(success[2]), abs_tol=0.05)
    outcomes = re.search(r"^outcomes: +(.*)$", out, re.MULTILINE)
    assert outcomes is not None, out
    counts = [int(part.rsplit(" x", 1)[1]) for part in outcomes[1].split(", ")]
    assert 120 == sum(counts)
    for label in ("throughput", "latency", "retries", "budget", "circuits", "server drew"):
        assert re.search(rf"^{label}: ", out, re.MULTILINE), label


# -- the examples as scripts --------------------------------------------------------------------

# Every example runs on both backends but the trio-native ones, which are written with trio's own
# primitives; asked for asyncio, they exit with argparse's usage error and say why.
SCRIPT_BACKENDS = {
    **dict.fromkeys(EXAMPLES, ("asyncio", "trio")),
    **dict.fromkeys(("trio_app", "trio_usage"), ("trio",)),
}


def run_example(name: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -W error examples/<name>.py *arguments``."""
    return subprocess.run(
        [sys.executable, "-W", "error", str(EXAMPLES_DIR / f"{name}.py"), *arguments],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_as_a_script(name: str, backend: str) -> None:
    """
    ``python examples/<name>.py --backend <backend>`` runs to completion, with warnings as
    errors, or refuses a backend the example is not written for with a usage error.
    """
    arguments = ["--backend", backend]
    if name == "load_testing":
        arguments += ["--requests", "200", "--concurrency", "20"]
    completed = run_example(name, *arguments)
    if backend in SCRIPT_BACKENDS[name]:
        assert 0 == completed.returncode, completed.stderr
        assert completed.stdout
        # A readable summary, not a raw dict or a result's repr.
        assert not re.search(r"^[{\[(]|\w+Result\(", completed.stdout, re.MULTILINE), (
            completed.stdout
        )
    else:
        assert 2 == completed.returncode, completed.stderr
        assert completed.stderr.startswith(f"usage: python examples/{name}.py"), completed.stderr
        assert (
            f"error: argument --backend: this example is {SCRIPT_BACKENDS[name][0]}-specific"
            in (completed.stderr)
        )
        assert "" == completed.stdout


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_script_help(name: str) -> None:
    """``--help`` prints the usage, with the --backend option, and exits 0 without running."""
    completed = run_example(name, "--help")
    assert 0 == completed.returncode, completed.stderr
    assert completed.stdout.startswith(f"usage: python examples/{name}.py"), completed.stdout
    assert "--backend {asyncio,trio}" in completed.stdout
    assert "" == completed.stderr


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (["curio"], "error: unrecognized arguments: curio"),
        (["--backend", "curio"], "error: argument --backend: invalid choice: 'curio'"),
        (["--no-such-option"], "error: unrecognized arguments: --no-such-option"),
    ],
    ids=["positional", "backend", "option"],
)
@pytest.mark.parametrize("name", EXAMPLES)
def test_example_script_rejects_bad_arguments(name: str, arguments: list[str], error: str) -> None:
    """A bad argument ends in argparse's usage message and exit status 2, not a traceback."""
    completed = run_example(name, *arguments)
    assert 2 == completed.returncode, completed.stderr
    assert completed.stderr.startswith(f"usage: python examples/{name}.py"), completed.stderr
    assert error in completed.stderr
    assert "Traceback" not in completed.stderr
    assert "" == completed.stdout


# -- the code blocks of the docs ----------------------------------------------------------------

DOCS_URL = "http://127.0.0.1:8000"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


FILE_BLOCK = re.compile(r"^```(?:python|toml)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def doc_blocks(page: str, pattern: re.Pattern[str] = PYTHON_BLOCK) -> list[str]:
    """The code blocks of ``docs/<page>`` that ``pattern`` matches (``python`` by default)."""
    return pattern.findall((DOCS_DIR / page).read_text(encoding="utf-8"))


def doc_block_params(*pages: str) -> list[Any]:
    """One ``(page, index)`` parameter per Python block of the given pages."""
    return [
        pytest.param(page, index, id=f"{page}:{index}")
        for page in pages
        for index in range(len(doc_blocks(page)))
    ]


@pytest.fixture(scope="module")
def docs_server() -> Iterator[str]:
    """The test server, run as the docs tell readers to run it, on a free port."""
    command = [sys.executable, "-m", "typed_async_client.testing", "--port", "0"]
    with subprocess.Popen(
        [*command, "--duration", "300"], stdout=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        try:
            line = process.stdout.readline()
            assert line.startswith("serving on "), line
            yield line.removeprefix("serving on ").strip()
        finally:
            process.terminate()
            process.wait(timeout=TIMEOUT)


def run_python(source: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", source],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        cwd=cwd,
    )


@pytest.mark.parametrize(
    ("page", "index"), doc_block_params("usage.md", "api.md", "concurrency.md", "retries.md")
)
def test_docs_code_block_runs(
    page: str, index: int, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Each Python block of the usage guide, the API reference and the concurrency model runs."""
    source = doc_blocks(page)[index]
    if DOCS_URL in source:
        source = source.replace(DOCS_URL, request.getfixturevalue("docs_server"))
    completed = run_python(source, tmp_path)
    assert 0 == completed.returncode, completed.stderr


def test_docs_testing_guide_suite_passes(tmp_path: Path) -> None:
    """The files of docs/testing.md, written out as a project, pass under pytest."""
    for block in doc_blocks("testing.md", FILE_BLOCK):
        first_line = block.splitlines()[0]
        assert first_line.startswith("# "), first_line
        (tmp_path / first_line.removeprefix("# ").strip()).write_text(block, encoding="utf-8")
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-W", "error", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 2,
        check=False,
        cwd=tmp_path,
    )
    assert 0 == completed.returncode, completed.stdout + completed.stderr
    assert " passed" in completed.stdout
