"""Contract: the layout shows the architecture.

Three packages, three audiences: `shared/bakery` is the library every function ships with (it imports neither the
tooling nor localcloud); `shared/bakery_tools` is the tooling (CLI, local runs, packaging, deploy; it may import
both); `localcloud` is the emulator and the local FC runtime (it imports neither). No module imports another that
imports it back, directly or around a loop (imports inside functions count; `if TYPE_CHECKING:` blocks do not).
No source file runs past ~500 lines without saying at its top why it is long.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"bakery": ROOT / "shared" / "bakery", "bakery_tools": ROOT / "shared" / "bakery_tools",
            "localcloud": ROOT / "localcloud"}  # fmt: skip
MAX_LINES = 550  # "~500": a file past this says why at its top
LONG_FILE_NOTE = "This file is long because"


def _modules() -> dict[str, Path]:
    found = {}
    for package, root in PACKAGES.items():
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join((package, *parts))
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(module: str, path: Path) -> set[str]:
    """Every project module `module` imports, at any depth of its code, except under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package_parts = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            if isinstance(child, ast.Import):
                names.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join([*package_parts[: len(package_parts) - child.level + 1], *filter(None, [base])])
                names.add(base)
                names.update(f"{base}.{alias.name}" for alias in child.names)
            visit(child)

    visit(tree)
    return {_owner(n) for n in names if _owner(n)} - {module}


def _owner(name: str) -> str | None:
    """The project module a dotted import name lands in (a module, or the package whose attribute it is)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def test_there_are_three_packages() -> None:
    for package, root in PACKAGES.items():
        assert (root / "__init__.py").is_file(), package


@pytest.mark.parametrize(("package", "forbidden"), [("bakery", ("bakery_tools", "localcloud")),
                                                     ("localcloud", ("bakery", "bakery_tools"))])  # fmt: skip
def test_a_package_imports_nothing_it_must_not(package: str, forbidden: tuple[str, ...]) -> None:
    offending = {
        module: sorted(i for i in imports if i.split(".")[0] in forbidden)
        for module, imports in GRAPH.items()
        if module.split(".")[0] == package
    }
    assert {m: i for m, i in offending.items() if i} == {}


def test_no_import_cycle_anywhere() -> None:
    # Tarjan's strongly connected components over every project module
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def strongconnect(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for other in GRAPH[node]:
            if other not in index:
                strongconnect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            strongconnect(module)
    assert cycles == []


def test_the_cycle_check_finds_a_cycle() -> None:
    # Given a two-module loop (the check must be able to fail)
    saved = dict(GRAPH)
    try:
        GRAPH["bakery.fake_a"], GRAPH["bakery.fake_b"] = {"bakery.fake_b"}, {"bakery.fake_a"}
        with pytest.raises(AssertionError):
            test_no_import_cycle_anywhere()
    finally:
        GRAPH.clear()
        GRAPH.update(saved)


@pytest.mark.parametrize("module", sorted(MODULES), ids=sorted(MODULES))
def test_a_long_source_file_says_why_at_its_top(module: str) -> None:
    text = MODULES[module].read_text(encoding="utf-8")
    if text.count("\n") > MAX_LINES:
        head = "\n".join(text.splitlines()[:40])
        assert LONG_FILE_NOTE in head, f"{MODULES[module]} has {text.count(chr(10))} lines: split it, or say why"
