"""Markdown (.md): YAML front matter into metadata, ATX headings into sections, Hugo ``{#anchors}`` kept."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import yaml

from connectors.content import decode, require_no_nul, require_text, title_from_uri
from connectors.jsonable import jsonable
from connectors.outline import HeadingStack, Mark, nest, path, tile
from rag.errors import ConnectorError
from rag.types import Document, JsonValue

FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL | re.MULTILINE)
ATX_HEADING = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*\r?\n?\Z", re.DOTALL)
FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
# Hugo/Pandoc heading attributes: `## Title {#id}` or `{#id .class}`.
ANCHOR = re.compile(r"[ \t]*\{#([^}\s]+)[^}]*\}\Z")
CLOSING_HASHES = re.compile(r"(?:\A|[ \t]+)#+\Z")
# Bounds on front matter once YAML aliases are expanded: nine levels of ten aliases each (a "billion
# laughs") parse in microseconds but expand to 10^9 values, which converting or hashing would build.
MAX_FRONT_MATTER_VALUES = 10_000
MAX_FRONT_MATTER_DEPTH = 64


@dataclass(frozen=True, slots=True)
class AtxHeading:
    """A ``#`` heading line: where it starts in the body, its level, text and Hugo anchor ("" if none)."""

    start: int
    level: int
    text: str
    anchor: str


def parse_markdown(data: bytes, uri: str, charset: str | None = None) -> Document:
    """Return a Document of the body after any front matter, sectioned by its ATX headings."""
    source = decode(data, uri, charset)
    front_matter, body = split_front_matter(source, uri)
    require_text(body, uri)
    headings = list(find_headings(body))
    metadata: dict[str, JsonValue] = {}
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


def find_headings(body: str) -> Iterator[AtxHeading]:
    """Yield the ATX headings of ``body`` that are outside fenced code blocks."""
    fence = ""
    for line in re.finditer(r"[^\n]*\n?", body):
        if not line.group():
            continue
        opened = FENCE.match(line.group())
        if fence:
            if opened and opened.group(1).startswith(fence) and not line.group()[opened.end() :].strip():
                fence = ""
            continue
        if opened:
            fence = opened.group(1)
            continue
        heading = ATX_HEADING.match(line.group())
        if heading:
            text, anchor = _heading_text(heading.group(2) or "")
            yield AtxHeading(line.start(), len(heading.group(1)), text, anchor)


def _heading_text(raw: str) -> tuple[str, str]:
    # Closing hashes may come before or after the anchor: `## T {#a} ##` and `## T ## {#a}` both occur.
    raw = CLOSING_HASHES.sub("", raw.strip())
    anchor = ANCHOR.search(raw)
    if anchor:
        raw = CLOSING_HASHES.sub("", raw[: anchor.start()])
    return raw.strip(), anchor.group(1) if anchor else ""


def _marks(headings: Sequence[AtxHeading]) -> list[Mark]:
    marks = []
    stack: HeadingStack = ()
    for heading in headings:
        stack = nest(stack, heading.level, heading.text)
        marks.append(Mark(heading.start, path(stack)))
    return marks


def _title(front_matter: dict[str, JsonValue], headings: Sequence[AtxHeading]) -> str:
    title = front_matter.get("title")
    if isinstance(title, str) and title.strip():
        return title.strip()
    return next((h.text for h in headings if h.level == 1 and h.text), "")
