"""Language-neutral scoring as pure functions: shrunk language means, centred cosines, the interleaving of
languages, language-stratified fusion, and the words that count across languages."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.centering import (
    Centering,
    LanguageMeans,
    Products,
    centred_cosine,
    interleave,
    score_chunk,
    shared_evidence,
    stratified,
    translated_choice,
)
from rag.encoders.lexical import shared_terms, term_index
from rag.search.fusion import rrf_by_language
from rag.types import Chunk, Hit, LegScore
from rag.words import held_words, shared_shares, surviving_words, terms


def _unit(vector: np.ndarray) -> np.ndarray:
    unit: np.ndarray = vector / np.linalg.norm(vector)
    return unit


def _means(rng: np.random.Generator, counts: dict[str, int], dim: int = 8, prior: float = 2.0) -> LanguageMeans:
    sums = {code: rng.normal(size=(n, dim)).sum(axis=0) for code, n in counts.items()}
    return LanguageMeans(counts, sums, prior)


def test_a_language_with_one_chunk_is_shrunk_toward_the_collection_not_wiped_out() -> None:
    chunk = np.array([1.0, 0.0, 0.0])
    others = np.array([[0.0, 1.0, 0.0], [0.0, 0.8, 0.6]])
    means = LanguageMeans({"it": 1, "de": 2}, {"it": chunk, "de": others.sum(axis=0)}, prior=2.0)
    mean = (chunk + others.sum(axis=0)) / 3
    centroid = means.centroid("it")
    assert centroid is not None and np.allclose(centroid, (chunk + 2 * mean) / 3)
    # Alone in its language the chunk keeps the direction that sets it apart from the collection.
    assert np.allclose(_unit(chunk - centroid), _unit(chunk - mean))
    without_prior = LanguageMeans(means.counts, means.sums, prior=0.0).centroid("it")
    assert without_prior is not None and np.allclose(chunk - without_prior, 0.0)


def test_a_small_language_keeps_its_topic_when_shrunk_toward_its_reference_offset() -> None:
    # Axes: 0 and 1 the Spanish and German offsets, 2 a warranty topic, 3 and 4 other topics. The Spanish
    # chunks are one warranty document; the German ones cover the other topics.
    es_offset, de_offset, warranty = np.eye(5)[0], np.eye(5)[1], np.eye(5)[2]
    spanish = np.stack([es_offset + warranty + 0.1 * np.eye(5)[i] for i in (3, 4, 3)])
    german = np.stack([de_offset + np.eye(5)[i] for i in (3, 4, 3, 4, 3, 4)])
    counts, sums = {"es": 3, "de": 6, "it": 1}, {"es": spanish.sum(axis=0), "de": german.sum(axis=0),
                                                 "it": np.eye(5)[3]}
    offsets = {"es": 2 * es_offset, "de": 2 * de_offset}  # the reference text's means, whatever their scale
    plain = LanguageMeans(counts, sums, prior=2.0)
    referenced = LanguageMeans(counts, sums, prior=2.0, offsets=offsets, reference_prior=30.0)
    mean = plain.mean()
    assert mean is not None
    # The reference offsets less their mix weighted by the languages' chunks, scaled to fit the collection's
    # language means (here half of it: the reference means are twice the chunks' offsets).
    raw = {code: offsets[code] - (3 * offsets["es"] + 6 * offsets["de"]) / 9 for code in offsets}
    scale = sum(counts[code] * (sums[code] / counts[code] - mean) @ raw[code] for code in raw) / sum(
        counts[code] * raw[code] @ raw[code] for code in raw)
    assert scale == pytest.approx(0.5, abs=0.05)
    shift = scale * raw["es"]
    assert np.allclose(referenced.shift("es"), shift)
    assert np.allclose(np.asarray(referenced.centroid("es")), (sums["es"] + 30 * (mean + shift)) / 33)
    # A language without reference text keeps ``prior`` toward the plain mean.
    assert np.allclose(np.asarray(referenced.centroid("it")), np.asarray(plain.centroid("it")))
    question = warranty + 0.5 * de_offset  # a German warranty question
    cosines = {}
    for name, means in (("plain", plain), ("referenced", referenced)):
        centroid = means.centroid("es")
        assert centroid is not None
        cosines[name] = float(_unit(means.query(question, "de")) @ _unit(spanish[0] - centroid))
    # The plain centroid is 3/5 Spanish warranty text and takes most of the topic out of the Spanish chunk.
    assert cosines["referenced"] > cosines["plain"] + 0.2
    with pytest.raises(ValueError, match="'it' needs chunks and a reference offset"):
        referenced.shift("it")
    with pytest.raises(ValueError, match="reference_prior must be a number >= 0 or None, got -1"):
        LanguageMeans(counts, sums, offsets=offsets, reference_prior=-1.0)


def test_the_question_loses_its_own_languages_mean_only_when_the_collection_holds_it() -> None:
    means = _means(np.random.default_rng(1), {"de": 5, "ja": 3})
    question = np.ones(8)
    ja = means.centroid("ja")
    assert ja is not None
    assert np.allclose(means.query(question, "ja"), question - 0.5 * ja)  # query_weight defaults to 0.5
    assert np.allclose(means.query(question, "en"), question) and np.allclose(means.query(question, None), question)


def test_bad_statistics_are_refused_with_the_values() -> None:
    with pytest.raises(ValueError, match="counts and sums name different languages"):
        LanguageMeans({"de": 1}, {"en": np.ones(3)})
    with pytest.raises(ValueError, match="every language needs >= 1 chunk"):
        LanguageMeans({"de": 0}, {"de": np.ones(3)})
    with pytest.raises(ValueError, match="sentence_weight must be in"):
        Centering(LanguageMeans({}, {}), LanguageMeans({}, {}), 1.5)
    with pytest.raises(ValueError, match="latent and shared weights must be numbers >= 0, got 0.0, 0.0, nan"):
        Centering(LanguageMeans({}, {}), LanguageMeans({}, {}), shared_choice_weight=math.nan)


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=0, max_value=2**31 - 1))
def test_the_centred_cosine_from_sql_products_equals_the_vector_formula(seed: int) -> None:
    rng = np.random.default_rng(seed)
    query, vector, centroid = rng.normal(size=(3, 16))
    expected = float(query @ (vector - centroid) / (np.linalg.norm(query) * np.linalg.norm(vector - centroid)))
    found = centred_cosine(query, centroid, float(query @ vector), float(vector @ centroid), float(np.linalg.norm(vector)))
    assert found == pytest.approx(expected, abs=1e-9)
    means = LanguageMeans({"xx": 3}, {"xx": centroid * 3}, prior=0.0)
    assert means.similarities(query, vector[np.newaxis, :], ["xx"])[0] == pytest.approx(expected, abs=1e-9)


def test_a_chunk_is_scored_by_its_vector_and_its_best_sentence() -> None:
    means = LanguageMeans({}, {})
    centering = Centering(means, means, sentence_weight=0.5)
    q = np.array([1.0, 0.0])
    chunk = Products(query_dot=0.2, plain_dot=0.2, centroid_dot=0.0, norm=1.0)
    sentences = [Products(0.9, 0.9, 0.0, 1.0), Products(0.1, 0.1, 0.0, 1.0)]
    scored = score_chunk(centering, q, q, "de", chunk, sentences)
    assert (scored.plain, scored.neutral) == pytest.approx((0.55, 0.55))
    alone = score_chunk(centering, q, q, "de", chunk, [])  # a one-sentence chunk is its own best sentence
    assert (alone.plain, alone.neutral) == pytest.approx((0.2, 0.2))


def test_the_single_score_is_one_linear_score_for_the_order_and_the_choice() -> None:
    from rag.centering import SingleScore

    means = LanguageMeans({}, {})
    single = SingleScore(neutral_chunk=0.6, neutral_sentence=0.4, plain_chunk=-0.8, plain_sentence=0.15, latent=0.65,
                         own_language=-0.02)
    centering = Centering(means, means, single=single)
    q = np.array([1.0, 0.0])
    chunk = Products(query_dot=0.2, plain_dot=0.3, centroid_dot=0.0, norm=1.0)  # centred 0.2, plain 0.3
    sentences = [Products(0.9, 0.5, 0.0, 1.0), Products(0.1, 0.7, 0.0, 1.0)]  # best: centred 0.9, plain 0.7
    expected = 0.6 * 0.2 + 0.4 * 0.9 - 0.8 * 0.3 + 0.15 * 0.7 + 0.65 * 0.5
    other = score_chunk(centering, q, q, "de", chunk, sentences, latent=0.5)
    own = score_chunk(centering, q, q, "de", chunk, sentences, latent=0.5, own=True)
    assert (other.plain, other.neutral) == pytest.approx((expected, expected))
    assert (own.plain, own.neutral) == pytest.approx((expected - 0.02, expected - 0.02))
    assert centering.uses_latent and not replace(centering, single=replace(single, latent=0.0)).uses_latent
    # Only the choice: the order within a language stays the split plain score (latent terms of other languages).
    choosing = replace(centering, latent_weight=0.15, single=replace(single, order_share=0.0))
    other = score_chunk(choosing, q, q, "de", chunk, sentences, latent=0.5)
    own = score_chunk(choosing, q, q, "de", chunk, sentences, latent=0.5, own=True)
    assert (other.plain, other.neutral) == pytest.approx((0.5 * 0.7 + 0.5 * 0.3 + 0.15 * 0.5, expected))
    assert (own.plain, own.neutral) == pytest.approx((0.5 * 0.7 + 0.5 * 0.3, expected - 0.02))
    # A share of the order: a quarter the single score, the rest the split order.
    blended = score_chunk(replace(choosing, single=replace(single, order_share=0.25)), q, q, "de", chunk, sentences,
                          latent=0.5)
    assert (blended.plain, blended.neutral) == pytest.approx(
        (0.25 * expected + 0.75 * (0.5 * 0.7 + 0.5 * 0.3 + 0.15 * 0.5), expected))
    with pytest.raises(ValueError, match="single score weights must be finite numbers"):
        replace(single, plain_chunk=math.inf)
    with pytest.raises(ValueError, match="order_share must be in"):
        replace(single, order_share=1.5)


def _hit(name: str, language: str, score: float = 0.0, leg: str = "dense", rank: int = 1) -> Hit:
    chunk = Chunk(name, f"file:///{name}", 0, name, 0, len(name), language)
    return Hit(chunk, name, score, (LegScore(leg, rank, score),), "c")


languages_and_scores = st.lists(st.tuples(st.sampled_from(["de", "en", "ja"]), st.floats(-1, 1)), max_size=12)


@settings(max_examples=200, deadline=None)
@given(languages_and_scores, st.randoms())
def test_interleaving_keeps_each_languages_order_and_takes_its_scores(items: list[tuple[str, float]],
                                                                      random: object) -> None:
    hits = [_hit(f"h{i}", code, score) for i, (code, score) in enumerate(items)]
    ordered = {code: [h for h in hits if h.chunk.language == code] for code in {h.chunk.language for h in hits}}
    for group in ordered.values():
        random.shuffle(group)  # type: ignore[attr-defined]
    slots = {code: [h.score for h in group] for code, group in ordered.items()}
    merged = interleave(ordered, slots)
    assert [h.score for h in merged] == sorted((h.score for h in merged), reverse=True)
    for code, group in ordered.items():
        mine = [h for h in merged if h.chunk.language == code]
        assert [h.chunk.id for h in mine] == [h.chunk.id for h in group]
        assert [h.score for h in mine] == sorted(slots[code], reverse=True)


def test_stratified_scores_order_within_a_language_by_plain_and_across_by_neutral() -> None:
    languages = ["de", "de", "ja", "ja"]
    plain = [0.1, 0.9, 0.95, 0.2]  # the Japanese sentences are closer in plain cosine (same language)
    neutral = [0.30, 0.35, 0.10, 0.05]
    assert stratified(languages, plain, neutral) == [0.30, 0.35, 0.10, 0.05]
    assert stratified(["de", "de"], [0.9, 0.1], [0.1, 0.3]) == [0.3, 0.1]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["de", "en", "ja"]), min_size=1, max_size=10), st.randoms())
def test_lexical_evidence_reorders_within_a_language_but_never_moves_a_language(
        codes: list[str], random: object) -> None:
    dense = [_hit(f"h{i}", code, score=1.0 - i / 100, rank=i + 1) for i, code in enumerate(codes)]
    sparse = list(dense)
    random.shuffle(sparse)  # type: ignore[attr-defined]
    sparse = [_hit(h.chunk.id, h.chunk.language, 1.0, "sparse", rank) for rank, h in enumerate(sparse, 1)]
    fused = rrf_by_language(dense, [dense, sparse])
    assert [h.chunk.language for h in fused] == [h.chunk.language for h in dense]
    assert sorted(h.chunk.id for h in fused) == sorted(h.chunk.id for h in dense)
    assert all({leg.leg for leg in h.legs} == {"dense", "sparse"} for h in fused)


def test_a_chunk_first_in_every_leg_of_its_language_leads_that_language() -> None:
    dense = [_hit("de1", "de", 0.5, rank=1), _hit("ja1", "ja", 0.4, rank=2), _hit("de2", "de", 0.3, rank=3)]
    sparse = [_hit("de2", "de", 9.0, "sparse", 1)]
    fused = rrf_by_language(dense, [dense, sparse])
    assert [(h.chunk.id, h.score) for h in fused] == [("de2", 0.5), ("ja1", 0.4), ("de1", 0.3)]


def test_a_translation_scores_its_language_slot_by_slot_lowered_by_the_margin() -> None:
    dense = [_hit("ja1", "ja", 0.40), _hit("de1", "de", 0.30), _hit("de2", "de", 0.25), _hit("en1", "en", 0.20),
             _hit("ko1", "ko", 0.35)]
    translated = {"de": [_hit("de2", "de", 0.60, "dense:de"), _hit("de3", "de", 0.10, "dense:de"),
                         _hit("de1", "de", 0.08, "dense:de")],
                  "en": [], "ko": [_hit("ko1", "ko", 0.15, "dense:ko")]}
    choice = translated_choice(dense, translated, 0.05)
    assert choice["ja"] == [0.40]  # not translated
    assert choice["de"] == pytest.approx([0.55, 0.20, 0.03])  # max(0.30, 0.60), max(0.25, 0.10), 0.08; less 0.05
    assert choice["ko"] == pytest.approx([0.30])  # the original's better score, lowered all the same
    assert choice["en"] == pytest.approx([0.15])  # a translation that found nothing: still a translated language
    fused = rrf_by_language(dense, [dense, translated["de"]], choice=choice)
    assert [h.chunk.language for h in fused][:2] == ["de", "ja"]  # the translation moved German first
    assert [h.chunk.language for h in rrf_by_language(dense, [dense, translated["de"]])][:2] == ["ja", "ko"]


@pytest.mark.parametrize(("text", "shared"), [
    ("What does error code E22 mean?", {"e22"}),
    ("HX-F07 フィルターの部品番号は？", {"hx", "f07"}),
    ("OpenTelemetry Collector の設定", {"opentelemetry", "collector"}),
    ("Wie lange gilt die Garantie?", set()),
    ("保証期間は何年ですか？", set()),
    ("What is the HX-F07 part for?", {"f07"}),
    ("ปี๒๕๖๐คืออะไร", set()),  # Thai digits inside Thai prose: no word of their own
    ("ปี 2560 คืออะไร", {"2560"}),
])
def test_words_that_survive_translation(text: str, shared: set[str]) -> None:
    assert surviving_words(text) == shared
    ids = shared_terms(text)
    assert {t for t in terms(text) if term_index(t) in ids} == shared


@pytest.mark.parametrize(("text", "shared"), [
    ("E22是什么意思？", {"e22"}),
    ("OpenTelemetryコレクタの設定", {"opentelemetry"}),
    ("Ｅ２２とは何ですか？", {"e22"}),
])
def test_a_code_written_against_chinese_or_japanese_is_a_word_of_its_own(text: str, shared: set[str]) -> None:
    assert surviving_words(text) == shared
    assert shared_terms(text) == {term_index(word) for word in shared}
    # The question's lexical terms hold them too, so the sparse:shared leg searches for them.
    assert {t for t in terms(text) if term_index(t) in shared_terms(text)} == shared


def test_held_words_are_whole_words_in_any_width() -> None:
    assert held_words("エラーコードＥ２２が表示されます", frozenset({"e22"})) == {"e22"}
    assert held_words("Fehler E22: Isolationsfehler", frozenset({"e22", "f07"})) == {"e22"}
    assert held_words("Modell E220 und HX-F070", frozenset({"e22", "f07"})) == set()
    assert held_words("OpenTelemetryコレクタ", frozenset({"opentelemetry"})) == {"opentelemetry"}


def test_a_text_holding_the_questions_codes_scores_by_their_rarity() -> None:
    texts = ["Der Schalter HX-BK1 ist optional.", "La batería HX-20 dura 10 años.", "The HX-20 fan.", "Ohne Code."]
    words = surviving_words("Qué es el HX-BK1 del HX-20?")
    assert words == {"bk1", "20"}  # "HX" has no digit: no code alone
    shares = shared_shares(texts, words)
    assert shares[3] == 0.0 and shares[1] == shares[2]
    # "bk1" is in one text, "20" in two: the rarer code outweighs the commoner number.
    assert shares[0] > shares[1] > 0.0
    assert shared_shares(["HX-BK1 HX-20"], words) == [pytest.approx(1.0)]
    assert shared_shares(texts, frozenset()) == [0.0] * 4


def test_shared_evidence_lifts_the_chunk_in_any_language_and_only_its_choice_score() -> None:
    hits = [_hit("Der Schalter HX-BK1", "de", 0.20), _hit("Garantía", "es", 0.25), _hit("The HX-BK1 fan", "en", 0.1)]
    dense, translated = shared_evidence([hits[:2], hits[2:]], frozenset({"bk1"}), 0.1)
    assert [h.score for h in dense] == pytest.approx([0.30, 0.25]) and [h.score for h in translated] == [0.2]
    assert [h.chunk.id for h in dense] == [h.chunk.id for h in hits[:2]]  # the order (the dense ranks) is kept
    assert shared_evidence([hits], frozenset({"bk1"}), 0.0) == [hits]
    assert shared_evidence([hits], frozenset(), 0.1) == [hits]


def test_latent_scores_are_the_cosines_of_the_latent_vectors() -> None:
    from rag.centering import LatentQuery
    from rag.types import SparseVector

    dim = 40
    chunks = LanguageMeans({"de": 3, "ja": 1}, {"de": np.ones(4), "ja": np.ones(4)}, prior=2.0, query_weight=0.5)
    centering = Centering(chunks, chunks, latent_weight=0.3)
    question = SparseVector({1: 0.6, 5: 0.8}, dim)
    scoring = LatentQuery.of(centering, question, "de")
    assert scoring is not None
    q = np.zeros(dim)
    q[[1, 5]] = [0.6, 0.8]
    chunk = SparseVector({1: 0.3, 7: 0.9, 12: 0.1}, dim)
    d = np.zeros(dim)
    d[[1, 7, 12]] = [0.3, 0.9, 0.1]
    # A chunk in the question's own language keeps its dense order: no latent score there.
    assert scoring.score_vectors(["de"], [chunk]) == [0.0]
    assert scoring.score_vectors(["ja", "ja", "ja"], [chunk, None, SparseVector({}, dim)]) == [
        pytest.approx(q @ d / np.linalg.norm(q) / np.linalg.norm(d)), 0.0, 0.0]
    assert LatentQuery.of(replace(centering, latent_weight=0.0), question, "de") is None
    assert LatentQuery.of(replace(centering, latent_weight=0.0, latent_choice_weight=0.2), question, "de") is not None
