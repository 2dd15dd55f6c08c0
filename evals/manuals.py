"""The OpenTelemetry manuals as a section-retrieval dataset: heading in language X -> that section in Y.

Translated headings carry Hugo anchors (``## 事前要件 {#prerequisites}``) equal to the slug of the English
heading; English headings carry none, so their anchor is computed the way Hugo does (``hugo_slug``).
A query is a heading's text; its gold in language Y is the range of the heading with the same anchor in
the same relative file of Y, from the heading to the next heading of the same or a higher level.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from connectors.markdown import Heading, find_headings, parse_markdown
from evals.datasets import Dataset, Query, Relevance, Span
from rag.errors import ConnectorError
from rag.types import Document, JsonValue

SOURCE = "en"
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MARKUP = re.compile(r"[`*]|<[^>]+>")


def hugo_slug(heading: str) -> str:
    """Hugo's GitHub-style heading id: markup dropped, lowercased, punctuation but ``-``/``_`` dropped,
    each space a hyphen."""
    text = _MARKUP.sub("", _LINK.sub(r"\1", heading)).lower()
    return "".join("-" if c == " " else c for c in text if c.isalnum() or c in " -_")


@dataclass(frozen=True, slots=True)
class Anchored:
    """A heading with its anchor and the character range its section (with subsections) covers."""

    anchor: str
    text: str
    start: int
    end: int
    explicit: bool


def _ranges(headings: Sequence[Heading], length: int) -> Iterator[tuple[Heading, int]]:
    for i, heading in enumerate(headings):
        after = (h.start for h in headings[i + 1 :] if h.level <= heading.level)
        yield heading, next(after, length)


def anchored_headings(document: Document, lang: str) -> list[Anchored]:
    """The headings of ``document`` that have an anchor: explicit ones, and for English computed ones.

    A repeated computed slug gets ``-1``, ``-2``... as Hugo does; a repeated explicit anchor keeps its first.
    """
    found: list[Anchored] = []
    seen: dict[str, int] = {}
    for heading, end in _ranges(list(find_headings(document.text)), len(document.text)):
        anchor = heading.anchor or (hugo_slug(heading.text) if lang == SOURCE else "")
        if not anchor or not heading.text:
            continue
        if anchor in seen and not heading.anchor:
            seen[anchor] += 1
            anchor = f"{anchor}-{seen[anchor]}"
        elif anchor in seen:
            continue
        seen.setdefault(anchor, 0)
        found.append(Anchored(anchor, heading.text, heading.start, end, bool(heading.anchor)))
    return found


def _files(root: Path, lang: str) -> list[Path]:
    base = root / lang
    if not base.is_dir():
        raise ConnectorError(f"{base}: no such directory; the manuals hold one folder per language (en, ja, ...)")
    return sorted(base.rglob("*.md"))


def _document(path: Path, root: Path, lang: str) -> Document:
    relative = path.relative_to(root / lang).as_posix()
    document = parse_markdown(path.read_bytes(), f"manuals://{lang}/{relative}")
    return replace(document, language=lang)


def load_manuals(root: Path, languages: Sequence[str]) -> Dataset:
    """Every ``{lang}/**/*.md`` as a Document ``manuals://{lang}/{path}``, and one query per anchored heading."""
    documents: dict[str, tuple[Document, ...]] = {}
    queries: dict[str, tuple[Query, ...]] = {}
    gold: dict[tuple[str, str], frozenset[Span]] = {}
    headings: dict[tuple[str, str], list[Anchored]] = {}
    for lang in dict.fromkeys(languages):
        documents[lang] = tuple(_document(path, root, lang) for path in _files(root, lang))
        lang_queries = []
        for document in documents[lang]:
            relative = document.uri.removeprefix(f"manuals://{lang}/")
            headings[(lang, relative)] = anchored_headings(document, lang)
            for h in headings[(lang, relative)]:
                lang_queries.append(Query(f"{relative}#{h.anchor}", h.text, lang))
                gold[(f"{relative}#{h.anchor}", lang)] = frozenset({Span(document.uri, h.start, h.end)})
        queries[lang] = tuple(lang_queries)
    notes: dict[str, JsonValue] = {"anchor_match": anchor_match(headings)}
    return Dataset("manuals", Relevance.SECTION, documents, queries, gold, notes)


def anchor_match(headings: dict[tuple[str, str], list[Anchored]]) -> dict[str, JsonValue]:
    """Per translated language: how many explicit anchors equal a computed English slug of the same file."""
    english = {relative: {h.anchor for h in found} for (lang, relative), found in headings.items() if lang == SOURCE}
    if not english:
        return {}
    result: dict[str, JsonValue] = {}
    for lang in sorted({lang for lang, _ in headings} - {SOURCE}):
        explicit = [(relative, h.anchor) for (code, relative), found in headings.items() if code == lang
                    for h in found if h.explicit]
        matched = sum(anchor in english.get(relative, set()) for relative, anchor in explicit)
        result[lang] = {"matched": matched, "explicit": len(explicit),
                        "rate": round(matched / len(explicit), 4) if explicit else None}
    return result
