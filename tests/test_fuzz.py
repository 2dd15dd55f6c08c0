"""Property-based fuzzing with arbitrary Unicode: chunking, language detection, filters (run on the real
Postgres) and citation parsing raise nothing but their documented errors, and keep their promises."""

from __future__ import annotations

import itertools
import math
import os
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from connectors.content import title_from_uri
from connectors.files import path_from_uri
from rag.answer.citations import claims, insert_markers, markers, own_words
from rag.answer.dialogue import SpanCitation
from rag.chunk import chunk_document, chunk_id, split_prose, split_sentences
from rag.config import Config, DbConfig, EncoderKind, ModelConfig
from rag.errors import StoreError
from rag.lang import LanguageDetector, language_name, normalize_language
from rag.rosetta import Rosetta
from rag.store.sql import compile_filter, glob_to_like
from rag.types import Document, Filter, JsonScalar, Section
from tests.coverage import assert_gaps_hold_only_lone_headings
from tests.fakes import HashEncoder

# Scripts, marks and controls that break naive text code, mixed into arbitrary Unicode.
HOSTILE_PIECES = [
    "\u202e", "\u200f", "\u200e", "\u2066", "\u2069",  # bidi overrides and isolates
    "\u0301", "\u0308\u0308\u0308", "\u200d", "\u200c", "\ufe0f", "\ufeff",  # combining, joiners, BOM
    "👩‍👩‍👧‍👦", "🏳️‍🌈", "👍🏽", "🇯🇵",  # ZWJ sequences, modifiers, flags
    "مرحبا بالعالم. ", "שלום עולם. ", "สวัสดีครับ ผมชื่อ", "東京は首都です。", "한국어 문장입니다. ",
    "\x00", "\x07", "\x1b[31m", "\r\n", "\r", "\u2028", "\u2029", "\x85", "\t", "\x0b", "\x0c",
    "[1]", "【2】", "［3］", "[1, 2]", "«", "»", "„", "“", "\"", "> ", "- ", "1. ", "...", "。", "؟", "।",
    "%", "_", "\\", "'", "';--", "*", "?", "[", "]", "{", "}",
]  # fmt: skip
unicode_text = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(st.sampled_from(HOSTILE_PIECES), st.text(max_size=8)), max_size=40).map("".join),
)
FAST = settings(max_examples=60, deadline=None)


# --- chunking ------------------------------------------------------------------------------------

@st.composite
def sectioned(draw: st.DrawFn) -> Document:
    text = draw(unicode_text)
    cuts = sorted(set(draw(st.lists(st.integers(0, len(text)), max_size=3))))
    bounds = [0, *cuts, len(text)]
    sections = tuple(Section(a, b, draw(st.none() | st.integers(1, 99)), tuple(draw(st.lists(unicode_text,
                     max_size=2)))) for a, b in itertools.pairwise(bounds))
    return Document(uri=draw(st.text(min_size=1, max_size=30)), text=text, title=draw(unicode_text),
                    sections=sections if draw(st.booleans()) else (), language=draw(st.none() | st.just("ar")))


@FAST
@given(document=sectioned(), max_tokens=st.integers(1, 64), min_chars=st.integers(1, 6))
def test_chunking_any_unicode_keeps_every_visible_character_once(document: Document, max_tokens: int,
                                                                  min_chars: int) -> None:
    count = HashEncoder().count_tokens
    chunks = chunk_document(document, count, max_tokens, detect=lambda text: None, min_chars=min_chars)
    position = 0
    for ordinal, chunk in enumerate(chunks):
        assert chunk.text == document.text[chunk.start:chunk.end] == chunk.text.strip() != ""
        assert (chunk.ordinal, chunk.id) == (ordinal, chunk_id(document.uri, ordinal, chunk.text))
        assert position <= chunk.start and len(chunk.text) >= min_chars
        position = chunk.end
    if min_chars == 1:  # nothing dropped but headings standing alone: the rest between chunks is whitespace
        assert_gaps_hold_only_lone_headings(document, [(c.start, c.end) for c in chunks])


def _assert_gaps_are_blank(text: str, spans: list[tuple[int, int]]) -> None:
    edges = [0, *(x for span in spans for x in span), len(text)]
    assert all(not text[a:b].strip() for a, b in zip(edges[::2], edges[1::2]))


@FAST
@given(max_tokens=st.integers(-5, 0) | st.integers(1, 3), min_chars=st.integers(-5, 0), text=unicode_text)
def test_bad_chunk_limits_are_the_only_errors(max_tokens: int, min_chars: int, text: str) -> None:
    with pytest.raises(ValueError, match=r"(max_tokens|min_chars) must be at least 1, got -?\d+"):
        chunk_document(Document("file:///x", text), len, max_tokens, min_chars=min_chars)


