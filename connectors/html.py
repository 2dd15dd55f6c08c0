"""HTML (.html, text/html): the page's main content, one line per block element, sectioned by h1..h6.

trafilatura decides what the main content is (menus, sidebars, cookie banners and "related articles" are
not); the page's own elements still give the lines, headings, lists and tables, so a block is kept when
trafilatura kept its text. When trafilatura finds nothing, or none of the page's blocks match what it
found, the whole page's visible text is used (``metadata["html_extraction"]`` says which). Tables with a
header row become one line per row, each cell after its header.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

import trafilatura
from bs4 import BeautifulSoup
from bs4.element import NavigableString, PageElement, PreformattedString, Tag

from connectors.content import decode, require_text, title_from_uri
from connectors.outline import Block, join_blocks
from connectors.tables import table_lines
from rag.types import Document

DROPPED = frozenset({"script", "style", "nav", "noscript", "template", "svg", "head"})
# <header>/<footer> of the page are chrome; inside an <article> or <main> they hold the title and byline.
CHROME = frozenset({"header", "footer"})
BLOCK_NAMES = """address article aside blockquote body caption dd details dialog div dl dt fieldset figcaption
figure form hr li main ol p section summary table tbody tfoot thead tr ul"""
BLOCKS = frozenset(BLOCK_NAMES.split())
CELLS = ("td", "th")
HEADINGS = {f"h{level}": level for level in range(1, 7)}
META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
HTML_SPACE = re.compile(r"[ \t\n\r\f]+")
# trafilatura's text output marks list items and table rows; the marks are not page text.
LIST_MARK = re.compile(r"\A\s*[-*•]\s+")
TABLE_RULE = re.compile(r"\A[|\-\s]+\Z")
# A line this long may be part of one of trafilatura's lines; a shorter one (a menu label) must be a whole line.
MIN_FRAGMENT = 16
# A colspan past this is a broken page, not a table layout.
MAX_COLSPAN = 100


def parse_html(data: bytes, uri: str, charset: str | None = None) -> Document:
    """Return a Document of the page's main content, with heading paths, ``html_lang`` and encoding metadata."""
    decoded = decode(data, uri, charset or declared_charset(data))
    soup = BeautifulSoup(decoded.text, "lxml")
    root = soup.body if soup.body is not None else soup
    content = main_content(decoded.text)
    blocks = headed(extract_blocks(root, content.keeps)) if content is not None else []
    metadata = {**decoded.metadata(), "html_extraction": "main content" if blocks else "whole page"}
    blocks = blocks or extract_blocks(root)
    text, sections = join_blocks(blocks)
    require_text(text, uri)
    lang = soup.html.get("lang") if soup.html else None
    if isinstance(lang, str) and lang.strip():
        metadata["html_lang"] = lang.strip()
    return Document(
        uri=uri,
        text=text,
        title=_title(soup, blocks) or title_from_uri(uri),
        sections=sections,
        metadata=metadata,
        content_type="text/html",
    )


def declared_charset(data: bytes) -> str | None:
    """Return the charset a ``<meta>`` tag declares near the top of the page, if any."""
    match = META_CHARSET.search(data[:4096])
    return match.group(1).decode("ascii") if match else None


@dataclass(frozen=True, slots=True)
class MainContent:
    """The text units (lines, table cells) trafilatura kept as a page's main content."""

    units: frozenset[str]
    joined: str

    def keeps(self, text: str) -> bool:
        """True if every line of ``text`` is one of the units, or (when long enough) part of one."""
        lines = [line for line in map(normalise, text.split("\n")) if line]
        return bool(lines) and all(
            line in self.units or (len(line) >= MIN_FRAGMENT and line in self.joined) for line in lines
        )


def headed(blocks: list[Block]) -> list[Block]:
    """Return the blocks without headings that head no text (a sidebar's title over its dropped links).

    trafilatura often drops headings (an FAQ's questions), so a heading stays when text follows it before
    the next heading of its level or above, whatever trafilatura did with it.
    """
    kept: list[Block] = []
    closest = 7  # the highest heading level between here and the nearest text below (7: none)
    text_below = False
    for block in reversed(blocks):
        if block.level is None:
            closest, text_below = 7, True
        elif text_below and block.level < closest:
            closest = block.level
        else:
            closest = min(closest, block.level)
            continue  # heads nothing: its text was dropped, or a heading of its level came first
        kept.append(block)
    return kept[::-1]


