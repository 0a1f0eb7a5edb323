"""
The code of the README and of the docs site's guides runs, on asyncio and on trio.

``tests/test_examples.py`` runs the blocks of docs/usage.md, api.md, concurrency.md, retries.md
and testing.md; this module runs the README's Python blocks and those of the site's other
pages, each as a program of its own (``python -W error -c``) against the test server started as
the docs tell readers to start it, on a free port instead of 8000. A block that ends with
``anyio.run(main)`` runs a second time with ``anyio.run(main, backend="trio")``. A block marked
with ``<!-- fragment -->`` on the line before it is not a program and is skipped; any other
block must be one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS_DIR = ROOT / "docs"
TIMEOUT = 30
DOCS_URL = "http://127.0.0.1:8000"
# A fenced Python block, and whether the line before it marks it as a fragment.
BLOCK = re.compile(
    r"(?P<marker>^<!-- fragment -->\n)?^```python\n(?P<source>.*?)^```", re.DOTALL | re.MULTILINE
)
ANYIO_RUN = re.compile(r"^anyio\.run\(main\)", re.MULTILINE)
# The site's pages whose Python blocks this module runs (the others are run by test_examples).
SITE_PAGES = ("index.md", "asyncio.md", "trio.md", "fastapi.md", "monitoring.md")


def python_blocks(path: Path) -> list[tuple[str, bool]]:
    """Each Python block of ``path``: its source, and whether it is marked as a fragment."""
    text = path.read_text(encoding="utf-8")
    return [(m["source"], m["marker"] is not None) for m in BLOCK.finditer(text)]


def block_params(*paths: Path) -> list[Any]:
    """One parameter per block and backend: both for blocks started by ``anyio.run(main)``."""
    params = []
    for path in paths:
        name = path.relative_to(ROOT).as_posix()
        for index, (source, fragment) in enumerate(python_blocks(path)):
            # A block started otherwise (asyncio.run, trio.run) runs once, as written.
            backends = ["asyncio", "trio"] if ANYIO_RUN.search(source) else ["as-written"]
            for backend in backends:
                marks = [pytest.mark.skip(reason="marked as a fragment")] if fragment else []
                params.append(
                    pytest.param(path, index, backend, id=f"{name}:{index}:{backend}", marks=marks)
                )
    return params


@pytest.fixture(scope="module")
def docs_server() -> Iterator[str]:
    """The test server, started as the docs say (python -m typed_async_client.testing)."""
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


def run_block(source: str, backend: str, server_url: str, cwd: Path) -> None:
    """Run ``source`` as a program on ``backend`` against the server at ``server_url``."""
    source = source.replace(DOCS_URL, server_url)
    if backend == "trio":
        source = ANYIO_RUN.sub('anyio.run(main, backend="trio")', source)
    completed = subprocess.run(
        [sys.executable, "-W", "error", "-c", source],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        cwd=cwd,
    )
    assert 0 == completed.returncode, completed.stderr
    assert completed.stdout


def test_every_site_page_is_checked() -> None:
    """Every page of docs/ with Python blocks is run here or by tests/test_examples.py."""
    run_elsewhere = {"usage.md", "api.md", "concurrency.md", "retries.md", "testing.md"}
    with_blocks = {path.name for path in DOCS_DIR.glob("*.md") if python_blocks(path)}
    assert set() == with_blocks - run_elsewhere - set(SITE_PAGES)


READMES = (ROOT / "README.md", ROOT / "README.fr.md")


@pytest.mark.parametrize(("path", "index", "backend"), block_params(*READMES))
def test_readme_code_block_runs(
    path: Path, index: int, backend: str, docs_server: str, tmp_path: Path
) -> None:
    """Each README Python block not marked as a fragment is a complete program, and runs."""
    source, _ = python_blocks(path)[index]
    run_block(source, backend, docs_server, tmp_path)


@pytest.mark.parametrize(
    ("path", "index", "backend"), block_params(*(DOCS_DIR / page for page in SITE_PAGES))
)
def test_site_page_code_block_runs(
    path: Path, index: int, backend: str, docs_server: str, tmp_path: Path
) -> None:
    """Each Python block of the site's guides runs (test_examples.py runs the other pages')."""
    source, _ = python_blocks(path)[index]
    run_block(source, backend, docs_server, tmp_path)


def test_readme_has_no_unmarked_fragment() -> None:
    """A README block that is not marked as a fragment starts a program: it calls a runner."""
    for source, fragment in (block for readme in READMES for block in python_blocks(readme)):
        if not fragment:
            assert re.search(r"^(anyio|asyncio|trio)\.run\(", source, re.MULTILINE), source


def test_docs_site_builds(tmp_path: Path) -> None:
    """``mkdocs build --strict`` passes: no broken link or anchor, every page in the nav."""
    pytest.importorskip("mkdocs", reason="the docs extra is not installed")
    pytest.importorskip("mkdocstrings", reason="the docs extra is not installed")
    completed = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 4,
        check=False,
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert 0 == completed.returncode, completed.stderr
    assert (tmp_path / "site" / "reference" / "index.html").is_file()