@FAST
@given(text=unicode_text)
def test_sentence_and_prose_splits_cover_any_unicode(text: str) -> None:
    for spans in (split_sentences(text), split_prose(text)):
        _assert_gaps_are_blank(text, spans)
        assert all(text[a:b] == text[a:b].strip() != "" for a, b in spans)
        assert spans == sorted(spans)


# --- language detection --------------------------------------------------------------------------

LANGUAGES = ("en", "de", "ar", "he", "th", "ja", "zh", "ko", "ru", "hi")


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector.load(LANGUAGES)


@FAST
@given(text=unicode_text)
def test_detection_answers_a_configured_code_or_none(detector: LanguageDetector, text: str) -> None:
    assert detector.detect(text) in {None, *LANGUAGES}


@FAST
@given(tag=st.text(max_size=12) | st.sampled_from(["de-AT", "ZH_hant", "deu", "German", "und", "x-klingon"]))
def test_language_tags_normalise_or_raise_value_error(tag: str) -> None:
    try:
        code = normalize_language(tag)
    except ValueError as exc:
        assert repr(tag) in str(exc)
        return
    assert re.fullmatch("[a-z]{2,3}", code), code
    try:
        assert language_name(code)
    except ValueError as exc:
        assert repr(code) in str(exc)


# --- filters, compiled and run against Postgres -----------------------------------------------------

scalars: st.SearchStrategy[JsonScalar] = st.one_of(
    unicode_text, st.integers(-(2**70), 2**70), st.floats(), st.booleans(), st.none())
# Mostly valid dotted paths of arbitrary parts, sometimes anything at all (empty parts are refused).
keys = st.lists(unicode_text.filter(lambda part: part != "" and "." not in part), min_size=1, max_size=3).map(
    ".".join) | unicode_text | st.sampled_from(["front_matter.product", "a..b", ".", "pages"])
# Values that match the demo manuals, so that some searches return hits to check.
LANGUAGE_CODES = st.sampled_from(["de", "en", "ja", "es", "zh"])
SOURCES = st.sampled_from(["*.md", "*/de/*", "faq.html", "*.htm?", "%", "_", "%.md", "\\", "'"])
moments = st.datetimes(timezones=st.none() | st.just(UTC) | st.just(timezone(timedelta(hours=-11))))


@st.composite
def filters(draw: st.DrawFn) -> Filter:
    after = draw(st.none() | moments)
    # Mostly a window that is the right way round (a reversed one is refused), sometimes any two moments.
    before = draw(st.none() | moments | st.timedeltas(timedelta(0)).map(lambda delta: _later(after, delta)))
    return Filter(languages=tuple(draw(st.lists(LANGUAGE_CODES | unicode_text, max_size=3))),
                  source=draw(st.none() | SOURCES | unicode_text),
                  metadata=draw(st.dictionaries(keys, scalars, max_size=3)), after=after, before=before)


def _later(moment: datetime | None, delta: timedelta) -> datetime | None:
    try:
        return None if moment is None else moment + delta
    except OverflowError:
        return datetime.max


def _storable(where: Filter) -> bool:
    """Whether Postgres can take every value: text without NUL and JSON numbers that are finite."""
    texts = [*where.languages, where.source or "", *where.metadata, *(v for v in where.metadata.values()
                                                                       if isinstance(v, str))]
    finite = all(math.isfinite(v) for v in where.metadata.values() if isinstance(v, float))
    return finite and not any("\x00" in text for text in texts)


def _shape(where: Filter) -> tuple[bool, ...]:
    return (bool(where.languages), bool(where.source), bool(where.after), bool(where.before),
            *(True for _ in where.metadata))


@FAST
@given(data=st.data())
def test_compiled_sql_depends_on_the_filter_shape_never_its_values(data: st.DataObject) -> None:
    try:
        first, second = data.draw(filters()), data.draw(filters())
    except (ValueError, TypeError):
        return  # Filter refused its arguments: the documented outcome
    assume(_shape(first) == _shape(second))
    (sql_a, params_a), (sql_b, params_b) = compile_filter(first), compile_filter(second)
    assert sql_a.as_string(None) == sql_b.as_string(None)
    assert params_a.keys() == params_b.keys()


