"""The public export list is complete, sorted and resolvable."""

from __future__ import annotations

import importlib
import pkgutil

import aiomq

# Modules whose public names are re-exported at the top level.
_REEXPORTED = [
    "aiomq.admin",
    "aiomq.balancer",
    "aiomq.cluster",
    "aiomq.dialer",
    "aiomq.errors",
    "aiomq.group",
    "aiomq.message",
    "aiomq.processing",
    "aiomq.reader",
    "aiomq.stats",
    "aiomq.transform",
    "aiomq.writer",
]


def test_export_list_is_sorted_and_has_no_duplicates() -> None:
    assert aiomq.__all__ == sorted(set(aiomq.__all__))


def test_every_exported_name_resolves() -> None:
    for name in aiomq.__all__:
        assert hasattr(aiomq, name), name


def test_every_public_name_of_the_public_modules_is_exported() -> None:
    for module_name in _REEXPORTED:
        module = importlib.import_module(module_name)
        missing = set(module.__all__) - set(aiomq.__all__)
        assert not missing, f"{module_name} defines {sorted(missing)} but aiomq does not export it"


def test_every_public_module_is_listed_or_deliberately_separate() -> None:
    separate = {
        "aiomq.cli",
        "aiomq.testing",
        "aiomq.pytest_plugin",
        "aiomq.otel",
        "aiomq.prometheus",
    }
    public = {
        info.name
        for info in pkgutil.iter_modules(aiomq.__path__, "aiomq.")
        if not info.name.rsplit(".", 1)[1].startswith("_")
    }
    assert public <= set(_REEXPORTED) | separate, public - set(_REEXPORTED) - separate


def test_version_comes_from_the_installed_metadata() -> None:
    from importlib.metadata import version

    assert aiomq.__version__ == version("aiomq")
