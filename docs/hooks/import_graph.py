"""
The package's import graph, as a Mermaid picture: a mkdocs hook, and a script.

docs/architecture.md holds the marker ``<!-- import-graph -->``; at build time this hook
replaces it with a Mermaid ``graph`` computed from the source, so the picture cannot drift from
the code. ``python docs/hooks/import_graph.py [PACKAGE_DIR]`` prints the same Markdown, and
exits 1 if the modules import each other in a cycle. tests/test_architecture.py checks the
graph itself.

The nodes are the package's top-level modules (``__init__`` is the public facade), each
subpackage as a single node (``testing``, ``cli``), and each ``__main__.py`` as a node of its
own: an entry point is run, never imported, so it cannot close a cycle. An edge ``a --> b`` says
that ``a`` imports ``b`` when it runs (at module level or inside a function); ``a -.-> b``, that
``a`` imports ``b`` only for type checking (under ``if TYPE_CHECKING:``). Cycles are looked for
among the runtime edges, the ones that can fail at import time. Each node sits in a band: band 0
holds the leaves, which import no other module of the package; a module in band ``n`` imports
one in band ``n - 1`` and none higher, so the picture reads from the facade down to the leaves.

Only the standard library is used (``ast``): the code is read, never imported.
"""

from __future__ import annotations

import ast
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

PACKAGE: Final[str] = "typed_async_client"
SOURCE: Final[Path] = Path(__file__).resolve().parents[2] / "src" / PACKAGE
MARKER: Final[str] = "<!-- import-graph -->"
PAGE: Final[str] = "architecture.md"

_log = logging.getLogger(f"mkdocs.hooks.{__name__}")


@dataclass(frozen=True, slots=True)
class ImportGraph:
    """
    Which module of the package imports which.

    Attributes:
        nodes: the node names, sorted: ``_client``, ``__init__``, ``testing``,
            ``testing.__main__``...
        runtime: the ``(importer, imported)`` pairs imported when the code runs.
        typing: the pairs imported only for type checking (and not also at runtime).
    """

    nodes: tuple[str, ...]
    runtime: frozenset[tuple[str, str]]
    typing: frozenset[tuple[str, str]]


def build_graph(source: Path = SOURCE) -> ImportGraph:
    """
    Read every ``.py`` file under ``source``, a package's directory (its name is the package's),
    and link the modules by their imports.
    """
    files = _node_files(source)
    modules = {_module_name(source, path) for paths in files.values() for path in paths}
    runtime: set[tuple[str, str]] = set()
    typing: set[tuple[str, str]] = set()
    for node, paths in files.items():
        for path in paths:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            importer = _module_name(source, path)
            for choices, typing_only in _imports(tree, source.name, importer):
                found = (_node_of(name, modules, files) for name in choices)
                target = next((each for each in found if each is not None), None)
                if target is not None and target != node:
                    (typing if typing_only else runtime).add((node, target))
    return ImportGraph(
        nodes=tuple(sorted(files)),
        runtime=frozenset(runtime),
        typing=frozenset(typing - runtime),
    )


def find_cycles(graph: ImportGraph) -> list[list[str]]:
    """
    The groups of modules that import each other in a cycle, through runtime imports.

    Each group is a strongly connected component of more than one node, sorted; ``[]`` when the
    graph is acyclic.
    """
    return [sorted(group) for group in _components(graph) if len(group) > 1]


def bands(graph: ImportGraph) -> dict[str, int]:
    """
    Each node's band: 0 for a leaf, else one more than the highest band it imports at runtime.

    The modules of a cycle share one band, one above what the cycle imports.
    """
    component_of: dict[str, int] = {}
    groups = _components(graph)
    for index, group in enumerate(groups):
        for node in group:
            component_of[node] = index
    band: dict[int, int] = {}
    # Tarjan's algorithm yields a component after every component it reaches, so each band
    # is computed after those of the components below it.
    for index, group in enumerate(groups):
        below = [
            band[component_of[imported]]
            for importer, imported in graph.runtime
            if importer in group and component_of[imported] != index
        ]
        band[index] = 1 + max(below) if below else 0
    return {node: band[component_of[node]] for node in graph.nodes}


def mermaid(graph: ImportGraph) -> str:
    """The graph as the body of a Mermaid ``graph TD``: a subgraph per band, highest first."""
    ids = {node: f"m{index}" for index, node in enumerate(graph.nodes)}
    band_of = bands(graph)
    lines = ["graph TD"]
    for band in sorted(set(band_of.values()), reverse=True):
        title = "leaves: import no other module" if band == 0 else f"band {band}"
        lines.append(f'    subgraph band{band} ["{title}"]')
        lines.extend(
            f'        {ids[node]}["{node}"]' for node in graph.nodes if band_of[node] == band
        )
        lines.append("    end")
    for arrow, edges in (("-->", graph.runtime), ("-.->", graph.typing)):
        lines.extend(f"    {ids[a]} {arrow} {ids[b]}" for a, b in sorted(edges))
    return "\n".join(lines)


