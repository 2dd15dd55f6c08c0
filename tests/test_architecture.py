"""The house rules (STYLE.md, README "Layout"): no import cycles, no evals in the product, imports run one
way through the layers, and the public surface is explicit.

Every ``import`` in a file counts: at module level, under ``if TYPE_CHECKING:`` and inside functions.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType

import rag

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("rag", "connectors")
LAYERS = ("foundation", "config", "part", "pipeline", "facade", "top")
# Where each module sits; a module belongs to its longest listed prefix (``rag`` itself is only the package).
PLACES = {
    "rag.types": "foundation", "rag.errors": "foundation", "rag.centering": "foundation", "rag.words": "foundation",
    "rag.reference": "foundation",
    "rag.config": "config", "rag.plugins": "config",
    "rag.lang": "part", "rag.chunk": "part", "rag.encoders": "part", "rag.store": "part",
    "rag.search": "part", "rag.search.fusion": "part", "rag.search.rerankers": "part", "rag.answer": "part",
    "connectors": "part",
    "rag.ingest": "pipeline", "rag.search.retriever": "pipeline", "rag.answer.loop": "pipeline",
    "rag.answer.conversation": "pipeline", "rag.build": "pipeline", "rag.builtins": "pipeline",
    "rag.rosetta": "facade",
    "rag.cli": "top", "rag.llamaindex_retriever": "top", "rag.serve": "top", "rag.__main__": "top",
    "rag.ray_ingest": "top",
}
# A part imports the layers below it and its own package only; these are the exceptions, with their reason.
PART_EXEMPT = {
    # ColBERT reranking is BGE-M3's own late interaction (the same model and heads).
    ("rag.search.rerankers.colbert", "rag.encoders.bge_m3"),
    # The cross-encoder shares BGE-M3's one check for the missing optional packages.
    ("rag.search.rerankers.cross_encoder", "rag.encoders.bge_m3"),
}
# The one place the product reaches into evals/: the CLI's `eval` and `bench` commands import them when run.
EVALS_EXEMPT = {"rag.cli.app": {"evals.cli", "evals.bench_ingest"}}


@dataclass(frozen=True, slots=True)
class Import:
    """One imported module, and whether the import runs only when a function is called."""

    name: str
    lazy: bool


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _files() -> dict[str, Path]:
    return {_module_name(p): p for package in PRODUCT for p in sorted((ROOT / package).rglob("*.py"))}


def _base(module: str, path: Path, level: int) -> str:
    """The package a relative import of ``level`` dots starts from."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return package.rsplit(".", level - 1)[0] if level > 1 else package


def _names(node: ast.Import | ast.ImportFrom, module: str, path: Path) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = _base(module, path, node.level) if node.level else ""
    source = ".".join(part for part in (base, node.module or "") if part)
    # ``from rag.answer import types`` imports the submodule; ``from rag.store import PgStore`` the package.
    return [f"{source}.{alias.name}" if f"{source}.{alias.name}" in _files() else source for alias in node.names]


def _walk(node: ast.AST, lazy: bool, module: str, path: Path) -> list[Import]:
    found: list[Import] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            found += [Import(name, lazy) for name in _names(child, module, path)]
        inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        found += _walk(child, inner, module, path)
    return found


@cache
def _imports(module: str) -> tuple[Import, ...]:
    path = _files()[module]
    return tuple(_walk(ast.parse(path.read_text()), False, module, path))


def _ours(name: str) -> str | None:
    """The product module an imported name resolves to (its longest known prefix), or None."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in _files():
            return ".".join(parts[:end])
    return None


def _graph() -> dict[str, set[str]]:
    return {m: {t for i in _imports(m) if (t := _ours(i.name)) is not None and t != m} for m in _files()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = [stack.pop()]
            while component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def _layer(module: str) -> str:
    if module == "rag":
        return "top"
    owners = [p for p in PLACES if module == p or module.startswith(p + ".")]
    assert owners, f"{module} is in no layer; add it to PLACES in tests/test_architecture.py"
    return PLACES[max(owners, key=len)]


def _group(module: str) -> str:
    parts = module.split(".")
    return parts[0] if parts[0] == "connectors" else ".".join(parts[:2])


def _may_import(module: str, target: str) -> bool:
    mine, theirs = LAYERS.index(_layer(module)), LAYERS.index(_layer(target))
    if module.startswith("connectors"):
        # Connectors only produce the vocabulary: Documents, and ConnectorError when they cannot.
        return _layer(target) == "foundation" or target.startswith("connectors")
    if theirs < mine:
        return True
    if theirs > mine:
        return False
    return _layer(module) != "part" or _group(module) == _group(target) or (module, target) in PART_EXEMPT


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_nothing_in_the_product_imports_evals_but_the_cli_commands_that_run_them() -> None:
    eager = {m: sorted(i.name for i in _imports(m) if i.name.startswith("evals") and not i.lazy) for m in _files()}
    lazy = {m: {i.name for i in _imports(m) if i.name.startswith("evals") and i.lazy} for m in _files()}
    assert {m: names for m, names in eager.items() if names} == {}
    assert {m: names for m, names in lazy.items() if names} == EVALS_EXEMPT


def test_imports_run_one_way_through_the_layers() -> None:
    graph = _graph()
    broken = {m: sorted(t for t in targets if not _may_import(m, t)) for m, targets in graph.items()}
    assert {m: targets for m, targets in broken.items() if targets} == {}
    assert {pair for pair in PART_EXEMPT if pair[1] in graph[pair[0]]} == PART_EXEMPT  # no stale exemptions


def test_public_surface_is_explicit_and_sorted() -> None:
    assert rag.__all__ == sorted(rag.__all__)
    # Submodules show up as attributes once imported; they are not part of the surface.
    public = {name for name, value in vars(rag).items() if not name.startswith("_") and not isinstance(value, ModuleType)}
    assert public == set(rag.__all__)
