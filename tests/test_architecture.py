"""The dependency arrows of STYLE.md, and the public surface."""

from __future__ import annotations

import ast
from pathlib import Path
from types import ModuleType

import rag

ROOT = Path(__file__).resolve().parent.parent
FOUNDATION = {"rag.types", "rag.errors", "rag.dialogue", "rag.answers"}
# Parts build on the foundation only; a part may use the modules of its own group.
PART_GROUPS = {
    "rag.lang": {"rag.lang"},
    "rag.chunk": {"rag.chunk"},
    "rag.database": {"rag.database"},
    "rag.store": {"rag.store", "rag.schema", "rag.query"},
    "rag.query": {"rag.query"},
    "rag.schema": {"rag.schema"},
    "rag.prompting": {"rag.prompting"},
    "rag.cite": {"rag.cite"},
}
ABOVE_PARTS = {"rag.ingest", "rag.retrieve", "rag.agent", "rag.render", "rag.render_answer", "rag.cli", "rag",
               "rag.ask", "rag.session", "rag.parts", "rag.llamaindex", "rag.chat",
               "rag.chat_commands", "rag.chat_screen", "rag.render_chat", "rag.export"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name == "rag" or name.startswith(("rag.", "connectors"))}


def _modules(package: str) -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted((ROOT / package).rglob("*.py"))}


def _allowed(module: str) -> set[str] | None:
    if module in FOUNDATION:
        # The vocabulary stacks: types (and errors) alone, then dialogue on types, then answers on both.
        return {"rag.dialogue": {"rag.types"}, "rag.answers": {"rag.types", "rag.dialogue"}}.get(module, set())
    if module == "rag.config":
        return FOUNDATION
    if module.startswith("rag.rerankers"):
        # The ColBERT reranker is BGE-M3's own late interaction, so it may build on that encoder.
        return FOUNDATION | {m for m in _modules("rag") if m.startswith("rag.rerankers")} | {"rag.encoders.bge_m3"}
    if module.startswith("rag.generators"):
        # The extractive generator's frame in the user's language is a prompt template.
        return FOUNDATION | {m for m in _modules("rag") if m.startswith("rag.generators")} | {"rag.prompting"}
    if module.startswith("rag.encoders"):
        return FOUNDATION | {m for m in _modules("rag") if m.startswith("rag.encoders")}
    if module in PART_GROUPS:
        return FOUNDATION | PART_GROUPS[module]
    return None


def test_parts_import_only_the_foundation_and_their_own_group() -> None:
    broken = {}
    for module, imports in _modules("rag").items():
        allowed = _allowed(module)
        if allowed is None:
            assert module in ABOVE_PARTS, f"{module} is in no layer; add it to tests/test_architecture.py"
            continue
        if imports - allowed - {module}:
            broken[module] = sorted(imports - allowed - {module})
    assert broken == {}


def test_connectors_depend_only_on_the_vocabulary() -> None:
    broken = {m: sorted(i - FOUNDATION - {"connectors"} - {x for x in i if x.startswith("connectors")})
              for m, i in _modules("connectors").items()}
    assert {m: v for m, v in broken.items() if v} == {}


def test_nothing_below_the_cli_imports_it_and_nothing_below_agent_imports_config_users() -> None:
    rendering = {m for m in _modules("rag") if m.startswith("rag.render")}
    importers = {m for m, i in _modules("rag").items() if "rag.cli" in i or i & rendering} - rendering
    assert importers <= {"rag.cli", "rag.chat", "rag.chat_screen", "rag.export"}


def test_public_surface_is_explicit_and_sorted() -> None:
    assert rag.__all__ == sorted(rag.__all__)
    # Submodules show up as attributes once imported; they are not part of the surface.
    public = {name for name, value in vars(rag).items() if not name.startswith("_") and not isinstance(value, ModuleType)}
    assert public == set(rag.__all__)
