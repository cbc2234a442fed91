"""The code on the documentation site and in README.md runs, or at least compiles, and
their links resolve.

The pages are README.md and every Markdown file under docs/ (the site's sources). Complete
programs (```python blocks that call `asyncio.run(`) run against the test broker, which
they find in AIOMQ_BOOTSTRAP_SERVERS. Every other ```python block is a snippet that must
still compile, top-level `await` allowed. Relative links must name an existing file, and
their `#anchor` a heading of that file, slugged as GitHub does (the site's mkdocs.yml makes
its anchors the same way, so one link works in both places). Docstrings, which make the
API pages, are checked in tests/unit/test_docs_site.py.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pymdownx.slugs
import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MARKDOWN = [README, *sorted(DOCS.rglob("*.md"))]

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_ATX_HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t]+(?P<text>.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(?:=+|-+)[ \t]*$")
_HTML_ANCHOR = re.compile(r"""<a\s[^>]*\b(?:id|name)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_INLINE_LINK = re.compile(
    r"""!?\[(?P<text>[^\]]*)\]\(\s*(?P<target><[^>]*>|[^)\s]*)(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)"""
)
_REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(?P<target><[^>]*>|\S+)")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


@dataclass(frozen=True)
class CodeBlock:
    """One fenced code block of a markdown file."""

    path: Path
    line: int
    """The 1-based line of the opening fence."""
    language: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


@dataclass(frozen=True)
class Link:
    """One link of a markdown file."""

    path: Path
    line: int
    target: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}: ({self.target})"


