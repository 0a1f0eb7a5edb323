"""
The ``typed-async-client`` command: ``demo``, ``fetch`` and ``serve``, on asyncio and trio.

Commands run in this process through ``typed_async_client.cli.main`` where that is enough (each
starts its own event loop, so these tests are plain functions parametrized by backend), and as
subprocesses where the test is about the process: a real SIGINT, a terminal (a pty, or tmux
for the live dashboard), a missing rich. Everything talks to loopback only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from typed_async_client.cli import main
from typed_async_client.testing import refusing_url

BACKENDS = ["asyncio", "trio"]
TIMEOUT = 30  # seconds, for any subprocess
POSIX_ONLY = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and ptys")


def command(*args: str) -> list[str]:
    """``python -m typed_async_client ARGS`` with this interpreter."""
    return [sys.executable, "-m", "typed_async_client", *args]


def start(*args: str, module: str = "typed_async_client") -> subprocess.Popen[str]:
    """Start a command whose SIGINT is Python's default, whatever this process inherited."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell that starts a job in the background makes it ignore SIGINT; so would this
        # child, and the signal tests would test nothing.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    """Wait for ``process``; its status, the rest of its stdout, and its stderr."""
    assert process.stdout is not None
    assert process.stderr is not None
    # Not communicate(): it reads the pipes' file descriptors, skipping what readline() has
    # already buffered. The outputs are small, so waiting first cannot fill a pipe.
    with process.stdout, process.stderr:
        try:
            status = process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        return status, process.stdout.read(), process.stderr.read()


def read_line(stream: Any, deadline: float) -> str:
    """A line of ``stream``, failing the test past ``deadline`` (``time.monotonic()``)."""
    line: str = stream.readline()
    assert time.monotonic() < deadline, "the command took too long to say anything"
    return line


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    """The URL of ``typed-async-client serve --port 0``, run as a process for the module."""
    process = start("serve", "--port", "0", "--duration", "300")
    assert process.stdout is not None
    try:
        line = process.stdout.readline()
        assert line.startswith("serving on "), line
        yield line.removeprefix("serving on ").strip()
    finally:
        process.terminate()  # SIGTERM: a clean stop too
        status, _, err = finish(process)
        assert (0, "") == (status, err)


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the command in this process; its status, stdout and stderr."""
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


# -- --help and bad options -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "described"),
    [
        ([], "A resilient async HTTP client"),
        (["demo"], "fault-injecting server on loopback"),
        (["fetch"], "one JSON line per result"),
        (["serve"], "Ctrl-C (SIGINT) or SIGTERM stops it cleanly"),
    ],
)
def test_every_command_has_a_described_help(
    capsys: pytest.CaptureFixture[str], args: list[str], described: str
) -> None:
    """--help prints a usage line and a description, and exits 0."""
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert 0 == exit_info.value.code
    assert out.startswith("usage: typed-async-client")
    assert described in out


def test_python_dash_m_runs_the_command() -> None:
    """python -m typed_async_client is the same command, under its own name."""
    done = subprocess.run(command("--version"), capture_output=True, text=True, timeout=TIMEOUT)
    assert (0, "python -m typed_async_client 0.1.0\n") == (done.returncode, done.stdout)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "--host", "0.0.0.0"], "argument --host: must be a loopback address"),
        (["serve", "--host", "example.com"], "argument --host: must be a loopback address"),
        (["serve", "--port", "-1"], "argument --port: must be an integer from 0 to 65535, got -1"),
        (["serve", "--port", "65536"], "argument --port: must be an integer from 0 to 65535"),
        (["serve", "--port", "http"], "argument --port: must be an integer, got 'http'"),
        (["serve", "--duration", "0"], "argument --duration: must be a number above 0"),
        (["serve", "--duration", "nan"], "argument --duration: must be a number above 0"),
        (["serve", "--reset", "1.5"], "argument --reset: must be a number from 0 to 1"),
        (["serve", "--reset", "0.6", "--drop", "0.6"], "the fault rates add up to 1.2"),
        (["serve", "--backend", "curio"], "argument --backend: invalid choice: 'curio'"),
        (["demo", "--requests", "0"], "argument --requests: must be an integer from 1"),
        (["demo", "--fault-rate", "2"], "argument --fault-rate: must be a number from 0 to 1"),
        (["demo", "--policy", "always"], "argument --policy: invalid choice"),
        (["fetch"], "no URL to fetch: give URLs, or --input FILE"),
        (["fetch", "--concurrency", "0", "u"], "argument --concurrency: must be an integer"),
        (["fetch", "--retries", "-1", "u"], "argument --retries: must be an integer from 0"),
        (["fetch", "--timeout", "inf", "u"], "argument --timeout: must be a number above 0"),
        (["fetch", "--input", "/nonexistent/urls"], "cannot read --input /nonexistent/urls"),
    ],
)
def test_bad_options_are_usage_errors(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    """A bad option ends in argparse's error (status 2) that names it, before anything runs."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert 2 == exit_info.value.code
    assert message in err
    assert "Traceback" not in err


