"""ExtractiveGenerator: exact shape with the hashing fake encoder, cross-lingual choice with the real e5-small."""

from __future__ import annotations

import numpy as np
import pytest

from rag.answer.dialogue import GenerationRequest, Generator, Message, Passage, Reply, Role
from rag.answer.generators.extractive import ExtractiveGenerator
from rag.answer.prompts import extractive_frame
from rag.centering import Centering, LanguageMeans
from rag.chunk import split_sentences
from rag.config import RetrievalConfig
from rag.encoders.e5 import E5SmallEncoder
from rag.types import Chunk, Hit, one_line
from tests.fakes import HashEncoder, LatentHashEncoder

EN = extractive_frame("en")
QUESTION = "How often must the air filter be replaced?"


def _passage(number: int, text: str, language: str = "en") -> Passage:
    chunk = Chunk(f"c{number}", f"file:///manual-{number}.txt", 0, text, 0, len(text), language)
    return Passage(number, Hit(chunk, f"Manual {number}", 0.5))


def _request(question: str, passages: tuple[Passage, ...], language: str = "en") -> GenerationRequest:
    return GenerationRequest((Message(Role.USER, question),), passages, question, language)


def _oracle(encoder: HashEncoder, question: str, sentences: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Sentences sorted by cosine similarity to the question, computed independently, best first."""
    query = encoder.encode_queries([question])[0].dense
    vectors = [e.dense for e in encoder.encode_passages([text for text, _ in sentences])]
    scores = [float(np.dot(v, query) / (np.linalg.norm(v) * np.linalg.norm(query))) for v in vectors]
    return [sentences[i] for i in sorted(range(len(sentences)), key=lambda i: -scores[i])]


PASSAGES = (
    _passage(1, "The pump starts when the pressure drops. Replace the air filter every six months."),
    _passage(2, "See 1.2\n\nThe air filter sits behind the front cover. Clean the cover with a dry cloth."),
)
SENTENCES = [("The pump starts when the pressure drops.", 1), ("Replace the air filter every six months.", 1),
             ("The air filter sits behind the front cover.", 2), ("Clean the cover with a dry cloth.", 2)]


def test_quotes_the_best_sentences_in_the_exact_shape() -> None:
    encoder = HashEncoder(dim=512)
    generator: Generator = ExtractiveGenerator(encoder, split_sentences, sentences=2, passage_weight=0.0)
    reply = generator.generate(_request(QUESTION, PASSAGES))
    best = _oracle(HashEncoder(dim=512), QUESTION, SENTENCES)[:2]
    assert reply == Reply(f"{EN.intro}\n\n> {best[0][0]} [{best[0][1]}]\n> {best[1][0]} [{best[1][1]}]",
                          model="extractive", seconds=reply.seconds)
    # "See 1.2" is too short to quote; every sentence went to the encoder in one batch.
    assert encoder.calls == [[QUESTION], [text for text, _ in SENTENCES]]
    assert (generator.name, generator.supports_tools, generator.is_llm, generator.native_documents) == (
        "extractive", False, False, False)


def test_a_margin_keeps_only_the_quotes_near_the_best() -> None:
    request = _request(QUESTION, PASSAGES)
    generator = ExtractiveGenerator(HashEncoder(dim=512), split_sentences, sentences=3, passage_weight=0.0)
    first, second, third = generator.quotes(request.question, request.passages)
    assert first.score > second.score > third.score
    between = (first.score - second.score + first.score - third.score) / 2
    for margin, kept in ((None, 3), (0.0, 1), (between, 2)):
        generator.margin = margin
        assert generator.quotes(request.question, request.passages) == [first, second, third][:kept]
    for bad in (-0.1, float("nan")):
        with pytest.raises(ValueError, match=rf"^the extractive margin must be >= 0, got {bad}$"):
            ExtractiveGenerator(HashEncoder(), split_sentences, margin=bad)


def test_stream_yields_lines_then_the_reply() -> None:
    generator = ExtractiveGenerator(HashEncoder(dim=512), split_sentences)
    pieces = list(generator.stream(_request(QUESTION, PASSAGES)))
    reply = pieces[-1]
    assert isinstance(reply, Reply)
    lines = pieces[:-1]
    assert "".join(str(line) for line in lines) == reply.text
    assert lines == [f"{EN.intro}\n", "\n", *[f"{line}\n" for line in reply.text.splitlines()[2:-1]],
                     reply.text.splitlines()[-1]]
    assert len(lines) == 2 + 3


def test_no_passages_says_so_in_the_answer_language() -> None:
    encoder = HashEncoder()
    reply = ExtractiveGenerator(encoder, split_sentences).generate(_request("Wie oft?", (), "de"))
    de = extractive_frame("de")
    assert reply.text == f"{de.intro}\n\n{de.none}"
    assert encoder.calls == []


def test_identical_sentences_are_quoted_once_and_newlines_become_spaces() -> None:
    passages = (_passage(1, "Replace the air\nfilter every six months."),
                _passage(2, "Replace the air filter every six months."),
                _passage(3, "Check the seal of the front cover."))
    whole = ExtractiveGenerator(HashEncoder(dim=512), lambda text: [(0, len(text))], sentences=3)
    reply = whole.generate(_request(QUESTION, passages))
    assert reply.text == f"{EN.intro}\n\n> Replace the air filter every six months. [1]\n" \
                         "> Check the seal of the front cover. [3]"


def test_hard_wrapped_chinese_and_japanese_are_quoted_without_a_space_at_the_break() -> None:
    passages = (_passage(1, "红色常亮表示出现故障，请在应用中\n查看错误代码。", "zh"),
                _passage(2, "アプリの「省電力モード」を\nオンにすると、ファンが停止します。", "ja"),
                _passage(3, "한국어 설명서의\n문장입니다.", "ko"))
    whole = ExtractiveGenerator(HashEncoder(dim=512), lambda text: [(0, len(text))], sentences=3)
    quotes = {quote.passage: quote.text for quote in whole.quotes(QUESTION, passages)}
    assert quotes == {1: "红色常亮表示出现故障，请在应用中查看错误代码。", 2: "アプリの「省電力モード」をオンにすると、ファンが停止します。",
                      3: "한국어 설명서의 문장입니다."}


@pytest.mark.parametrize(("text", "joined", "loose"), [
    ("请在应用中\r\n  查看", "请在应用中查看", "请在应用中查看"),  # one line break: joined
    ("中 文", "中 文", "中文"),  # a space the writer typed stays (compared loosely, it does not count)
    ("第一段。\n\n第二段。", "第一段。 第二段。", "第一段。第二段。"),  # a blank line is a paragraph break
    ("ｶﾀｶﾅ\n𠮷野家", "ｶﾀｶﾅ𠮷野家", "ｶﾀｶﾅ𠮷野家"),  # half-width kana, a supplementary-plane Han character
    ("air\nfilter", "air filter", "air filter"), ("한국어\n문장", "한국어 문장", "한국어 문장"),
])
def test_one_line_joins_chinese_and_japanese_line_breaks_only(text: str, joined: str, loose: str) -> None:
    assert (one_line(text), one_line(text, loose=True)) == (joined, loose)


def test_a_passage_without_a_quotable_sentence_is_quoted_whole_if_it_can_be() -> None:
    passages = (_passage(1, "フィルター交換。"), _passage(2, "1.2 — 3.4"))
    reply = ExtractiveGenerator(HashEncoder(), lambda text: [], sentences=3).generate(_request(QUESTION, passages))
    assert reply.text == f"{EN.intro}\n\n> フィルター交換。 [1]"


def test_language_without_a_frame_gets_english() -> None:
    reply = ExtractiveGenerator(HashEncoder(), split_sentences).generate(_request(QUESTION, (), "xx"))
    assert reply.text == f"{EN.intro}\n\n{EN.none}"


def test_needs_at_least_one_sentence() -> None:
    with pytest.raises(ValueError, match=r"^the extractive generator quotes >= 1 sentences, got 0$"):
        ExtractiveGenerator(HashEncoder(), split_sentences, sentences=0)
    with pytest.raises(ValueError, match=r"passage_weight must be in \[0, 1\], got 1.5"):
        ExtractiveGenerator(HashEncoder(), split_sentences, passage_weight=1.5)


# --- the real offline encoder, across languages ------------------------------------------------------


@pytest.fixture(scope="module")
def e5() -> E5SmallEncoder:
    return E5SmallEncoder.load()


BATTERY = (
    _passage(1, "Der Speicher lädt sich tagsüber über die Solaranlage auf. Die Anzeige leuchtet grün.", "de"),
    _passage(2, "Der Luftfilter muss alle sechs Monate gewechselt werden. Das Gehäuse ist aus Aluminium.", "de"),
    _passage(3, "Bei Frost schaltet das Gerät in den Ruhemodus.", "de"),
)


@pytest.mark.parametrize(("question", "language"), [(QUESTION, "en"), (QUESTION, "ja"),
                                                    ("フィルターはどのくらいの頻度で交換しますか？", "ja")])
def test_e5_finds_the_german_sentence_across_languages(e5: E5SmallEncoder, question: str, language: str) -> None:
    reply = ExtractiveGenerator(e5, split_sentences, sentences=2).generate(_request(question, BATTERY, language))
    intro, blank, first, second = reply.text.split("\n")
    assert (intro, blank) == (extractive_frame(language).intro, "")
    assert first == "> Der Luftfilter muss alle sechs Monate gewechselt werden. [2]"
    assert second.startswith("> ") and second.endswith("]")


def test_questions_and_headings_are_not_quoted() -> None:
    passages = (_passage(1, "## Filter\n\nHow often must the air filter be replaced? Every six months, replace it."),)
    quotes = ExtractiveGenerator(HashEncoder(dim=512), split_sentences, sentences=3).quotes(QUESTION, passages)
    assert [q.text for q in quotes] == ["Every six months, replace it."]


def test_the_passage_counts_so_a_sentence_of_the_relevant_passage_wins() -> None:
    """With passage_weight 0.5, half a sentence's score is its passage's: the filter passage lends its sentences weight."""
    encoder = HashEncoder(dim=512)
    passages = (_passage(1, "The air filter must be replaced. Every six months, open the left cover of the filter."),
                _passage(2, "How often the pump must start depends on the pressure. The pump is loud."))
    sentences = [("The air filter must be replaced.", 1), ("Every six months, open the left cover of the filter.", 1),
                 ("How often the pump must start depends on the pressure.", 2), ("The pump is loud.", 2)]
    query = encoder.encode_queries([QUESTION])[0].dense

    def cosine(text: str) -> float:
        vector = encoder.encode_passages([text])[0].dense
        return float(np.dot(vector, query) / (np.linalg.norm(vector) * np.linalg.norm(query)))

    expected = sorted(sentences, key=lambda s: -(0.5 * cosine(s[0]) + 0.5 * cosine(passages[s[1] - 1].hit.chunk.text)))
    blended = ExtractiveGenerator(encoder, split_sentences, sentences=4, passage_weight=0.5).quotes(QUESTION, passages)
    assert [(q.text, q.passage) for q in blended] == expected
    alone = ExtractiveGenerator(encoder, split_sentences, sentences=4, passage_weight=0.0).quotes(QUESTION, passages)
    assert [(q.text, q.passage) for q in alone] == _oracle(encoder, QUESTION, sentences)


@pytest.mark.parametrize(("weight", "first"), [(0.0, 1), (1.0, 2)])
def test_latent_terms_of_other_languages_count_when_sentences_of_languages_compete(weight: float,
                                                                                  first: int) -> None:
    # As in search (tests/test_latent.py): the English sentence shares the question's words, the Spanish one
    # names its concept (warranty) in its own words; only the latent terms can tell.
    encoder = LatentHashEncoder(dim=512)
    passages = (_passage(1, "The fan is quiet for a long time at night.", "en"),
                _passage(2, "La garantía dura diez años desde la compra.", "es"))
    quoted = _quoted_passages(encoder, passages, "How long is the warranty?", "en", latent_choice_weight=weight)
    assert quoted == [first, 3 - first]  # one sentence from each passage
    assert (["How long is the warranty?"] in encoder.latent_calls) is (weight > 0)


def _quoted_passages(encoder: HashEncoder, passages: tuple[Passage, ...], question: str, language: str,
                     latent_choice_weight: float = 0.0, shared_choice_weight: float = 0.0) -> list[int]:
    """The passages of the two best quotes, each passage's language centred on the passage alone."""
    vectors = {p.hit.chunk.language: encoder.encode_passages([p.hit.chunk.text])[0].dense for p in passages}
    means = LanguageMeans({code: 1 for code in vectors}, vectors)
    generator = ExtractiveGenerator(encoder, split_sentences, sentences=2, passage_weight=0.0)
    return [quote.passage for quote in generator.quotes(question, passages, language,
                                                        Centering(means, means, latent_choice_weight=latent_choice_weight,
                                                                  shared_choice_weight=shared_choice_weight))]


@pytest.mark.parametrize(("weight", "first"), [(0.0, 1), (RetrievalConfig().shared_choice_weight, 2)])
def test_a_sentence_holding_the_questions_code_counts_when_sentences_of_languages_compete(weight: float,
                                                                                          first: int) -> None:
    # As in search (tests/test_neutral_search.py): the Spanish sentence shares the question's words, only the
    # English one names the part the question asks about; the default weight is enough to choose it.
    passages = (_passage(1, "El manual explica qué es el equipo.", "es"),
                _passage(2, "The backup switch HX-BK1 is optional.", "en"))
    quoted = _quoted_passages(HashEncoder(dim=512), passages, "¿Qué es el HX-BK1?", "es", shared_choice_weight=weight)
    assert quoted == [first, 3 - first]
