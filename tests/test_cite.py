"""Citation parsing and checking: markers, claims, exact quotes, similarity support, the answer's language."""

from __future__ import annotations

from functools import partial

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rag.answer.citations import (
    cite,
    claims,
    insert_markers,
    markers,
    own_words,
    strip_markers,
    support_threshold,
)
from rag.answer.dialogue import Passage, SpanCitation
from rag.answer.types import Citation, Problem, ProblemKind
from rag.chunk import split_prose, split_sentences
from rag.types import Chunk, Hit
from tests.fakes import HashEncoder

GERMAN = "Wartung. Der Luftfilter muss alle sechs Monate gewechselt werden. Danach blinkt die LED grün."
OFFSET = 100


def _passage(number: int, text: str, language: str = "de") -> Passage:
    chunk = Chunk(f"c{number}", f"file:///manual-{number}.md", 0, text, OFFSET, OFFSET + len(text), language,
                  page=3, heading=("Wartung", "Luftfilter"))
    return Passage(number, Hit(chunk, f"Handbuch {number}", 1.0))


def _detect_by_word(text: str) -> str | None:
    """A stand-in detector: French if 'le'/'la' appear, English if 'the', else unknown."""
    words = set(text.lower().split())
    return "fr" if words & {"le", "la"} else "en" if "the" in words else None


@pytest.mark.parametrize(("text", "expected"), [
    ("No citation here.", []),
    ("Filter [1]. LED [2][3].", [1, 2, 3]),
    ("Both [1, 3] and [2，4].", [1, 3, 2, 4]),
    ("全角［2］と【5】", [2, 5]),
    ("Not a marker: [x] or [] or [12345].", []),
])
def test_markers_in_every_bracket_style(text: str, expected: list[int]) -> None:
    assert markers(text) == expected


def test_insert_markers_writes_span_citations_at_their_ends() -> None:
    text = "The filter is changed every six months. The LED blinks."
    spans = [SpanCitation(4, 38, (2,)), SpanCitation(40, 55, (1, 2)), SpanCitation(4, 38, (3, 2))]
    assert insert_markers(text, spans) == "The filter is changed every six months[2][3]. The LED blinks.[1][2]"
    with pytest.raises(ValueError, match="past the 10-character reply"):
        insert_markers("0123456789", [SpanCitation(0, 11, (1,))])


def test_claims_attach_trailing_markers_and_strip_bullets() -> None:
    text = "Intro without citation.\n> Der Filter wird gewechselt. [1]\n- Step two [2]. Step three. [3][2]"
    found = claims(text, split_sentences)
    assert [(c.text, c.numbers) for c in found] == [
        ("Intro without citation.", ()),
        ("Der Filter wird gewechselt.", (1,)),
        ("Step two .", (2,)),
        ("Step three.", (3, 2)),
    ]


def test_own_words_leave_out_quotes_block_quotes_and_markers() -> None:
    text = 'The manual says „Der Filter wird gewechselt“ [1].\n> Danach blinkt die LED. [2]\nSo: «gris» [3].'
    assert own_words(text) == "The manual says . So: ."
    assert strip_markers("A [1] b [2][3].") == "A b ."


def test_a_verbatim_quote_is_verified_with_its_exact_source_offsets() -> None:
    passage = _passage(1, GERMAN)
    result = cite("The manual says: „Der Luftfilter muss alle sechs Monate gewechselt werden.“ [1]", [passage],
                  "en", encoder=HashEncoder(), split=split_sentences, detect=_detect_by_word, threshold=0.8)
    quote = "Der Luftfilter muss alle sechs Monate gewechselt werden."
    start = GERMAN.index(quote)
    assert result.citations == (Citation(
        marker=1, chunk_id="c1", uri="file:///manual-1.md", title="Handbuch 1", page=3,
        heading=("Wartung", "Luftfilter"), language="de", passage=GERMAN, quote=quote,
        quote_start=OFFSET + start, quote_end=OFFSET + start + len(quote),
        claim="The manual says: „Der Luftfilter muss alle sechs Monate gewechselt werden.“", support=1.0,
        verified=True),)
    assert result.problems == ()
    assert result.detected_language == "en"  # from "The manual says: ." alone, the quote left out


