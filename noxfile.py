"""
Developer tasks: ``nox -s tests lint typecheck examples``, and ``nox -s soak`` (not run by default).
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "typecheck", "tests", "examples"]

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint rules (ASYNC included) and formatting."""
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "examples", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "examples", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package and the examples."""
    session.install("-e", ".[test]")
    session.run("mypy", "--strict", "src")
    session.run("mypy", "--strict", "examples")


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite on asyncio and trio, with coverage; `-- -m slow` runs the slow tests."""
    session.install("-e", ".[test]")
    args = session.posargs or ["-n", "auto"]
    session.run(
        "python", "-m", "pytest", "--cov=typed_async_client", "--cov-report=term-missing", *args
    )


@nox.session
def examples(session: nox.Session) -> None:
    """Run every example against its embedded local server."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", "tests/test_examples.py")


@nox.session
def soak(session: nox.Session) -> None:
    """The soak test: a seeded fault mix at concurrency 200 on both backends (SOAK_REQUESTS=N)."""
    session.install("-e", ".[test]")
    session.run(
        "python",
        "-m",
        "pytest",
        "-m",
        "slow",
        "tests/reliability/test_soak.py",
        "-s",
        *session.posargs,
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against the peers, into docs/benchmarks.md; `-- --quick` for a smoke run."""
    session.install("-e", ".[bench]")
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site (mkdocs-material + mkdocstrings), warnings as errors."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "-d", "site", env={"NO_MKDOCS_2_WARNING": "1"})
