"""The layers of aiomq, checked on its import graph.

- Public modules may import `aiomq._internal`; `_internal` imports only the small public
  leaf modules (message, errors, stats, dialer, cluster), never a module that would
  import it back. Type-only imports count: a cycle for the type checker is a cycle for a
  reader of the code.
- The command line, `aiomq._cli`, is built on the public API only.
- Only the seam, `aiomq._internal.kafka`, imports aiokafka's private modules or touches its
  objects' private attributes; everything else uses aiokafka's public API or the seam.
- No import cycles between aiomq's modules.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "aiomq"

LEAVES = {"aiomq.message", "aiomq.errors", "aiomq.stats", "aiomq.dialer", "aiomq.cluster"}
"""Public modules that `_internal` may import: they import nothing that imports them back."""

SEAM = "aiomq._internal.kafka"

AIOKAFKA_PUBLIC = {
    "aiokafka",
    "aiokafka.abc",
    "aiokafka.admin",
    "aiokafka.errors",
    "aiokafka.helpers",
    "aiokafka.structs",
}
"""aiokafka's documented modules; every other one is private to it."""

PRIVATE_ATTRIBUTES = re.compile(
    r"\.(_client|_coordinator|_subscription|_fetcher|_coordination_task|_fetch_task"
    r"|_heartbeat_task|_commit_refresh_task|_reset_committed_task|_conns|_sync_task"
    r"|_pending_tasks)\b"
)
"""Private attributes of aiokafka's consumer, client and coordinator that aiomq reads."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def imports_of(name: str) -> Iterator[str]:
    """Every module `name` imports, type-only and function-level imports included."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            for alias in node.names:
                # `from aiomq import errors` imports the module aiomq.errors.
                if f"{base}.{alias.name}" in MODULES:
                    yield f"{base}.{alias.name}"


def aiomq_imports(name: str) -> set[str]:
    return {
        target
        for target in imports_of(name)
        if target in MODULES and target != name and target != "aiomq"
    }


def test_the_graph_is_read() -> None:
    assert "aiomq.reader" in MODULES
    assert "aiomq._internal.consumer.state" in aiomq_imports("aiomq.reader")


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("aiomq._internal")))
def test_internal_modules_import_only_internal_and_leaf_modules(name: str) -> None:
    public = {
        target
        for target in aiomq_imports(name)
        if not target.startswith("aiomq._internal") and target not in LEAVES
    }
    assert not public, f"{name} imports public modules {sorted(public)}"
    assert "aiomq" not in set(imports_of(name)), f"{name} imports the aiomq package"


@pytest.mark.parametrize("name", sorted(LEAVES & MODULES.keys()))
def test_leaf_modules_import_no_other_public_module(name: str) -> None:
    others = {t for t in aiomq_imports(name) if t not in LEAVES and not t.startswith("aiomq._")}
    assert not others, f"{name} is a leaf but imports {sorted(others)}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("aiomq._cli")))
def test_the_command_line_imports_only_the_public_api(name: str) -> None:
    internal = {t for t in imports_of(name) if t.startswith("aiomq._internal")}
    assert not internal, f"{name} imports {sorted(internal)}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not n.startswith(SEAM)))
def test_only_the_seam_names_aiokafka_internals(name: str) -> None:
    private = {
        target
        for target in imports_of(name)
        if target.split(".")[0] == "aiokafka" and target not in AIOKAFKA_PUBLIC
    }
    assert not private, f"{name} imports aiokafka's private modules {sorted(private)}"
    touched = sorted(set(PRIVATE_ATTRIBUTES.findall(MODULES[name].read_text())))
    assert not touched, f"{name} reads aiokafka's private attributes {touched}"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """Return one import cycle of `graph` (first module repeated last), or None."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> list[str] | None:
        if name in done:
            return None
        if name in visiting:
            return [*visiting[visiting.index(name) :], name]
        visiting.append(name)
        for target in sorted(graph.get(name, ())):
            # A package's own __init__ importing its submodules is how packages work.
            if not target.startswith(name + ".") and (cycle := visit(target)):
                return cycle
        visiting.pop()
        done.add(name)
        return None

    for name in sorted(graph):
        if cycle := visit(name):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle_and_ignores_a_package_importing_its_modules() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"p": {"p.m"}, "p.m": {"x"}, "x": set()}) is None


def test_there_is_no_import_cycle() -> None:
    cycle = find_cycle({name: aiomq_imports(name) for name in MODULES})
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_import_reader_sees_modules_and_not_the_names_inside_them() -> None:
    found = set(imports_of("aiomq.admin"))
    assert {"aiomq._internal.admin", "aiomq._internal.admin.groups", "aiomq.cluster"} <= found
    assert "aiomq.cluster.TopicSpec" not in found
    assert module_name(ROOT / "_cli" / "__init__.py") == "aiomq._cli"
