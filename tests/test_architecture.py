"""The house plan, enforced: each layer imports only the layers below it (docs/architecture.md).

Imports made only for type checking (under `if TYPE_CHECKING:`) are not arrows: they run nowhere.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "nurture"

# Lowest first. A module may import its own layer and any layer before it in this list, never one after.
LAYERS: list[tuple[str, ...]] = [
    ("rules",),
    ("config",),
    ("content", "store"),  # side by side: neither imports the other
    ("people",),
    ("delivery",),
    ("insight",),
    ("runtime", "jobs"),  # the wiring: builds the runtime every process passes around, and the RQ entry points
    ("web",),
    ("cli",),  # `nurture dev` serves the web app
]
SIDE_BY_SIDE = {("content", "store"), ("store", "content")}


def layer_of(module: str) -> str:
    parts = module.split(".")
    assert parts[0] == "nurture", module
    return parts[1] if len(parts) > 1 else ""


def rank(layer: str) -> int:
    for index, names in enumerate(LAYERS):
        if layer in names:
            return index
    raise AssertionError(f"nurture.{layer} belongs to no layer: add it to LAYERS and docs/architecture.md")


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def runtime_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import of a nurture module that runs, at the top or inside a function."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names if alias.name.startswith("nurture"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parents = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parents + ([base] if base else []))
            if base == "nurture":  # from nurture import x: x is the module imported
                found.extend((node.lineno, f"nurture.{alias.name}") for alias in node.names)
            elif base.startswith("nurture."):
                found.append((node.lineno, base))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def arrows() -> list[tuple[str, int, str, str]]:
    """(file, line, from layer, to layer) for every import between two different layers."""
    result = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        here = layer_of(module_name(path))
        for line, target in runtime_imports(path):
            there = layer_of(target)
            if there and there != here:
                result.append((str(path.relative_to(PACKAGE.parent)), line, here, there))
    return result


def test_every_module_belongs_to_a_layer() -> None:
    for path in PACKAGE.rglob("*.py"):
        if path.parent == PACKAGE and path.name == "__init__.py":
            continue
        rank(layer_of(module_name(path)))


def test_no_import_runs_back_up_the_layers() -> None:
    upward = [f"{file}:{line}: nurture.{here} imports nurture.{there}"
              for file, line, here, there in arrows()
              if rank(there) > rank(here) or (rank(there) == rank(here) and (here, there) in SIDE_BY_SIDE)]
    assert upward == [], "imports that run back up (see docs/architecture.md):\n" + "\n".join(upward)


def test_the_rules_import_no_io() -> None:
    """The pure layer: no database, web, queue, templates or SMS provider, and no clock."""
    forbidden = ("flask", "rq", "redis", "sqlalchemy", "sqlmodel", "jinja2", "twilio", "smtplib", "requests")
    for path in (PACKAGE / "rules").rglob("*.py"):
        source = path.read_text()
        tree = ast.parse(source)
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"
        assert "datetime.now(" not in source and "time.time(" not in source, f"{path.name} reads the clock"


@pytest.mark.parametrize("layer", ["rules", "content", "store", "people", "delivery", "insight"])
def test_no_module_imports_itself_in_a_circle(layer: str) -> None:
    graph: dict[str, set[str]] = {}
    for path in (PACKAGE / layer).rglob("*.py"):
        name = module_name(path)
        graph[name] = {t for _, t in runtime_imports(path) if t.startswith(f"nurture.{layer}.") and t != name}

    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        todo = list(graph.get(start, ()))
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo.extend(graph.get(node, ()))
        return seen

    circles = sorted(name for name in graph if name in reach(name))
    assert circles == [], f"modules in an import circle: {circles}"


SQL_BUILDERS = {"select", "update", "insert", "delete", "func", "text", "case"}
# Modules outside nurture/store that still build their own SQL (issue 14, "store behind one door"): take a
# name off when its queries have moved, and add none.
STILL_BUILDING_SQL: set[str] = set()


def sql_builders_imported(path: Path) -> list[str]:
    """`name (line)` for every SQL builder (select, update ...) a module imports from sqlalchemy or
    sqlmodel, and for a plain `import sqlalchemy` / `import sqlmodel` (which would reach them all)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("sqlalchemy", "sqlmodel"):
            found += [f"{a.name} (line {node.lineno})" for a in node.names if a.name in SQL_BUILDERS]
        elif isinstance(node, ast.Import):
            found += [f"{a.name} (line {node.lineno})" for a in node.names if a.name in ("sqlalchemy", "sqlmodel")]
    return found


def test_sql_is_built_in_the_store_layer_only() -> None:
    """Views, commands and feature modules reach the database through named functions of nurture/store."""
    building = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = str(path.relative_to(PACKAGE.parent))
        if relative.startswith("nurture/store/"):
            continue
        if imported := sql_builders_imported(path):
            building[relative] = imported
    outside = {name: imported for name, imported in building.items() if name not in STILL_BUILDING_SQL}
    assert outside == {}, "SQL built outside nurture/store (add a named function to a store module):\n" + \
        "\n".join(f"{name}: {', '.join(imported)}" for name, imported in outside.items())
    moved = sorted(STILL_BUILDING_SQL - set(building))
    assert moved == [], f"these modules no longer build SQL: take them off STILL_BUILDING_SQL: {moved}"
