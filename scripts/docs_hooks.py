"""mkdocs hooks: a rendered page that shows reStructuredText markup as text fails the build.

The API pages are made from docstrings read as Markdown, where reStructuredText's literal
block marker (`text::` before an indented example), its directives (`.. note::`) and its
roles (`:class:`) are not markup: they reach the reader as stray characters. Each page's
HTML is checked once it is rendered; what is found is logged as a warning, which
`mkdocs build --strict` turns into a failure. `tests/unit/test_docs_site.py` runs the same
check on a fresh build, and checks that it catches each kind of marker.
"""

from __future__ import annotations

import html
import logging
import re
from typing import Any

log = logging.getLogger("mkdocs.hooks.aiomq_docs")

# Code is shown as written, whatever it holds; the check reads everything else.
_CODE = re.compile(r"<(pre|code)\b[^>]*>.*?</\1>", re.DOTALL | re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")
_MARKERS = [
    (re.compile(r"\.\.\s+[A-Za-z][\w-]*::"), "a reStructuredText directive"),
    (
        re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|exc|obj|data|const|ref|doc|term):"),
        "a reStructuredText role",
    ),
    (
        re.compile(r"(?m)^\s*:(?:param|type|returns?|rtype|raises?|ivar|cvar)\b[^:\n]*:"),
        "a reStructuredText field list",
    ),
    (re.compile(r"::"), "a stray '::' (a reStructuredText literal-block marker)"),
]


def stray_markup(page_html: str) -> list[str]:
    """What a rendered page shows of reStructuredText markup, outside code.

    Args:
        page_html: The HTML of a page's content.

    Returns:
        One line per marker found, naming the kind of marker and the text around it;
        empty when the page is clean.
    """
    text = html.unescape(_TAG.sub(" ", _CODE.sub("`…`", page_html)))
    found: list[str] = []
    taken: list[tuple[int, int]] = []
    for pattern, kind in _MARKERS:
        for match in pattern.finditer(text):
            start, end = match.span()
            # A directive's '::' is reported once, as a directive.
            if any(s <= start < e for s, e in taken):
                continue
            taken.append((start, end))
            context = " ".join(text[max(0, start - 50) : end + 30].split())
            found.append(f"{kind}: ...{context}...")
    return found


def on_page_content(page_html: str, page: Any, **_: Any) -> str:
    """Warn about every reStructuredText marker left in the rendered page."""
    for problem in stray_markup(page_html):
        log.warning("%s renders %s", page.file.src_uri, problem)
    return page_html
