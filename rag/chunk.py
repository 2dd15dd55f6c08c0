"""Document -> Chunks: split each section into sentences in any script, then pack them to a token budget.

Sentences end at line breaks; at ``. ! ?`` followed by whitespace (Latin, Cyrillic, Greek; not after
abbreviations such as "z.B." or "Dr.", initials, or before a lowercase word); at CJK ``。！？；``,
Arabic ``؟ ۔`` and Devanagari ``। ॥`` (no space needed); and at spaces between Thai words, because
Thai writes no sentence punctuation and uses spaces to separate phrases. A sentence over budget is
split at commas (``, 、 ，``), then at spaces, then at characters (a galloping search on
``count_tokens``), so an unpunctuated CJK paragraph still fits.

Every chunk is ``document.text[start:end]`` with surrounding whitespace trimmed, so each
non-whitespace character of the document lies in exactly one chunk. A chunk exceeds ``max_tokens``
only when it is a single code point that alone counts more than ``max_tokens``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rag.types import Chunk, Document, Section

UNDETERMINED = "und"

Span = tuple[int, int]

_CLOSERS = "\"'”’»)]」』）】〕〉》"
_CLOSER = f"[{re.escape(_CLOSERS)}]"
# Line breaks as str.splitlines() sees them, and terminators that need no following space.
_HARD_END = re.compile(
    r"\r\n?|[\n\v\f\x1c-\x1e\x85\u2028\u2029]"
    rf"|[。！？；｡؟۔।॥։።፧။។៕]+{_CLOSER}*"
)
_LATIN_END = re.compile(rf"[.!?…‼⁇⁈⁉]+{_CLOSER}*(?=\s)")
_THAI_GAP = re.compile(r"[\u0e00-\u0eff]\s+(?=[\u0e00-\u0eff])")
_CLAUSE_END = re.compile(r"[,;:](?=\s)|[，、；：،؛]+|\s[-–—]\s")
_SPACE_RUN = re.compile(r"\s+")
_WORD_BEFORE = re.compile(r"[\w.]+\Z")
_VISIBLE = re.compile(r"\S")
# Lower-cased, without the final period; a period after one of these does not end a sentence.
_ABBREVIATIONS = frozenset(
    {
        "e.g", "i.e", "cf", "vs", "al", "approx", "ca", "dr", "mr", "mrs", "ms", "prof", "st", "jr", "sr",
        "nr", "fig", "figs", "vol", "pp", "z.b", "d.h", "u.a", "z.t", "bzw", "vgl", "ggf", "evtl", "sog",
        "abs", "hr", "str", "tel", "inkl", "mme", "mlle", "sra", "dra",
    }
)  # fmt: skip
_FALLBACK_SPLITTERS = (_CLAUSE_END, _SPACE_RUN)


@dataclass(frozen=True, slots=True)
class _Budget:
    count: Callable[[str], int]
    max_tokens: int
    overhead: int  # tokens every text costs once (specials, prefixes): counted once per chunk

    def fits(self, text: str) -> bool:
        return self.count(text) <= self.max_tokens


@dataclass(frozen=True, slots=True)
class _Piece:
    start: int
    end: int
    tokens: int


def chunk_document(
    document: Document,
    count_tokens: Callable[[str], int],
    max_tokens: int = 256,
    detect: Callable[[str], str | None] | None = None,
    min_chars: int = 1,
) -> list[Chunk]:
    """Split ``document`` into chunks of at most ``max_tokens`` tokens that never cross a section.

    A chunk's language is ``detect(text)``, else ``document.language``, else ``"und"``. Chunks with
    fewer than ``min_chars`` characters (after trimming whitespace) are dropped.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    if min_chars < 1:
        raise ValueError(f"min_chars must be at least 1, got {min_chars}")
    budget = _Budget(count_tokens, max_tokens, _fixed_cost(count_tokens))
    placed = [
        (section, span)
        for section in document.tiling()
        for span in _section_spans(document.text, section, budget)
        if span[1] - span[0] >= min_chars and not heading_only(document.text[span[0] : span[1]], section)
    ]
    return [
        _make_chunk(document, ordinal, section, span, detect)
        for ordinal, (section, span) in enumerate(placed)
    ]


def chunk_id(document_uri: str, ordinal: int, text: str) -> str:
    """Return the deterministic id of a chunk: sha256 of (uri, ordinal, text), 32 hex characters."""
    payload = json.dumps([document_uri, ordinal, text])  # ASCII-escaped, so any string encodes
    return hashlib.sha256(payload.encode("ascii")).hexdigest()[:32]


