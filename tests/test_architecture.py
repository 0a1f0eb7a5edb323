"""
The package's import graph, computed from the source by docs/hooks/import_graph.py (the
generator of docs/architecture.md's picture): no cycle, every module in the picture.

The generator itself is checked on small packages written to ``tmp_path``, so that a cycle, a
relative import or a ``TYPE_CHECKING`` import is known to be seen as it should.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = ROOT / "src" / "typed_async_client"
HOOK = ROOT / "docs" / "hooks" / "import_graph.py"


def _load_generator() -> ModuleType:
    """docs/hooks/import_graph.py, loaded from its path (docs/hooks is not a package)."""
    spec = importlib.util.spec_from_file_location("import_graph", HOOK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses looks the module up by name while building the class.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


graph_tools = _load_generator()


def _write(root: Path, files: dict[str, str]) -> Path:
    """A package at ``root/pkg`` made of ``files`` (relative path: source); returns its dir."""
    package = root / "pkg"
    for relative, source in files.items():
        path = package / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return package


def _expected_nodes() -> set[str]:
    """The nodes the picture must show, listed from the files without the generator's help."""
    nodes = {path.stem for path in PACKAGE_DIR.glob("*.py")}
    for init in PACKAGE_DIR.glob("*/__init__.py"):
        nodes.add(init.parent.name)
        if (init.parent / "__main__.py").is_file():
            nodes.add(f"{init.parent.name}.__main__")
    return nodes


def test_the_package_has_no_import_cycle() -> None:
    """No group of modules imports each other at runtime, counted from the source itself."""
    graph = graph_tools.build_graph(PACKAGE_DIR)
    # The graph is the real one: the facade imports the client, the client the exceptions.
    assert {("__init__", "_client"), ("_client", "_exceptions")} <= graph.runtime
    assert [] == graph_tools.find_cycles(graph)


def test_the_picture_mentions_every_module() -> None:
    """Every top-level module, subpackage and entry point is a node of the Mermaid graph."""
    graph = graph_tools.build_graph(PACKAGE_DIR)
    text = graph_tools.mermaid(graph)
    assert _expected_nodes() == set(graph.nodes)
    assert [] == [node for node in sorted(_expected_nodes()) if f'["{node}"]' not in text]
    assert text.startswith("graph TD\n")


def test_a_cycle_is_found(tmp_path: Path) -> None:
    """Modules that import each other, directly or through a third, make one cycle."""
    package = _write(
        tmp_path,
        {
            "__init__.py": "from ._a import A\n",
            "_a.py": "from ._b import B\nA = 1\n",
            "_b.py": "from . import _c\nB = 2\n",
            "_c.py": "def late() -> None:\n    from ._a import A\n",
            "_leaf.py": "import json\n",
        },
    )
    graph = graph_tools.build_graph(package)
    assert [["_a", "_b", "_c"]] == graph_tools.find_cycles(graph)
    text = graph_tools.markdown(graph)
    assert "Import cycles" in text
    assert "_a <-> _b <-> _c" in text


def test_type_checking_imports_are_drawn_but_do_not_make_a_cycle(tmp_path: Path) -> None:
    """An import under ``if TYPE_CHECKING:`` is a dotted edge, left out of the cycle search."""
    package = _write(
        tmp_path,
        {
            "__init__.py": "",
            "_client.py": "from ._batch import Batch\n",
            "_batch.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from ._client import Client\n"
                "else:\n"
                "    from . import _other\n"
                "class Batch: ...\n"
            ),
            "_other.py": "",
        },
    )
    graph = graph_tools.build_graph(package)
    assert {("_client", "_batch"), ("_batch", "_other")} == graph.runtime
    assert {("_batch", "_client")} == graph.typing
    assert [] == graph_tools.find_cycles(graph)
    ids = {node: f"m{index}" for index, node in enumerate(graph.nodes)}
    assert f"{ids['_batch']} -.-> {ids['_client']}" in graph_tools.mermaid(graph)


def test_subpackages_are_single_nodes_and_entry_points_their_own(tmp_path: Path) -> None:
    """Relative imports in a subpackage resolve; its __main__.py is a node of its own."""
    package = _write(
        tmp_path,
        {
            "__init__.py": "from .tools import helper\n",
            "_core.py": "import pkg.tools._inner\n",
            "tools/__init__.py": "from ._inner import helper\n",
            "tools/_inner.py": "from .._leaf import X\nfrom ..cli import run\n",
            "tools/__main__.py": "from ..cli._main import run\n",
            "cli/__init__.py": "from ._main import run\n",
            "cli/_main.py": "from .. import _leaf\ndef run() -> None: ...\n",
            "_leaf.py": "X = 1\n",
        },
    )
    graph = graph_tools.build_graph(package)
    assert ("__init__", "_core", "_leaf", "cli", "tools", "tools.__main__") == graph.nodes
    assert {
        ("__init__", "tools"),
        ("_core", "tools"),
        ("tools", "_leaf"),
        ("tools", "cli"),
        ("tools.__main__", "cli"),
        ("cli", "_leaf"),
    } == graph.runtime
    assert {
        "_leaf": 0,
        "cli": 1,
        "tools": 2,
        "_core": 3,
        "__init__": 3,
        "tools.__main__": 2,
    } == graph_tools.bands(graph)


def test_the_hook_replaces_the_marker_of_the_architecture_page() -> None:
    """docs/architecture.md holds the marker, and the build puts the Mermaid graph there."""
    source = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert graph_tools.MARKER in source
    page = SimpleNamespace(file=SimpleNamespace(src_uri="architecture.md"))
    built = graph_tools.on_page_markdown(source, page=page)
    assert graph_tools.MARKER not in built
    assert "```mermaid\ngraph TD\n" in built
    other = SimpleNamespace(file=SimpleNamespace(src_uri="index.md"))
    assert source == graph_tools.on_page_markdown(source, page=other)


@pytest.mark.parametrize("cycle", [False, True])
def test_the_script_exits_1_on_a_cycle(tmp_path: Path, cycle: bool) -> None:
    """``python docs/hooks/import_graph.py`` fails when the package has a cycle."""
    files = {"__init__.py": "", "_a.py": "from . import _b\n", "_b.py": ""}
    if cycle:
        files["_b.py"] = "from . import _a\n"
    package = _write(tmp_path, files)
    assert (1 if cycle else 0) == graph_tools.main([str(package)])