def test_similarity_support_picks_the_best_sentence_and_applies_the_threshold() -> None:
    passage = _passage(1, GERMAN)
    claim = "Luftfilter sechs Monate gewechselt"  # shares terms with the second sentence only, not verbatim
    loose = cite(f"{claim} [1]", [passage], "de", encoder=HashEncoder(dim=512), split=split_sentences,
                 detect=lambda text: "de", threshold=0.5)
    (citation,) = loose.citations
    assert citation.quote == "Der Luftfilter muss alle sechs Monate gewechselt werden."
    assert 0.5 < citation.support < 1.0 and citation.verified
    strict = cite(f"{claim} [1]", [passage], "de", encoder=HashEncoder(dim=512), split=split_sentences,
                  detect=lambda text: "de", threshold=0.99)
    assert not strict.citations[0].verified
    assert [p.kind for p in strict.problems] == [ProblemKind.UNSUPPORTED]


def test_unknown_markers_wrong_language_and_missing_citations_are_problems() -> None:
    passages = [_passage(1, GERMAN)]
    check = partial(cite, encoder=HashEncoder(), split=split_sentences, detect=_detect_by_word, threshold=0.5)
    wrong = check("Le filtre est changé tous les six mois [7].", passages, "en")
    assert wrong.citations == ()
    assert wrong.problems == (
        Problem(ProblemKind.WRONG_LANGUAGE, "the answer is in 'fr' but was asked for in 'en'"),
        Problem(ProblemKind.UNKNOWN_MARKER, "[7] cite no passage (there are 1, numbered from 1)"),
    )
    bare = check("The filter is changed often.", passages, "en")
    assert bare.problems == (Problem(ProblemKind.NO_CITATIONS, "the answer cites no passage"),)
    nothing = check("The passages do not say.", [], "en")
    assert nothing.problems == ()


def test_support_thresholds_by_encoder() -> None:
    assert support_threshold("e5-small") == 0.80
    assert support_threshold("bge-m3:/models/bge-m3") == 0.6
    assert support_threshold("something-else") == 0.6


@given(st.text(max_size=300))
def test_parsing_never_fails_on_arbitrary_text(text: str) -> None:
    found = claims(text, split_sentences)
    assert all(isinstance(n, int) and n >= 0 for claim in found for n in claim.numbers)
    assert set(markers(text)) >= {n for claim in found for n in claim.numbers}
    own_words(text)
    result = cite(text, [_passage(1, GERMAN)], "en", encoder=HashEncoder(), split=split_sentences,
                  detect=lambda words: None, threshold=0.5)
    assert {c.marker for c in result.citations} <= {1}


def test_brackets_inside_quoted_source_text_do_not_cite() -> None:
    source = "Die Temperatur steigt um 0,3 Grad pro Jahrzehnt [21]. Danach sinkt sie."
    passage = _passage(1, source)
    text = "> Die Temperatur steigt um 0,3 Grad pro Jahrzehnt [21]. [1]\nHe wrote \"see [9]\" in the margin [1]."
    assert markers(text) == [1, 1]
    assert [(c.text, c.numbers) for c in claims(text, split_sentences)] == [
        ("Die Temperatur steigt um 0,3 Grad pro Jahrzehnt [21].", (1,)),
        ('He wrote "see [9]" in the margin .', (1,)),
    ]
    result = cite(text, [passage], "en", encoder=HashEncoder(), split=split_sentences, detect=lambda words: "en",
                  threshold=0.99)
    assert result.citations[0].support == 1.0 and result.citations[0].quote == source.split(" Danach")[0]
    assert [p.kind for p in result.problems] == [ProblemKind.UNSUPPORTED]  # the second claim, not an unknown [21]


@pytest.mark.parametrize("quote", ["请在应用中查看错误代码。", "请在应用中 查看错误代码。"])
def test_a_quote_of_hard_wrapped_chinese_is_verbatim_with_or_without_a_space_at_the_break(quote: str) -> None:
    text = "红色常亮表示出现故障，请在应用中\n查看错误代码。"
    result = cite(f"> {quote} [1]", [_passage(1, text, "zh")], "zh", encoder=HashEncoder(), split=split_prose,
                  detect=lambda _: "zh", threshold=0.99)
    (citation,) = result.citations
    assert (citation.support, citation.verified, citation.quote) == (1.0, True, text)
