"""Where things live: the command line stands on the public API, the admin machinery
below `aiomq.admin` never imports it back, and the admin result types are a leaf."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "aiomq"

LEAVES = {"aiomq.message", "aiomq.errors", "aiomq.stats", "aiomq.dialer"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, type-only and function-level imports included.

    `from aiomq import admin` counts as importing both `aiomq` and the module `aiomq.admin`.
    """
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(
                f"{base}.{alias.name}" for alias in node.names if is_module(f"{base}.{alias.name}")
            )
    return found


def is_module(name: str) -> bool:
    """Whether `name` is one of aiomq's modules or packages (not a name inside one)."""
    path = ROOT.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def modules_under(*parts: str) -> list[Path]:
    paths = sorted(ROOT.joinpath(*parts).rglob("*.py"))
    assert paths, f"nothing under {'/'.join(parts)}"
    return paths


def is_within(target: str, module: str) -> bool:
    return target == module or target.startswith(module + ".")


def test_the_command_line_imports_only_the_public_api() -> None:
    offending = {
        f"{module_name(path)} imports {target}"
        for path in modules_under("_cli")
        for target in imports_of(path)
        if is_within(target, "aiomq._internal")
    }
    assert not offending, sorted(offending)


def test_the_admin_machinery_never_imports_the_admin_module() -> None:
    offending = {
        f"{module_name(path)} imports {target}"
        for path in modules_under("_internal", "admin")
        for target in imports_of(path)
        if is_within(target, "aiomq.admin")
    }
    assert not offending, sorted(offending)


def test_the_admin_result_types_import_only_leaf_modules() -> None:
    # aiomq._internal.config holds the topic-name check; it imports only leaves itself.
    for path, allowed in (
        (ROOT / "cluster.py", LEAVES | {"aiomq._internal.config"}),
        (ROOT / "_internal" / "config.py", LEAVES),
    ):
        others = {t for t in imports_of(path) if is_within(t, "aiomq")} - allowed
        assert not others, f"{module_name(path)} imports {sorted(others)}"


def test_the_import_reader_sees_modules_and_not_the_names_inside_them() -> None:
    found = imports_of(ROOT / "admin.py")
    assert {"aiomq._internal.admin", "aiomq._internal.admin.groups", "aiomq.cluster"} <= found
    assert "aiomq.cluster.TopicSpec" not in found
    assert module_name(ROOT / "_cli" / "__init__.py") == "aiomq._cli"
