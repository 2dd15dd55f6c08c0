"""HTML (.html, text/html): visible text of block elements, one line each, sectioned by h1..h6."""

from __future__ import annotations

import re

from bs4 import BeautifulSoup
from bs4.element import NavigableString, PageElement, PreformattedString, Tag

from connectors.content import decode, require_text, title_from_uri
from connectors.outline import Block, join_blocks
from rag.types import Document, JsonValue

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


def parse_html(data: bytes, uri: str, charset: str | None = None) -> Document:
    """Return a Document of the page's visible text, with heading paths and ``html_lang`` metadata."""
    markup = decode(data, uri, charset or declared_charset(data))
    soup = BeautifulSoup(markup, "lxml")
    blocks = extract_blocks(soup.body if soup.body is not None else soup)
    text, sections = join_blocks(blocks)
    require_text(text, uri)
    metadata: dict[str, JsonValue] = {}
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


def extract_blocks(root: Tag | BeautifulSoup) -> list[Block]:
    """Return the non-empty text lines of ``root`` in document order, headings (h1..h6) with their level."""
    blocks: list[Block] = []
    inline: list[str] = []

    def flush() -> None:
        line = _squash("".join(inline))
        inline.clear()
        if line:
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
                _enter(node, blocks, inline, stack)
    flush()
    return blocks


def _enter(node: Tag, blocks: list[Block], inline: list[str], stack: list[tuple[PageElement, bool]]) -> None:
    if node.name in HEADINGS:
        heading = _squash(node.get_text(" "))
        if heading:
            blocks.append(Block(heading, HEADINGS[node.name]))
        return
    if node.name == "pre":
        preformatted = node.get_text().strip("\n")
        if preformatted.strip():
            blocks.append(Block(preformatted))
        return
    if node.name in CELLS and node.find_previous_sibling(CELLS) is not None:
        inline.append(" | ")  # a table row stays one line, its cells separated
    if node.name in BLOCKS:
        stack.append((node, False))
    stack.extend((child, True) for child in reversed(node.contents))


def _is_hidden(node: Tag) -> bool:
    if node.name in DROPPED:
        return True
    return node.name in CHROME and node.find_parent(["article", "main"]) is None


def _squash(text: str) -> str:
    return HTML_SPACE.sub(" ", text).strip(" ")


def _title(soup: BeautifulSoup, blocks: list[Block]) -> str:
    title = _squash(soup.title.get_text()) if soup.title is not None else ""
    return title or next((block.text for block in blocks if block.level == 1), "")
