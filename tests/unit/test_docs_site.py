"""The documentation site builds strictly, and its API pages show no reStructuredText.

The API pages are rendered from docstrings read as Markdown (Google style): an example
must be a fenced code block there, since reStructuredText's `text::` and its directives
reach the reader as stray characters. The build's own hook (scripts/docs_hooks.py) turns
such a marker into a warning, which `--strict` makes fatal; these tests build the site,
read the rendered API pages again, and check the docstrings at their source.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "aiomq"
_FENCED = re.compile(
    r"^(?P<fence>```+)(?P<info>[^\n`]*)\n(?P<code>.*?)^(?P=fence)\s*$", re.M | re.S
)
_LITERAL_MARKER = re.compile(r"::[ \t]*$", re.M)


def _load_hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "scripts" / "docs_hooks.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


stray_markup: Callable[[str], list[str]] = _load_hooks().stray_markup


def docstrings() -> Iterator[tuple[str, str]]:
    """Every docstring of aiomq (modules, classes, functions), with where it is."""
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        nodes: list[ast.AST] = [tree, *ast.walk(tree)]
        for node in nodes:
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node, clean=True)
                if doc:
                    line = getattr(node, "lineno", 1)
                    yield f"{path.relative_to(ROOT)}:{line}", doc


DOCSTRINGS = dict(docstrings())


@dataclass(frozen=True)
class Site:
    """The site, built into a fresh directory, and what the build logged."""

    path: Path
    warnings: list[str]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    # Built with --no-strict (mkdocs.yml asks for strict), so that a warning still leaves
    # pages for the checks below to read; test_the_site_builds_without_a_warning stands
    # for --strict.
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--no-strict", "--site-dir", str(out)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"mkdocs build failed:\n{result.stderr}"
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    return Site(out, warnings)


def test_the_docstrings_were_found() -> None:
    assert len(DOCSTRINGS) > 200
    assert any(where.startswith("aiomq/reader.py:") for where in DOCSTRINGS)


def test_no_docstring_uses_a_restructuredtext_literal_block() -> None:
    found = [
        f"{where}: {doc[max(0, m.start() - 60) : m.end()].splitlines()[-1]!r}"
        for where, doc in DOCSTRINGS.items()
        for m in _LITERAL_MARKER.finditer(_FENCED.sub("", doc))
    ]
    assert not found, (
        "docstrings that introduce an example with '::' (reStructuredText): write the "
        "example as a fenced ```python block instead\n" + "\n".join(found)
    )


def test_every_python_example_in_a_docstring_compiles() -> None:
    blocks = [
        (where, m["code"])
        for where, doc in DOCSTRINGS.items()
        for m in _FENCED.finditer(doc)
        if m["info"].strip() in ("python", "py")
    ]
    assert len(blocks) >= 10
    broken = []
    for where, code in blocks:
        try:
            compile(
                textwrap.dedent(code),
                where,
                "exec",
                flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
                dont_inherit=True,
            )
        except SyntaxError as exc:
            broken.append(f"{where}: {exc}")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize(
    ("rendered", "kind"),
    [
        ("<p>The Reader.</p>\n<p>::</p>", "a stray '::'"),
        ("<p>An example::</p>", "a stray '::'"),
        ("<p>.. note:: Mind the gap.</p>", "a reStructuredText directive"),
        ("<p>See :class:<code>Reader</code>.</p>", "a reStructuredText role"),
        ("<p>:param topic: the topic</p>", "a reStructuredText field list"),
    ],
)
def test_the_check_finds_each_kind_of_restructuredtext_marker(rendered: str, kind: str) -> None:
    found = stray_markup(rendered)
    assert len(found) == 1
    assert found[0].startswith(kind)


def test_the_check_leaves_code_alone() -> None:
    rendered = (
        '<p>Call <code>a::b</code>.</p><div class="highlight"><pre><span></span>'
        "<code>x = {'k': 1}  # ::\n.. note::\n</code></pre></div>"
    )
    assert stray_markup(rendered) == []


def test_the_site_builds_without_a_warning(site: Site) -> None:
    assert not site.warnings, "mkdocs build --strict would fail:\n" + "\n".join(site.warnings)


def test_the_site_has_a_page_for_each_api_module(site: Site) -> None:
    pages = {p.parent.name for p in (site.path / "api").glob("*/index.html")}
    assert {"reader", "writer", "testing", "errors", "otel"} <= pages
    assert (site.path / "getting-started" / "index.html").is_file()


def test_no_rendered_page_shows_restructuredtext_markup(site: Site) -> None:
    problems = []
    for page in sorted(site.path.rglob("*.html")):
        html = page.read_text(encoding="utf-8")
        start, end = html.find("<article"), html.rfind("</article>")
        if start < 0 or end < 0:
            continue  # the search page and the 404 page have no article
        problems += [f"{page.relative_to(site.path)}: {p}" for p in stray_markup(html[start:end])]
    assert not problems, "\n".join(problems)


def test_the_api_pages_render_the_module_examples_as_code(site: Site) -> None:
    reader = (site.path / "api" / "reader" / "index.html").read_text(encoding="utf-8")
    article = reader[reader.find("<article") : reader.rfind("</article>")]
    # The module docstring's example, highlighted as Python, not left as a paragraph.
    assert re.search(
        r'<div class="highlight"><pre><span></span><code><span class="k">async</span> '
        r'<span class="k">with</span> <span class="n">aiomq</span>',
        article,
    )