def test_the_testing_module_shares_serve_and_its_checks() -> None:
    """python -m typed_async_client.testing refuses a non-loopback host the same way."""
    process = start("--host", "0.0.0.0", module="typed_async_client.testing")
    status, out, err = finish(process)
    assert (2, "") == (status, out)
    assert err.startswith("usage: python -m typed_async_client.testing")
    assert "error: argument --host: must be a loopback address" in err


def test_serve_reports_a_port_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    """A port that cannot be bound is one line on stderr and status 1, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        status, out, err = run_main(capsys, "serve", "--port", port, "--duration", "5")
    assert (1, "") == (status, out)
    assert err.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")


@pytest.mark.parametrize("backend", BACKENDS)
def test_serve_stops_after_its_duration(capsys: pytest.CaptureFixture[str], backend: str) -> None:
    """serve --duration prints the URL and the fault mix, then 'stopped', and exits 0."""
    args = ["serve", "--port", "0", "--duration", "0.2", "--backend", backend, "--reset", "0.25"]
    status, out, err = run_main(capsys, *args)
    lines = out.splitlines()
    assert (0, "", 3) == (status, err, len(lines))
    assert lines[0].startswith("serving on http://127.0.0.1:")
    assert lines[1].endswith("/mix: reset 0.25 (seed 0, delay 0.05 s)")
    assert "stopped (0 requests on 0 connections)" == lines[2]


# -- demo -------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_demo_json_accounts_for_every_request(
    capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    """demo --json prints one object: every request submitted has one outcome, none lost."""
    args = ["demo", "--json", "--backend", backend, "--requests", "150", "--concurrency", "30"]
    status, out, err = run_main(capsys, *args, "--fault-rate", "0.3", "--seed", "4")
    report = json.loads(out)
    assert 0 == status
    assert (150, 0, 0) == (report["submitted"], report["lost"], report["not_submitted"])
    assert 150 == sum(report["outcomes"].values()) == sum(report["planned_faults"].values())
    assert {"refused", "retry_after", "mix"} == set(report["planned_faults"])
    assert report["retries"] > 0
    # Each request's first try and each retry is an attempt, or fails fast on an open circuit.
    assert 150 + report["retries"] == report["attempts"] + report["rejected_by_circuit"]
    assert report["server_faults"]["reset"] > 0
    assert {"server", "refusing port"} == set(report["circuits"])
    assert 0 < report["latency_seconds"]["p50"] <= report["latency_seconds"]["p99"]
    assert (backend, None) == (report["backend"], report["stopped_by"])
    assert err.startswith("demo: 150 requests, 30 at a time")


def test_demo_policies_differ_on_503(capsys: pytest.CaptureFixture[str]) -> None:
    """Under the default policy a 503 is an outcome; under the transient one it is retried."""
    # Few faults at the server, so that its circuit stays closed and every 503 is answered.
    args = ["demo", "--json", "--requests", "100", "--fault-rate", "0.2", "--seed", "2"]
    _, default_out, _ = run_main(capsys, *args, "--policy", "default")
    _, transient_out, _ = run_main(capsys, *args, "--policy", "transient")
    default, transient = json.loads(default_out), json.loads(transient_out)
    retry_after = default["planned_faults"]["retry_after"]
    assert retry_after > 0
    assert retry_after == default["outcomes"]["HTTP 503"]
    assert "HTTP 503" not in transient["outcomes"]
    assert retry_after == transient["attempt_failures"]["HTTP 503"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_demo_summary_on_a_pipe_is_plain_text(backend: str) -> None:
    """Without a terminal, demo prints a plain summary (no dashboard, no escape codes)."""
    process = start("demo", "--backend", backend, "--requests", "60", "--concurrency", "10")
    status, out, err = finish(process)
    assert 0 == status
    assert out.startswith("typed-async-client demo: 60 requests, 10 at a time")
    assert "  requests         60 submitted, 0 lost\n" in out
    assert "\x1b" not in out
    assert "Traceback" not in err


def test_demo_time_limit_cancels_what_is_left(capsys: pytest.CaptureFixture[str]) -> None:
    """Past --time-limit the rest is cancelled or never sent, nothing is lost, status 0."""
    args = ["demo", "--json", "--requests", "100000", "--concurrency", "5", "--time-limit", "0.3"]
    status, out, _ = run_main(capsys, *args)
    report = json.loads(out)
    assert (0, 0, "the 0.3 s time limit") == (status, report["lost"], report["stopped_by"])
    assert 100_000 == report["submitted"] + report["not_submitted"]
    assert report["submitted"] == sum(report["outcomes"].values())


# -- fetch ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_fetch_prints_one_json_line_per_url(
    capsys: pytest.CaptureFixture[str], served: str, backend: str
) -> None:
    """Each URL gets one line; a refused one is an error line after its retries; status 1."""
    ok, missing = f"{served}/ping", f"{served}/status/404"
    with refusing_url() as refused:
        args = ["fetch", ok, missing, refused, "--retries", "2", "--backoff", "0.01"]
        status, out, err = run_main(capsys, *args, "--backend", backend)
    lines = {line["url"]: line for line in json_lines(out)}
    assert 1 == status
    assert {"url", "status", "attempts", "seconds", "error"} == set(lines[ok])
    assert (200, 1, None) == (lines[ok]["status"], lines[ok]["attempts"], lines[ok]["error"])
    assert (404, None) == (lines[missing]["status"], lines[missing]["error"])
    assert (None, 3) == (lines[refused]["status"], lines[refused]["attempts"])
    assert lines[refused]["error"].startswith("ConnectError")
    assert err.startswith("fetched 3 of 3 URLs in ")
    assert err.rstrip().endswith("2 responses (1 x 200, 1 x 404), 1 error")


def test_fetch_reads_urls_from_a_file(
    capsys: pytest.CaptureFixture[str], served: str, tmp_path: Path
) -> None:
    """--input reads one URL a line, skipping blanks and comments; all answered: status 0."""
    urls = tmp_path / "urls.txt"
    urls.write_text(f"# a comment\n{served}/a\n\n  {served}/b  \n", encoding="utf-8")
    status, out, _ = run_main(capsys, "fetch", "--input", str(urls), f"{served}/c")
    assert 0 == status
    assert {f"{served}/{p}" for p in "abc"} == {line["url"] for line in json_lines(out)}


def test_fetch_transient_policy_retries_a_503(
    capsys: pytest.CaptureFixture[str], served: str
) -> None:
    """By default a 503 is the answer; with --policy transient it is retried."""
    urls = [f"{served}/sequence/{uuid.uuid4().hex}?codes=503,200" for _ in range(2)]
    _, default, _ = run_main(capsys, "fetch", urls[0], "--backoff", "0.01")
    _, transient, _ = run_main(
        capsys, "fetch", urls[1], "--backoff", "0.01", "--policy", "transient"
    )
    assert (503, 1) == (json_lines(default)[0]["status"], json_lines(default)[0]["attempts"])
    assert (200, 2) == (json_lines(transient)[0]["status"], json_lines(transient)[0]["attempts"])


def test_fetch_deadline_ends_a_slow_url(capsys: pytest.CaptureFixture[str], served: str) -> None:
    """--deadline bounds each URL's whole time: a slow URL ends with DeadlineExceededError."""
    status, out, _ = run_main(capsys, "fetch", f"{served}/delay/5", "--deadline", "0.2")
    line = json_lines(out)[0]
    assert (1, None) == (status, line["status"])
    assert line["error"].startswith("DeadlineExceededError")
    assert line["seconds"] < 2