def heading_only(text: str, section: Section) -> bool:
    """True for a section's heading standing alone (a chapter whose text is all in its subsections): it
    states nothing, and its words reach the subsections' vectors through their heading path."""
    if not section.heading:
        return False
    first, _, rest = text.strip().partition("\n")
    return first.lstrip("#").strip() == section.heading[-1].strip() and not any(ch.isalnum() for ch in rest)


def chunk_text(chunk: Chunk) -> str:
    """The chunk's own text (what is encoded without heading context)."""
    return chunk.text


def encoded_text(chunk: Chunk) -> str:
    """The text a chunk's vector is made from: its heading path over its text (the headings its text does
    not already start with), so a chunk deep in a section still says what the section is about."""
    heading = list(chunk.heading)
    first_line = chunk.text.lstrip().split("\n", 1)[0].lstrip("#").strip()
    if heading and first_line == heading[-1].strip():
        heading.pop()
    return " › ".join(heading) + "\n\n" + chunk.text if heading else chunk.text


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Return the trimmed ``(start, end)`` spans of the sentences in ``text[start:end]``."""
    stop = len(text) if end is None else end
    return _split(text, start, stop, _sentence_cuts(text, start, stop))


# A line break inside a paragraph (hard-wrapped Markdown or text): not before a blank line, a list item,
# a heading, a quote or a table row, and not after a heading line.
_WRAP = re.compile(r"(?<=[^\n])\n(?![\n\t ]*(?:[-*+>|#]|\d{1,3}[.)])\s|\s*\n)")


def split_prose(text: str) -> list[Span]:
    """Sentence spans of running text: like split_sentences, but a line break inside a paragraph does not
    end a sentence (offsets stay those of ``text``; only the line breaks are read as spaces)."""
    return split_sentences(_unwrap(text))


def _unwrap(text: str) -> str:
    """``text`` with in-paragraph line breaks read as spaces (same length, so offsets hold)."""
    out = list(text)
    for match in _WRAP.finditer(text):
        line_start = text.rfind("\n", 0, match.start()) + 1
        if not text[line_start:match.start()].lstrip().startswith("#"):
            out[match.start()] = " "
    return "".join(out)


def _make_chunk(
    document: Document,
    ordinal: int,
    section: Section,
    span: Span,
    detect: Callable[[str], str | None] | None,
) -> Chunk:
    start, end = span
    text = document.text[start:end]
    detected = detect(text) if detect is not None else None
    return Chunk(
        id=chunk_id(document.uri, ordinal, text),
        document_uri=document.uri,
        ordinal=ordinal,
        text=text,
        start=start,
        end=end,
        language=detected or document.language or UNDETERMINED,
        page=section.page,
        heading=section.heading,
    )


def _fixed_cost(count_tokens: Callable[[str], int]) -> int:
    """Return the tokens any text costs once (special tokens, prompt prefixes), seen from a join.

    ``count("")`` is no good: SentencePiece models count a bare "▁" there that merges into real text.
    """
    return max(2 * count_tokens("a") - count_tokens("a a"), 0)


def _section_spans(text: str, section: Section, budget: _Budget) -> list[Span]:
    """Return the chunk spans of one section: sentences fitted to the budget, then packed."""
    sentences = split_sentences(text, section.start, section.end)
    pieces = [piece for sentence in sentences for piece in _fit(text, sentence, budget, 0)]
    return _pack(text, pieces, budget)


def _sentence_cuts(text: str, start: int, end: int) -> list[int]:
    """Return the sorted positions in ``[start, end]`` where a sentence may end."""
    cuts = {m.end() for m in _HARD_END.finditer(text, start, end) if not _quote_continues(text, m, end)}
    cuts |= {m.end() for m in _THAI_GAP.finditer(text, start, end)}
    cuts |= {m.end() for m in _LATIN_END.finditer(text, start, end) if _ends_sentence(text, m, end)}
    return sorted(cuts)


def _quote_continues(text: str, match: re.Match[str], end: int) -> bool:
    """Whether a terminator closes a quotation that the sentence goes on after, as in 「本当？」と言った。"""
    return match.group()[-1] in _CLOSERS and match.end() < end and text[match.end()].isalnum()


def _ends_sentence(text: str, match: re.Match[str], end: int) -> bool:
    """Whether a ``. ! ?`` run ends a sentence: not before a lowercase word, an abbreviation or an initial."""
    following = _VISIBLE.search(text, match.end(), end)
    if following is not None and following.group().islower():
        return False
    if match.group().rstrip(_CLOSERS) != ".":
        return True
    word = _WORD_BEFORE.search(text, max(0, match.start() - 16), match.start())
    if word is None:
        return True
    token = word.group().lower()
    is_initial = len(token) == 1 and token.isalpha()
    return not (is_initial or token in _ABBREVIATIONS)


def _split(text: str, start: int, end: int, cuts: Iterable[int]) -> list[Span]:
    """Return the trimmed, non-empty spans between consecutive ``cuts`` in ``[start, end]``."""
    bounds = [start, *cuts, end]
    spans = (_strip(text, a, b) for a, b in itertools.pairwise(bounds))
    return [span for span in spans if span is not None]


def _strip(text: str, start: int, end: int) -> Span | None:
    """Return ``[start, end)`` without leading and trailing whitespace, or None if nothing is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def _fit(text: str, span: Span, budget: _Budget, level: int) -> list[_Piece]:
    """Return ``span`` as one counted piece if it fits, else split finer from splitter ``level`` on."""
    start, end = span
    tokens = budget.count(text[start:end])
    if tokens <= budget.max_tokens:
        return [_Piece(start, end, tokens)]
    for depth in range(level, len(_FALLBACK_SPLITTERS)):
        cuts = (m.end() for m in _FALLBACK_SPLITTERS[depth].finditer(text, start, end))
        parts = _split(text, start, end, cuts)
        if len(parts) > 1:
            return [piece for part in parts for piece in _fit(text, part, budget, depth + 1)]
    return _cut_characters(text, span, budget)