def markdown(graph: ImportGraph) -> str:
    """The Markdown that replaces the marker: the Mermaid fence, and the cycles if any."""
    text = f"```mermaid\n{mermaid(graph)}\n```\n"
    cycles = find_cycles(graph)
    if cycles:
        listed = "\n".join(f"* {' <-> '.join(cycle)}" for cycle in cycles)
        text += f'\n!!! warning "Import cycles"\n\n{_indent(listed)}\n'
    return text


def on_page_markdown(markdown_text: str, *, page: Any, **kwargs: Any) -> str:
    """mkdocs hook: put the import graph of the current source in place of the marker."""
    if page.file.src_uri != PAGE:
        return markdown_text
    if MARKER not in markdown_text:
        _log.warning("%s lost its %s marker: the import graph has nowhere to go", PAGE, MARKER)
        return markdown_text
    graph = build_graph()
    for cycle in find_cycles(graph):
        # A warning, so that `mkdocs build --strict` fails on a cycle.
        _log.warning("import cycle between %s", ", ".join(cycle))
    return markdown_text.replace(MARKER, markdown(graph))


def _node_files(source: Path) -> dict[str, list[Path]]:
    """Each node and its files: a module, a subpackage's files, or a ``__main__.py``."""
    files: dict[str, list[Path]] = {path.stem: [path] for path in source.glob("*.py")}
    for package in sorted(source.iterdir()):
        if not (package / "__init__.py").is_file():
            continue
        for path in sorted(package.rglob("*.py")):
            if path.name == "__main__.py":
                node = _module_name(source, path)
                files[node] = [path]
            else:
                files.setdefault(package.name, []).append(path)
    return files


def _module_name(source: Path, path: Path) -> str:
    """The dotted name of ``path`` inside the package: ``_client``, ``testing._server``..."""
    parts = path.relative_to(source).with_suffix("").parts
    return ".".join(parts)


def _node_of(module: str, modules: set[str], files: dict[str, list[Path]]) -> str | None:
    """The node that holds ``module`` (a dotted name inside the package), if it is one."""
    if module == "":
        return "__init__"
    if module in files:
        return module
    head = module.split(".")[0]
    return head if head in files and module in modules else None


def _imports(
    tree: ast.Module, package: str, importer: str
) -> Iterator[tuple[tuple[str, ...], bool]]:
    """
    What ``tree`` imports from ``package``, each with whether it is for type checking only.

    An import comes as the dotted names inside the package (``""``: the package itself) that
    it may be, most precise first: ``from . import _checks`` imports the module ``_checks``,
    while ``from . import Name`` imports a name of the package, so ``("_checks", "")``.
    """
    # The package that relative imports start from: ``importer`` is a module's dotted name
    # (``_client``, ``testing._server``), or a package's with its ``__init__``.
    anchor = [package, *importer.split(".")][:-1]
    for node, typing_only in _walk(tree, typing_only=False):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _inside(package, [alias.name.split(".")], typing_only)
        elif isinstance(node, ast.ImportFrom):
            base = anchor[: len(anchor) - node.level + 1] if node.level else []
            target = base + (node.module.split(".") if node.module else [])
            for alias in node.names:
                yield from _inside(package, [[*target, alias.name], target], typing_only)


def _inside(
    package: str, choices: list[list[str]], typing_only: bool
) -> Iterator[tuple[tuple[str, ...], bool]]:
    """The choices (full names, as parts) as names inside ``package``, if they are inside."""
    inside = tuple(".".join(parts[1:]) for parts in choices if parts and parts[0] == package)
    if inside:
        yield inside, typing_only


def _walk(node: ast.AST, *, typing_only: bool) -> Iterator[tuple[ast.AST, bool]]:
    """Every node under ``node``, with whether it sits in the body of ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        yield child, typing_only
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for statement in child.body:
                yield statement, True
                yield from _walk(statement, typing_only=True)
            for statement in child.orelse:
                yield statement, typing_only
                yield from _walk(statement, typing_only=typing_only)
        else:
            yield from _walk(child, typing_only=typing_only)


def _is_type_checking(test: ast.expr) -> bool:
    """Whether ``test`` is ``TYPE_CHECKING`` or ``typing.TYPE_CHECKING``."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _components(graph: ImportGraph) -> list[list[str]]:
    """Tarjan's strongly connected components of the runtime edges, imported ones first."""
    successors: dict[str, list[str]] = {node: [] for node in graph.nodes}
    for importer, imported in sorted(graph.runtime):
        successors[importer].append(imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in successors[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            group: list[str] = []
            while not group or group[-1] != node:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            found.append(group)

    for node in graph.nodes:
        if node not in index:
            visit(node)
    return found


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())


def main(argv: Sequence[str]) -> int:
    """
    Print the Markdown of the import graph of the package at ``argv[0]`` (default: this
    repository's); return 1 if it has a cycle.
    """
    graph = build_graph(Path(argv[0]) if argv else SOURCE)
    print(markdown(graph), end="")
    return 1 if find_cycles(graph) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