def code_blocks(path: Path) -> list[CodeBlock]:
    """Every fenced code block of a markdown file, in order."""
    blocks: list[CodeBlock] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None or len(opening["indent"]) > 3:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            closing = _FENCE.match(lines[j])
            if (
                closing is not None
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"].strip()
            ):
                break
            line = lines[j]
            body.append(line[min(indent, len(line) - len(line.lstrip(" "))) :])
            j += 1
        words = opening["info"].split()
        language = words[0].lower() if words else ""
        blocks.append(CodeBlock(path, i + 1, language, "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """The numbered lines of a markdown file outside fenced code blocks."""
    lines = path.read_text(encoding="utf-8").splitlines()
    in_code = {
        n
        for block in code_blocks(path)
        for n in range(block.line, block.line + block.code.count("\n") + 2)
    }
    return [(n, line) for n, line in enumerate(lines, start=1) if n not in in_code]


def links(path: Path) -> list[Link]:
    """Every inline link, image and reference definition outside code."""
    found: list[Link] = []
    for n, line in prose_lines(path):
        # A link written inside `code` is text, not a link.
        text = _CODE_SPAN.sub(lambda m: " " * len(m[0]), line)
        targets = [m["target"] for m in _INLINE_LINK.finditer(text)]
        definition = _REFERENCE_DEFINITION.match(text)
        if definition is not None:
            targets.append(definition["target"])
        found += [Link(path, n, target.strip("<>")) for target in targets]
    return found


def relative_links(path: Path) -> list[Link]:
    """The links of a markdown file that point inside the repository."""
    return [link for link in links(path) if not _SCHEME.match(link.target)]


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lowercase, punctuation dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text stays
    text = re.sub(r"<[^>]+>", "", text)  # HTML tags go
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a link may name in a markdown file: headings and HTML ids."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    previous = ""
    for _, line in prose_lines(path):
        found.update(_HTML_ANCHOR.findall(line))
        heading: str | None = None
        atx = _ATX_HEADING.match(line)
        if atx is not None:
            heading = atx["text"] or ""
        elif _SETEXT_UNDERLINE.match(line) and previous.strip() and "|" not in previous:
            heading = previous
        previous = line
        if heading is None:
            continue
        slug = github_slug(heading)
        # GitHub numbers repeated headings: intro, intro-1, intro-2, ...
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def resolve(link: Link) -> tuple[Path, str]:
    """The file a relative link points to, and its anchor ("" when it has none)."""
    target, _, anchor = link.target.partition("#")
    path = link.path if not target else (link.path.parent / unquote(target)).resolve()
    return path, unquote(anchor)


PYTHON_BLOCKS = [
    block
    for path in MARKDOWN
    for block in code_blocks(path)
    if block.language in ("python", "py", "python3")
]
PROGRAMS = [b for b in PYTHON_BLOCKS if "asyncio.run(" in b.code]


def test_the_site_has_complete_programs_to_run() -> None:
    where = {b.path.relative_to(ROOT).as_posix() for b in PROGRAMS}
    # The first program a reader meets, and the embedded broker's own, must run.
    assert {"docs/getting-started.md", "docs/testing.md"} <= where, (
        "no complete program (a ```python block calling asyncio.run(...)) in "
        + ", ".join(sorted({"docs/getting-started.md", "docs/testing.md"} - where))
        + ": nothing there is run against a broker"
    )


@pytest.mark.parametrize("block", PROGRAMS, ids=[b.where for b in PROGRAMS])
def test_a_complete_program_on_the_site_runs_against_the_broker(
    block: CodeBlock, bootstrap_servers: str, tmp_path: Path
) -> None:
    program = tmp_path / f"{block.path.stem}_line_{block.line}.py"
    program.write_text(block.code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(program)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "AIOMQ_BOOTSTRAP_SERVERS": bootstrap_servers},
        check=False,
    )
    assert result.returncode == 0, (
        f"the program at {block.where} exited with {result.returncode}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[b.where for b in PYTHON_BLOCKS])
def test_every_python_block_on_the_site_compiles(block: CodeBlock) -> None:
    try:
        compile(
            block.code,
            block.where,
            "exec",
            flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
            dont_inherit=True,
        )
    except SyntaxError as exc:
        pytest.fail(f"the python block at {block.where} does not compile: {exc}")


@pytest.mark.parametrize("path", MARKDOWN, ids=[str(p.relative_to(ROOT)) for p in MARKDOWN])
def test_every_relative_link_points_to_an_existing_file(path: Path) -> None:
    broken = [
        f"{link.where}: no such file {target}"
        for link in relative_links(path)
        if not (target := resolve(link)[0]).exists()
    ]
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("path", MARKDOWN, ids=[str(p.relative_to(ROOT)) for p in MARKDOWN])
def test_every_anchor_of_a_relative_link_names_a_heading_of_its_target(path: Path) -> None:
    broken = []
    for link in relative_links(path):
        target, anchor = resolve(link)
        # Anchors of other files (such as GitHub's #L10 line anchors) are not checked.
        if anchor and target.suffix == ".md" and target.is_file():
            known = anchors(target)
            if anchor not in known:
                broken.append(f"{link.where}: no heading #{anchor} (has {sorted(known)})")
    assert not broken, "\n".join(broken)


def test_the_parser_finds_the_pages_code_blocks_links_and_headings() -> None:
    # Guards the checks above against passing because the parser found nothing.
    assert len(PYTHON_BLOCKS) >= 30
    assert any(link.target == "examples/quickstart.py" for link in relative_links(README))
    assert any(link.target == "docs/getting-started.md" for link in relative_links(README))
    assert not any(link.target.startswith("https:") for link in relative_links(README))
    assert {"quickstart", "working-on-aiomq"} <= anchors(README)
    assert {"balancers", "async-mode"} <= anchors(DOCS / "writing.md")


def test_the_site_gives_every_heading_the_anchor_github_gives_it() -> None:
    # mkdocs.yml slugs headings with pymdownx's GitHub-style slugify; the links checked
    # above rely on it, so that "writing.md#async-mode" works on GitHub and on the site.
    slugify = pymdownx.slugs.slugify(case="lower")
    headings = [
        line.lstrip("#").strip()
        for path in MARKDOWN
        for _, line in prose_lines(path)
        if _ATX_HEADING.match(line) and line.lstrip("#").strip()
    ]
    assert len(headings) > 100
    differ = [h for h in headings if slugify(_CODE_SPAN.sub(r"\2", h), "-") != github_slug(h)]
    assert not differ, f"headings the site and GitHub anchor differently: {differ}"


def test_the_readme_keeps_its_two_commands() -> None:
    # The front door's promise: one command runs the quickstart, one runs every check
    # (.ci/run calls the second).
    commands = {b.code.strip() for b in code_blocks(README) if b.language == "sh"}
    assert {"scripts/quickstart", "scripts/test"} <= commands
    for script in ("scripts/quickstart", "scripts/test"):
        assert (ROOT / script).stat().st_mode & 0o111, f"{script} is not executable"


def test_every_page_of_the_site_is_in_its_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = [p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")]
    missing = [page for page in pages if f" {page}\n" not in nav]
    assert not missing, f"pages that no menu of the site leads to: {missing}"