def _cut_characters(text: str, span: Span, budget: _Budget) -> list[_Piece]:
    """Cut a span without usable separators into the longest prefixes that fit, left to right."""
    pieces = []
    start, end = span
    while start < end:
        stop = _cluster_boundary(text, start, start + _longest_fitting_prefix(text, start, end, budget), end)
        trimmed = _strip(text, start, stop)
        if trimmed is not None:
            pieces.append(_Piece(*trimmed, budget.count(text[trimmed[0] : trimmed[1]])))
        start = stop
    return pieces


def _longest_fitting_prefix(text: str, start: int, end: int, budget: _Budget) -> int:
    """Return the largest length >= 1 whose prefix fits (or 1 if none does).

    Galloping from short prefixes keeps the counted text proportional to the piece, not the whole
    span, so a long unpunctuated paragraph costs O(n log n) characters counted, not O(n^2).
    """
    good, bad, probe = 1, end - start + 1, 2
    while good < end - start:
        length = min(probe, end - start)
        if not budget.fits(text[start : start + length]):
            bad = length
            break
        good, probe = length, probe * 2
    while bad - good > 1:
        middle = (good + bad) // 2
        good, bad = (middle, bad) if budget.fits(text[start : start + middle]) else (good, middle)
    return good


def _cluster_boundary(text: str, start: int, stop: int, end: int) -> int:
    """Move ``stop`` back so it does not separate a combining mark or emoji sequence from its base."""
    if stop >= end:
        return end
    boundary = stop
    while boundary > start + 1 and _continues_cluster(text, boundary):
        boundary -= 1
    # One cluster longer than the budget (e.g. a long run of combining marks) is cut by code point.
    return stop if _continues_cluster(text, boundary) else boundary


def _continues_cluster(text: str, index: int) -> bool:
    """Whether the code point at ``index`` belongs to the same user-perceived character as the one before."""
    char = text[index]
    return (
        unicodedata.category(char) in ("Mn", "Mc", "Me")
        or char in "\u200c\u200d"
        or "\ufe00" <= char <= "\ufe0f"
        or "\U0001f3fb" <= char <= "\U0001f3ff"
        or text[index - 1] == "\u200d"
    )


def _pack(text: str, pieces: list[_Piece], budget: _Budget) -> list[Span]:
    """Greedily join consecutive pieces into spans that fit the budget."""
    spans = []
    first = 0
    while first < len(pieces):
        stop = _verified_stop(text, pieces, first, _estimated_stop(pieces, first, budget), budget)
        spans.append((pieces[first].start, pieces[stop - 1].end))
        first = stop
    return spans


def _estimated_stop(pieces: list[_Piece], first: int, budget: _Budget) -> int:
    """Return the end of the longest run from ``first`` whose summed token counts fit the budget."""
    total = pieces[first].tokens
    stop = first + 1
    while stop < len(pieces):
        total += max(pieces[stop].tokens - budget.overhead, 0)
        if total > budget.max_tokens:
            break
        stop += 1
    return stop


def _verified_stop(text: str, pieces: list[_Piece], first: int, stop: int, budget: _Budget) -> int:
    """Shrink an estimated run until its real token count fits (sums only approximate a join)."""

    def joined(last: int) -> str:
        return text[pieces[first].start : pieces[last - 1].end]

    if stop - first == 1 or budget.fits(joined(stop)):
        return stop
    good, bad = first + 1, stop
    while bad - good > 1:
        middle = (good + bad) // 2
        good, bad = (middle, bad) if budget.fits(joined(middle)) else (good, middle)
    return good
