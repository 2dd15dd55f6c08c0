"""Markdown (.md): YAML front matter into metadata, headings into sections, Hugo ``{#anchors}`` kept.

Headings are found by markdown-it-py's CommonMark block parser: ATX (``## T``) and setext (``T`` over
``===``) headings, and ``<h1>``..``<h6>`` inside HTML blocks; code blocks are skipped. The text is kept verbatim.
"""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache

import yaml
from markdown_it import MarkdownIt

from connectors.content import decode, require_no_nul, require_text, title_from_uri
from connectors.jsonable import jsonable
from connectors.outline import HeadingStack, Mark, nest, path, tile
from rag.errors import ConnectorError
from rag.types import Document, JsonValue

FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL | re.MULTILINE)
# markdown-it reads \r\n and a lone \r as line breaks too; line numbers are counted the same way here.
LINE_BREAK = re.compile(r"\r\n?|\n")
HTML_HEADING = re.compile(r"<h([1-6])\b[^>]*>(.*?)</h\1\s*>", re.IGNORECASE | re.DOTALL)
TAG = re.compile(r"<[^>]*>")
# Hugo/Pandoc heading attributes: `## Title {#id}` or `{#id .class}`.
ANCHOR = re.compile(r"[ \t]*\{#([^}\s]+)[^}]*\}\Z")
CLOSING_HASHES = re.compile(r"(?:\A|[ \t]+)#+\Z")
# Bounds on front matter once YAML aliases are expanded: nine levels of ten aliases each (a "billion
# laughs") parse in microseconds but expand to 10^9 values, which converting or hashing would build.
MAX_FRONT_MATTER_VALUES = 10_000
MAX_FRONT_MATTER_DEPTH = 64


@dataclass(frozen=True, slots=True)
class Heading:
    """A heading: where it starts in the body, its level, text and Hugo anchor ("" if none)."""

    start: int
    level: int
    text: str
    anchor: str


def parse_markdown(data: bytes, uri: str, charset: str | None = None) -> Document:
    """Return a Document of the body after any front matter, sectioned by its headings."""
    decoded = decode(data, uri, charset)
    front_matter, body = split_front_matter(decoded.text, uri)
    require_text(body, uri)
    headings = list(find_headings(body))
    metadata = decoded.metadata()
    if front_matter:
        metadata["front_matter"] = front_matter
    anchors: list[JsonValue] = [[h.anchor, h.start] for h in headings if h.anchor]
    if anchors:
        metadata["anchors"] = anchors
    return Document(
        uri=uri,
        text=body,
        title=_title(front_matter, headings) or title_from_uri(uri),
        sections=tile(_marks(headings), len(body)),
        metadata=metadata,
        content_type="text/markdown",
    )


def split_front_matter(source: str, uri: str) -> tuple[dict[str, JsonValue], str]:
    """Return the YAML front matter as JSON values and the body that follows it."""
    match = FRONT_MATTER.match(source)
    if match is None:
        return {}, source
    try:
        loaded = yaml.safe_load(match.group(1))
    except RecursionError:  # PyYAML composes nested collections recursively
        raise ConnectorError(_too_deep(uri)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 2}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot parse"
        raise ConnectorError(
            f"{uri}: invalid YAML front matter ({problem}{where}); fix it or remove the --- block"
        ) from exc
    if loaded is None:
        return {}, source[match.end() :]
    if not isinstance(loaded, dict):
        raise ConnectorError(
            f"{uri}: front matter must be a YAML mapping (key: value lines), got {type(loaded).__name__}"
        )
    check_front_matter(loaded, uri)
    return jsonable(loaded), source[match.end() :]


def check_front_matter(loaded: dict[object, object], uri: str) -> None:
    """Raise ConnectorError if front matter expands too far, nests too deep, or holds a NUL character.

    Walks the values as they would be expanded, and stops at the first bound crossed.
    """
    pending: list[tuple[object, int]] = [(loaded, 1)]
    for seen in itertools.count(1):
        if not pending:
            return
        if seen > MAX_FRONT_MATTER_VALUES:
            raise ConnectorError(
                f"{uri}: front matter expands to more than {MAX_FRONT_MATTER_VALUES} values (a YAML alias "
                "bomb?); shorten it or write the aliased values out"
            )
        value, depth = pending.pop()
        if depth > MAX_FRONT_MATTER_DEPTH:
            raise ConnectorError(_too_deep(uri))
        if isinstance(value, str):
            require_no_nul(value, uri, "front matter")
        elif isinstance(value, dict):
            pending += [(item, depth + 1) for pair in value.items() for item in pair]
        elif isinstance(value, list):
            pending += [(item, depth + 1) for item in value]


def _too_deep(uri: str) -> str:
    return (f"{uri}: front matter nests too deeply (over {MAX_FRONT_MATTER_DEPTH} levels); "
            "flatten it or remove the --- block")


def find_headings(body: str) -> Iterator[Heading]:
    """Yield the headings of ``body`` in order: ATX, setext, and h1..h6 in HTML blocks; none in code."""
    starts = [0] + [match.end() for match in LINE_BREAK.finditer(body)]
    tokens = _block_parser().parse(body)
    for index, token in enumerate(tokens):
        if token.map is None:
            continue
        if token.type == "heading_open":
            text, anchor = _heading_text(" ".join(tokens[index + 1].content.split()))
            yield Heading(starts[token.map[0]], int(token.tag[1]), text, anchor)
        elif token.type == "html_block":
            yield from _html_headings(body, token.content, token.map[0], starts)


@cache
def _block_parser() -> MarkdownIt:
    # Inline parsing is off: only block structure is needed, and a heading's raw text is its inline content.
    return MarkdownIt("commonmark").disable(["inline", "text_join"])


def _html_headings(body: str, block: str, first_line: int, starts: Sequence[int]) -> Iterator[Heading]:
    for match in HTML_HEADING.finditer(block):
        line = first_line + block.count("\n", 0, match.start())
        # The block's lines may be unindented (inside a list); find the tag on the original line.
        first = match.group(0).split("\n", 1)[0]
        end = starts[line + 1] if line + 1 < len(starts) else len(body)
        column = max(body.find(first, starts[line], end), starts[line]) - starts[line]
        text = " ".join(html.unescape(TAG.sub(" ", match.group(2))).split())
        yield Heading(starts[line] + column, int(match.group(1)), *_heading_text(text))


def _heading_text(raw: str) -> tuple[str, str]:
    # Closing hashes may come before or after the anchor: `## T {#a} ##` and `## T ## {#a}` both occur.
    raw = CLOSING_HASHES.sub("", raw.strip())
    anchor = ANCHOR.search(raw)
    if anchor:
        raw = CLOSING_HASHES.sub("", raw[: anchor.start()])
    return raw.strip(), anchor.group(1) if anchor else ""


def _marks(headings: Sequence[Heading]) -> list[Mark]:
    marks = []
    stack: HeadingStack = ()
    for heading in headings:
        stack = nest(stack, heading.level, heading.text)
        marks.append(Mark(heading.start, path(stack)))
    return marks


def _title(front_matter: dict[str, JsonValue], headings: Sequence[Heading]) -> str:
    title = front_matter.get("title")
    if isinstance(title, str) and title.strip():
        return title.strip()
    return next((h.text for h in headings if h.level == 1 and h.text), "")