@pytest.fixture(scope="module")
def searchable(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rosetta]:
    """The demo manuals in their own schema, shared by every example (a fresh schema per example is too slow)."""
    import shutil

    demo = Path(__file__).resolve().parent.parent / "demo" / "manuals"
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(demo, root / "manuals")
    config = Config(db=DbConfig(url=pg_url, data_dir=root / "data", schema=f"t_{uuid.uuid4().hex[:12]}"),
                    models=ModelConfig(encoder=EncoderKind.E5_SMALL), collection="fuzz")
    with Rosetta.open(config, encoder=HashEncoder(dim=64)) as rosetta:
        rosetta.ingest([root / "manuals"])
        yield rosetta


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), query=unicode_text)
def test_any_filter_and_query_give_matching_hits_or_a_documented_error(searchable: Rosetta, data: st.DataObject,
                                                                       query: str) -> None:
    try:
        where = data.draw(filters())
    except (ValueError, TypeError) as exc:  # bad dotted keys, after > before, naive vs aware times
        assert "Filter." in str(exc) or "offset-naive and offset-aware" in str(exc)
        return
    try:
        hits = searchable.search(query, k=5, where=where)
    except ValueError as exc:  # documented: a blank query is refused
        assert not query.strip() and "the query is empty" in str(exc), exc
        event("ValueError: a blank query")
        return
    except StoreError as exc:
        assert not _storable(where), f"{where!r} should have run: {exc}"
        event("StoreError: a NUL character or a non-finite number")
        return
    event("hits" if hits else "no hits")
    assert all(hit.chunk.language in where.languages for hit in hits if where.languages)
    literal = where.source is not None and not ({"*", "?"} & set(where.source)) and "://" not in where.source
    assert all(hit.chunk.document_uri.endswith(where.source or "") for hit in hits if literal)
    before = searchable.status().collections[0]
    assert (before.documents, before.chunks > 0) == (5, True)


@FAST
@given(literal=unicode_text.filter(lambda s: not ({"*", "?"} & set(s))))
def test_a_glob_without_wildcards_is_matched_literally(literal: str) -> None:
    """LIKE's own wildcards (``%``, ``_``) and its escape character are escaped, so they match themselves."""
    expected = "" if "://" in literal else "%"  # a pattern without a scheme matches the end of the URI
    assert _wildcards(glob_to_like(literal)) == expected


def _wildcards(like: str) -> str:
    """The unescaped ``%`` and ``_`` of a LIKE pattern (escape character ``\\``)."""
    found, index = [], 0
    while index < len(like):
        if like[index] == "\\":
            index += 2
            continue
        found += [like[index]] if like[index] in "%_" else []
        index += 1
    return "".join(found)


# --- file names and URIs ---------------------------------------------------------------------------

@FAST
@given(name=st.binary(min_size=1, max_size=40).filter(lambda b: b"/" not in b and b"\x00" not in b))
def test_any_file_name_round_trips_through_its_file_uri(name: bytes) -> None:
    """Names need not be UTF-8 (a Latin-1 ``\xe9``): the URI percent-encodes the bytes, and they come back."""
    path = Path(os.fsdecode(b"/corpus/" + name))
    assert path_from_uri(path.as_uri()) == path


@FAST
@given(uri=st.text(max_size=60) | st.sampled_from(["https://x.example/a%00b.txt", "file:///d/%00.md"]))
def test_a_title_from_any_uri_holds_no_nul(uri: str) -> None:
    """Postgres text cannot hold U+0000, and ``%00`` in a URI would decode to one."""
    assert "\x00" not in title_from_uri(uri)


# --- citation parsing ----------------------------------------------------------------------------

@st.composite
def replies_with_spans(draw: st.DrawFn) -> tuple[str, list[SpanCitation]]:
    text = draw(unicode_text)
    spans = []
    for _ in range(draw(st.integers(0, 5))):
        start, end = sorted(draw(st.tuples(st.integers(0, len(text)), st.integers(0, len(text)))))
        spans.append(SpanCitation(start, end, tuple(draw(st.lists(st.integers(1, 999), min_size=1, max_size=3)))))
    return text, spans


@FAST
@given(reply=replies_with_spans())
def test_inserted_markers_leave_the_text_around_them_untouched(reply: tuple[str, list[SpanCitation]]) -> None:
    text, spans = reply
    marked = insert_markers(text, spans)
    for end in sorted({span.end for span in spans}):  # deleting each insertion, in order, gives the text back
        numbers = dict.fromkeys(n for span in spans if span.end == end for n in span.passages)
        inserted = "".join(f"[{n}]" for n in numbers)
        assert marked[end:end + len(inserted)] == inserted
        marked = marked[:end] + marked[end + len(inserted):]
    assert marked == text


@FAST
@given(text=unicode_text, past=st.integers(1, 5))
def test_a_span_past_the_reply_is_a_value_error(text: str, past: int) -> None:
    with pytest.raises(ValueError, match=f"past the {len(text)}-character reply"):
        insert_markers(text, [SpanCitation(0, len(text) + past, (1,))])


@FAST
@given(text=unicode_text)
def test_claims_and_own_words_of_any_reply(text: str) -> None:
    cited = markers(text)
    for split in (split_sentences, split_prose):
        for claim in claims(text, split):
            assert claim.text.strip() and set(claim.numbers) <= set(cited)
    words = own_words(text)
    assert words == " ".join(words.split())


def test_own_words_hold_no_marker() -> None:
    assert markers(own_words("[[1]1]")) == []