def main_content(markup: str) -> MainContent | None:
    """Return what trafilatura finds as the page's main content, or None if it finds nothing."""
    extracted = trafilatura.extract(
        markup, output_format="txt", include_tables=True, include_formatting=False, include_links=False,
        include_images=False, include_comments=False, with_metadata=False,
    )
    units: set[str] = set()
    for line in (extracted or "").splitlines():
        line = LIST_MARK.sub("", line)
        if line.lstrip().startswith("|"):
            if TABLE_RULE.match(line):
                continue
            cells = [normalise(cell) for cell in line.strip().strip("|").split("|")]
            units.update([*cells, " | ".join(cells)])
        units.add(normalise(line))
    units.discard("")
    return MainContent(frozenset(units), "\n".join(sorted(units))) if units else None


def normalise(text: str) -> str:
    """Return ``text`` in NFC with invisible characters dropped and whitespace squashed, for comparison."""
    visible = "".join(char for char in unicodedata.normalize("NFC", text) if char.isprintable() or char.isspace())
    return " ".join(visible.split())


def _everything(text: str) -> bool:
    return True


def extract_blocks(root: Tag | BeautifulSoup, keep: Callable[[str], bool] = _everything) -> list[Block]:
    """Return the text lines of ``root`` that ``keep`` accepts, in document order, headings with their level."""
    blocks: list[Block] = []
    inline: list[str] = []

    def flush() -> None:
        line = _squash("".join(inline))
        inline.clear()
        if line and keep(line):
            blocks.append(Block(line))

    # An explicit stack rather than recursion: real pages nest deeper than Python's recursion limit.
    stack: list[tuple[PageElement, bool]] = [(root, True)]
    while stack:
        node, entering = stack.pop()
        if isinstance(node, NavigableString):
            if not isinstance(node, PreformattedString):  # comments, CDATA, doctype
                inline.append(str(node))
        elif isinstance(node, Tag) and not _is_hidden(node):
            if not entering or node.name in BLOCKS or node.name in HEADINGS or node.name in ("pre", "br"):
                flush()
            if entering:
                _enter(node, Output(blocks, inline, stack, keep))
    flush()
    return blocks


@dataclass(frozen=True, slots=True)
class Output:
    """What the walk in extract_blocks is building: the blocks, the current line, the pending nodes, the filter."""

    blocks: list[Block]
    inline: list[str]
    stack: list[tuple[PageElement, bool]]
    keep: Callable[[str], bool]


def _enter(node: Tag, out: Output) -> None:
    if node.name in HEADINGS:
        heading = _squash(node.get_text(" "))
        if heading:  # kept by what it heads (headed), not by its own text
            out.blocks.append(Block(heading, HEADINGS[node.name]))
        return
    table = header_table(node) if node.name == "table" else None
    if table is not None:
        header, rows = table
        cells = [cell for cell in (*header, *(cell for row in rows for cell in row)) if cell]
        if 2 * sum(map(out.keep, cells)) >= len(cells):
            out.blocks.extend(Block(line) for line in table_lines(header, rows))
        return
    if node.name == "pre":
        preformatted = node.get_text().strip("\n")
        if preformatted.strip() and out.keep(preformatted):
            out.blocks.append(Block(preformatted))
        return
    if node.name in CELLS and node.find_previous_sibling(CELLS) is not None:
        out.inline.append(" | ")  # a table row stays one line, its cells separated
    if node.name in BLOCKS:
        out.stack.append((node, False))
    out.stack.extend((child, True) for child in reversed(node.contents))


def header_table(table: Tag) -> tuple[list[str], list[list[str]]] | None:
    """Return the header and row cells of a table whose first row is all ``<th>``, else None.

    Tables without a header row, and tables holding tables (page layout), are read cell by cell instead.
    """
    rows = [row for row in table.find_all("tr") if row.find_parent("table") is table]
    if len(rows) < 2 or table.find("table") is not None:
        return None
    first = rows[0].find_all(CELLS, recursive=False)
    if not first or any(cell.name != "th" for cell in first):
        return None
    header = [text for cell in first for text in [_squash(cell.get_text(" "))] * _span(cell)]
    body = [[text for cell in row.find_all(CELLS, recursive=False)
             for text in [_squash(cell.get_text(" "))] + [""] * (_span(cell) - 1)] for row in rows[1:]]
    return header, body


def _span(cell: Tag) -> int:
    span = cell.get("colspan")
    return min(max(int(span), 1), MAX_COLSPAN) if isinstance(span, str) and span.strip().isdigit() else 1


def _is_hidden(node: Tag) -> bool:
    if node.name in DROPPED:
        return True
    return node.name in CHROME and node.find_parent(["article", "main"]) is None


def _squash(text: str) -> str:
    return HTML_SPACE.sub(" ", text).strip(" ")


def _title(soup: BeautifulSoup, blocks: list[Block]) -> str:
    title = _squash(soup.title.get_text()) if soup.title is not None else ""
    return title or next((block.text for block in blocks if block.level == 1), "")