def test_fetch_reports_a_url_it_cannot_send(capsys: pytest.CaptureFixture[str]) -> None:
    """A URL the client refuses at submission still gets its line, with 0 attempts."""
    status, out, _ = run_main(capsys, "fetch", "ftp://127.0.0.1/file")
    line = json_lines(out)[0]
    assert (1, 0, None) == (status, line["attempts"], line["status"])
    assert line["error"].startswith("ValueError: url scheme must be 'http' or 'https'")


# -- Ctrl-C: a real SIGINT to a subprocess ----------------------------------------------------


@POSIX_ONLY
@pytest.mark.parametrize("backend", BACKENDS)
def test_ctrl_c_stops_fetch_with_a_partial_summary(served: str, backend: str) -> None:
    """SIGINT cancels the slow URLs at once: their lines say so, the summary follows, 130."""
    slow = f"{served}/delay/5"
    process = start(
        "fetch", f"{served}/ping", slow, slow, slow, "--concurrency", "2", "--backend", backend
    )
    assert process.stdout is not None
    deadline = time.monotonic() + TIMEOUT
    first = json.loads(read_line(process.stdout, deadline))
    time.sleep(0.5)  # the next slow URL is submitted once /ping has freed its slot
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    status, out, err = finish(process)
    lines = json_lines(out)
    assert 130 == status
    assert time.monotonic() - sent < 4  # well before /delay/5 could answer
    assert (f"{served}/ping", 200) == (first["url"], first["status"])
    assert [(slow, None, "cancelled")] * 2 == [(x["url"], x["status"], x["error"]) for x in lines]
    assert err.startswith("interrupted (Ctrl-C): 3 of 4 URLs in ")
    assert err.rstrip().endswith("1 response (1 x 200), 0 errors, 2 cancelled; 1 not started")
    assert "Traceback" not in err


@POSIX_ONLY
@pytest.mark.parametrize("backend", BACKENDS)
def test_ctrl_c_stops_the_demo_with_its_report(backend: str) -> None:
    """SIGINT cancels the demo's batch: the JSON report still comes, nothing lost, 130."""
    process = start(
        "demo", "--json", "--requests", "100000", "--concurrency", "5", "--backend", backend
    )
    assert process.stderr is not None
    deadline = time.monotonic() + TIMEOUT
    assert read_line(process.stderr, deadline).startswith("demo: 100,000 requests")
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    status, out, err = finish(process)
    report = json.loads(out)
    assert (130, "Ctrl-C", 0) == (status, report["stopped_by"], report["lost"])
    assert 0 < report["submitted"] < 100_000
    assert report["submitted"] == sum(report["outcomes"].values())
    assert "interrupted\n" == err


@POSIX_ONLY
@pytest.mark.parametrize("module", ["typed_async_client", "typed_async_client.testing"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_serve_cleanly(module: str, backend: str, signum: signal.Signals) -> None:
    """serve (either way it is started) stops on SIGINT or SIGTERM: 'stopped', 0, no trace."""
    args = ["--port", "0", "--backend", backend]
    process = start(*(["serve", *args] if module == "typed_async_client" else args), module=module)
    assert process.stdout is not None
    deadline = time.monotonic() + TIMEOUT
    url = read_line(process.stdout, deadline).removeprefix("serving on ").strip()
    assert 200 == httpx.get(f"{url}/ping", timeout=10, trust_env=False).status_code
    process.send_signal(signum)
    status, out, err = finish(process)
    assert (0, "stopped (1 request on 1 connection)\n", "") == (status, out, err)


# -- without rich -----------------------------------------------------------------------------

_WITHOUT_RICH = "import sys; sys.modules['rich'] = None; "


def test_the_package_and_the_json_demo_work_without_rich() -> None:
    """Without rich the package imports and demo --json runs (rich is only the cli extra)."""
    source = (
        _WITHOUT_RICH + "import typed_async_client, typed_async_client.testing; "
        "from typed_async_client.cli import main; "
        "sys.exit(main(['demo', '--json', '--requests', '20']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", source], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert 0 == done.returncode, done.stderr
    assert 20 == json.loads(done.stdout)["submitted"]


@POSIX_ONLY
def test_the_dashboard_without_rich_says_what_to_install() -> None:
    """On a terminal without rich, demo says to install typed-async-client[cli], status 2."""
    import pty

    source = _WITHOUT_RICH + "from typed_async_client.cli import main; sys.exit(main(['demo']))"
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-c", source],
            stdout=follower,
            stderr=subprocess.PIPE,
            text=True,
            timeout=TIMEOUT,
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert 2 == done.returncode
    assert "install typed-async-client[cli]" in done.stderr
    assert "Traceback" not in done.stderr


# -- the live dashboard, seen in a real terminal ----------------------------------------------


NEEDS_TMUX = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Pane:
    """A detached tmux pane on a tmux server of its own, running one shell command."""

    def __init__(self, shell: str, width: int, height: int = 50) -> None:
        self.tmux = ["tmux", "-L", f"tac-test-{uuid.uuid4().hex[:12]}"]
        env = {**os.environ, "TERM": "xterm-256color"}
        size = ["-x", str(width), "-y", str(height)]
        self.run("new-session", "-d", *size, shell, env=env)

    def run(self, *args: str, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            [*self.tmux, *args], capture_output=True, text=True, timeout=TIMEOUT, env=env
        )
        return done.stdout

    def wait_for(self, text: str) -> str:
        """The pane's text once ``text`` shows in it (or after ``TIMEOUT`` seconds)."""
        deadline = time.monotonic() + TIMEOUT
        screen = self.run("capture-pane", "-p")
        while text not in screen and time.monotonic() < deadline:
            time.sleep(0.1)
            screen = self.run("capture-pane", "-p")
        return screen

    def close(self) -> None:
        self.run("kill-server")  # our own server only (-L)


@pytest.fixture
def pane_factory() -> Iterator[Callable[[str, int], Pane]]:
    panes: list[Pane] = []

    def open_pane(shell: str, width: int) -> Pane:
        panes.append(Pane(shell, width))
        return panes[-1]

    yield open_pane
    for pane in panes:
        pane.close()


def demo_shell(*args: str) -> str:
    """A shell line that runs demo, then prints its exit status and keeps the pane open."""
    return " ".join(command("demo", *args)) + "; echo EXIT=$?; sleep 60"


@NEEDS_TMUX
@pytest.mark.parametrize(("backend", "width"), [("asyncio", 120), ("trio", 80)])
def test_the_live_dashboard_reads_well_in_a_terminal(
    pane_factory: Callable[[str, int], Pane], backend: str, width: int
) -> None:
    """In a tmux pane, demo draws its panel within the width, then the summary, status 0."""
    shell = demo_shell("--requests", "300", "--concurrency", "20", "--backend", backend)
    screen = pane_factory(shell, width).wait_for("EXIT=")
    lines = screen.splitlines()
    assert "EXIT=0" in lines, screen
    assert "typed-async-client demo" in lines[0]
    assert all(len(line) <= width for line in lines)
    for heading in ("Requests", "Outcomes", "Retried after", "Latency", "Circuits", "Summary"):
        assert heading in screen
    assert "300 / 300 done  100%" in screen
    assert "300 submitted, 0 lost" in screen
    assert "Traceback" not in screen


@NEEDS_TMUX
@pytest.mark.parametrize("backend", BACKENDS)
def test_ctrl_c_in_the_live_dashboard_leaves_a_clean_screen(
    pane_factory: Callable[[str, int], Pane], backend: str
) -> None:
    """Ctrl-C typed in the terminal: one panel (the echoed ^C does not shift it), its last
    frame says stopped, the summary follows, status 130."""
    shell = demo_shell("--requests", "100000", "--concurrency", "10", "--backend", backend)
    pane = pane_factory(shell, 100)
    assert "running" in pane.wait_for("running")
    pane.run("send-keys", "C-c")
    screen = pane.wait_for("EXIT=")
    assert "EXIT=130" in screen.splitlines(), screen
    assert 1 == sum(line.startswith("╭") for line in screen.splitlines()), screen
    assert "stopped: Ctrl-C" in screen
    assert "stopped by        Ctrl-C" in screen
    assert "interrupted" in screen
    assert "Traceback" not in screen
