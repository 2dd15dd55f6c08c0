"""rrf() properties, hybrid search over the embedded Postgres, filters, injection, and translation legs."""

from __future__ import annotations

import re
import string
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.config import Config, GenerationConfig, GeneratorKind, RetrievalConfig, load_config
from rag.errors import ConfigError, GenerationError, StoreError
from rag.rosetta import Rosetta
from rag.search.fusion import rrf
from rag.types import Chunk, Filter, Hit, LegScore, SearchMode, Storage
from rag.words import bm25_idf
from tests.fakes import HashEncoder
from tests.llm_server import MODEL, LlmServer, openai_completion, openai_error, serve
from tests.test_store import OPERATOR_CLASSES


def _hit(chunk_id: str, leg: str = "dense", rank: int = 1) -> Hit:
    chunk = Chunk(chunk_id, f"file:///{chunk_id}", 0, chunk_id, 0, len(chunk_id), "en")
    return Hit(chunk, chunk_id, 1.0, (LegScore(leg, rank, 1.0),), "c")


ids = st.lists(st.sampled_from(list(string.ascii_lowercase[:12])), max_size=10, unique=True)
rankings = st.lists(ids, min_size=1, max_size=4)


def _lists(names: list[list[str]]) -> list[list[Hit]]:
    return [[_hit(n, f"leg{i}", r) for r, n in enumerate(ranking, 1)] for i, ranking in enumerate(names)]


@settings(max_examples=200, deadline=None)
@given(rankings, st.randoms())
def test_rrf_scores_do_not_depend_on_list_order(names: list[list[str]], random: object) -> None:
    shuffled = list(names)
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    before = {h.chunk.id: (round(h.score, 12), h.legs) for h in rrf(_lists(names))}
    after = {h.chunk.id: (round(h.score, 12), tuple(sorted(h.legs, key=lambda x: (x.leg, x.rank, x.score))))
             for h in rrf(_lists(shuffled))}
    assert {k: v[0] for k, v in before.items()} == {k: v[0] for k, v in after.items()}


@settings(max_examples=200, deadline=None)
@given(rankings)
def test_rrf_never_drops_a_hit_and_sums_reciprocal_ranks(names: list[list[str]]) -> None:
    fused = rrf(_lists(names), k=60)
    assert {h.chunk.id for h in fused} == {n for ranking in names for n in ranking}
    for hit in fused:
        expected = sum(1 / (60 + ranking.index(hit.chunk.id) + 1) for ranking in names if hit.chunk.id in ranking)
        assert hit.score == pytest.approx(expected)
    assert [h.score for h in fused] == sorted((h.score for h in fused), reverse=True)


@settings(max_examples=200, deadline=None)
@given(rankings)
def test_an_item_first_in_every_list_is_first(names: list[list[str]]) -> None:
    lists = [["top", *ranking] for ranking in names]
    assert rrf(_lists(lists))[0].chunk.id == "top"


@settings(max_examples=100, deadline=None)
@given(rankings)
def test_an_item_weight_of_zero_removes_that_share_only(names: list[list[str]]) -> None:
    lists = _lists(names)
    silenced = rrf(lists, item_weight=lambda index, hit: 0.0 if index == 0 else 1.0)
    others = {h.chunk.id: h.score for h in rrf(lists[1:])} if len(lists) > 1 else {}
    assert {h.chunk.id: h.score for h in silenced if h.score} == pytest.approx({k: v for k, v in others.items() if v})
    assert {h.chunk.id for h in silenced} == {n for ranking in names for n in ranking}


def test_rrf_weights_missing_items_and_duplicates() -> None:
    fused = rrf([[_hit("a"), _hit("b"), _hit("a")], [_hit("b", "sparse")]], k=1, weights=[2.0, 1.0])
    assert [(h.chunk.id, round(h.score, 6)) for h in fused] == [("b", round(2 / 3 + 1 / 2, 6)), ("a", 1.0)]
    assert [leg.leg for leg in fused[0].legs] == ["dense", "sparse"]
    with pytest.raises(ValueError, match="rrf got 1 rankings but 2 weights"):
        rrf([[_hit("a")]], weights=[1.0, 2.0])


def test_idf_is_positive_and_falls_with_frequency() -> None:
    assert bm25_idf(100, 1) > bm25_idf(100, 50) > bm25_idf(100, 100) > 0


class ScriptedTranslator:
    """Returns fixed translations and records what it was asked."""

    def __init__(self, table: dict[tuple[str, str], str]) -> None:
        self.table = table
        self.asked: list[tuple[str, str]] = []

    def translate(self, text: str, language: str) -> str:
        """The scripted translation."""
        self.asked.append((text, language))
        return self.table[(text, language)]


@pytest.fixture
def rosetta(config: Config, demo_copy: Path) -> Iterator[Rosetta]:
    with Rosetta.open(config) as opened:  # the real offline encoder
        opened.ingest([demo_copy])
        yield opened


DENSE_CASES = [
    ("How often must the air filter be replaced?", "wartungshandbuch.md", "Luftfilter"),
    ("How many years does the warranty last?", "garantia.md", "Cobertura"),
    ("保証期間は何年ですか？", "garantia.md", "Cobertura"),
    ("ファンの音はどのくらい大きいですか？", "faq.html", "How loud is it?"),
    ("What does error code E22 mean?", "wartungshandbuch.md", "Fehlercodes"),
]


@pytest.mark.parametrize(("question", "expected_file", "expected_heading"), DENSE_CASES)
def test_dense_search_finds_the_passage_in_another_language(rosetta: Rosetta, question: str,
                                                            expected_file: str, expected_heading: str) -> None:
    (hit,) = rosetta.search(question, k=1, mode=SearchMode.DENSE)
    assert (Path(hit.chunk.document_uri).name, hit.chunk.heading[-1]) == (expected_file, expected_heading)


def test_cross_language_sparse_weight_decides_whether_words_count_across_languages(rosetta: Rosetta) -> None:
    question = "What does error code E22 mean?"
    retriever = rosetta.retriever()
    # The plain (not language-neutral) fusion: one sparse leg over every language, weighted per language.
    retriever.settings = RetrievalConfig(cross_language_sparse_weight=1.0, language_neutral=False, sparse_weight=1.0)
    trusting = rosetta.search(question, k=3)
    assert trusting[0].chunk.heading[-1] == "Fehlercodes" and trusting[0].chunk.language == "de"
    assert {leg.leg for leg in trusting[0].legs} == {"dense", "sparse"}
    retriever.settings = RetrievalConfig(cross_language_sparse_weight=0.0, language_neutral=False, sparse_weight=1.0)
    default = rosetta.search(question, k=3)
    for hit in default:
        dense, sparse = hit.leg("dense"), hit.leg("sparse")
        expected = (1 / (60 + dense.rank) if dense else 0.0) + (
            1 / (60 + sparse.rank) if sparse and hit.chunk.language == "en" else 0.0)
        assert hit.score == pytest.approx(expected)


def test_every_hit_says_where_it_came_from_and_how_each_leg_ranked_it(rosetta: Rosetta) -> None:
    rosetta.retriever().settings = RetrievalConfig(language_neutral=False, sparse_weight=1.0)
    (hit,) = rosetta.search("Fehlercode E22 Isolationsfehler", k=1)
    assert hit.title == "Heliox HX-20 Heimspeicher – Wartungshandbuch"
    assert hit.chunk.heading == ("Heliox HX-20 Wartungshandbuch", "Fehlercodes")
    assert "E22" in hit.chunk.text
    dense, sparse = hit.leg("dense"), hit.leg("sparse")
    assert dense is not None and sparse is not None and sparse.rank == 1
    assert hit.score == pytest.approx(1 / (60 + dense.rank) + 1 / (60 + sparse.rank))


def test_modes_select_legs(rosetta: Rosetta) -> None:
    dense = rosetta.search("air filter", k=5, mode=SearchMode.DENSE)
    sparse = rosetta.search("Luftfilter", k=5, mode=SearchMode.SPARSE)
    assert all([leg.leg for leg in h.legs] == ["dense"] for h in dense)
    assert all([leg.leg for leg in h.legs] == ["sparse"] for h in sparse)
    assert [h.legs[0].rank for h in dense] == [1, 2, 3, 4, 5]
    assert "Luftfilter" in sparse[0].chunk.text


def test_filters_restrict_language_source_metadata_and_date(rosetta: Rosetta) -> None:
    _check_filters(rosetta)


def _check_filters(rosetta: Rosetta) -> None:
    def files(where: Filter) -> set[str]:
        return {Path(h.chunk.document_uri).name for h in rosetta.search("battery warranty filter", k=20, where=where)}

    assert files(Filter(languages=("ja", "es"))) == {"release-notes.md", "garantia.md"}
    assert files(Filter(source="*.html")) == {"faq.html"}
    assert files(Filter(source="*/zh/*")) == {"quick-start.md"}
    assert files(Filter(metadata={"front_matter.product": "Heliox HX-20"})) == {
        "wartungshandbuch.md", "release-notes.md", "garantia.md", "quick-start.md"}
    assert files(Filter(metadata={"front_matter.version": "2.3"})) == {"wartungshandbuch.md"}
    now = datetime.now(UTC)
    assert len(files(Filter(after=now - timedelta(hours=1)))) == 5
    assert files(Filter(before=now - timedelta(hours=1))) == set()


HOSTILE = [
    "'; DROP TABLE {s}.chunks; --",
    "\" OR 1=1 --",
    "%' OR '1'='1",
    "x'); DELETE FROM {s}.documents; --",
    "\\'; SELECT pg_sleep(5); --",
]


@pytest.mark.parametrize("attack", HOSTILE)
def test_sql_injection_through_every_filter_field_and_the_query(rosetta: Rosetta, attack: str) -> None:
    attack = attack.format(s=rosetta.store.schema)
    for where in (Filter(languages=(attack,)), Filter(source=attack), Filter(metadata={attack: attack}),
                  Filter(metadata={"front_matter.product": attack})):
        assert rosetta.search("filter", k=5, where=where) == []
    hits = rosetta.search(attack, k=5)  # the query is only ever encoded: it finds five distinct stored chunks
    assert len({hit.chunk.id for hit in hits}) == 5 and {hit.collection for hit in hits} == {"test"}
    with pytest.raises(ConfigError, match="is invalid"):
        rosetta.search("filter", collection=attack)
    status = rosetta.status().collections[0]
    assert (status.documents, status.chunks > 0) == (5, True)


def test_missing_collection_is_a_clear_error(rosetta: Rosetta) -> None:
    with pytest.raises(StoreError) as caught:
        rosetta.search("x", collection="nope")
    assert str(caught.value) == ("collection 'nope' does not exist (collections: test); "
                                 "ingest into it first: rosetta ingest PATH --collection nope")


@pytest.mark.parametrize("neutral", [False, True])
def test_translation_adds_sparse_legs_for_the_corpus_languages(config: Config, demo_copy: Path,
                                                               neutral: bool) -> None:
    translator = ScriptedTranslator({
        ("How heavy is it?", "de"): "Wie schwer ist das Gerät?",
        ("How heavy is it?", "zh"): "设备重量",
    })
    # The hashing encoder has no cross-lingual dense space: plain fusion lets the translated words lift the
    # Chinese passage overall; language-neutral fusion lets them lift it within Chinese (rrf_by_language).
    config = Config(db=config.db, models=config.models, collection="t",
                    retrieval=RetrievalConfig(language_neutral=neutral, sparse_weight=1.0))
    with Rosetta.open(config, encoder=HashEncoder(), translator=translator) as rosetta:
        rosetta.ingest([demo_copy / "de", demo_copy / "zh", demo_copy / "en"])
        hits = rosetta.search("How heavy is it?", k=30)
        again = rosetta.search("How heavy is it?", k=30)
        plain = rosetta.search("How heavy is it?", k=30, translate=False)
    assert sorted(translator.asked) == [("How heavy is it?", "de"), ("How heavy is it?", "zh")]  # cached
    assert [h.chunk.id for h in again] == [h.chunk.id for h in hits]
    chinese = [h for h in hits if h.chunk.language == "zh"]
    assert "四十八公斤" in chinese[0].chunk.text
    assert chinese[0].leg("sparse:zh") == LegScore("sparse:zh", 1, chinese[0].leg("sparse:zh").score)  # type: ignore[union-attr]
    assert {leg.leg for h in hits for leg in h.legs} >= {"dense", "sparse:de", "sparse:zh"}
    assert all(not leg.leg.startswith("sparse:") or leg.leg == "sparse:shared" for h in plain for leg in h.legs)
    assert all("四十八公斤" not in h.chunk.text for h in plain[:3])


def test_custom_reranker_reorders_fused_candidates(config: Config, demo_copy: Path) -> None:
    class ReverseReranker:
        def rerank(self, question: str, hits: Sequence[Hit], k: int) -> list[Hit]:
            """Worst first: proves the reranker's order is what comes back."""
            return list(reversed(hits))[:k]

    with Rosetta.open(config, encoder=HashEncoder(), reranker=ReverseReranker()) as rosetta:
        rosetta.ingest([demo_copy])
        fused = rosetta.search("filter", k=30, rerank=False)
        reranked = rosetta.search("filter", k=3)
    assert [h.chunk.id for h in reranked] == [h.chunk.id for h in reversed(fused)][:3]


FUSION_QUESTIONS = ["What does error code E22 mean?", "Luftfilter wechseln", "保証期間は何年ですか？", "zzzz-no-such-term"]


@pytest.mark.parametrize("question", FUSION_QUESTIONS)
@pytest.mark.parametrize("cross", [0.0, 0.5])
def test_fusion_in_sql_equals_rrf_in_python(rosetta: Rosetta, question: str, cross: float) -> None:
    _check_fusion_in_sql(rosetta, question, cross)


def _check_fusion_in_sql(rosetta: Rosetta, question: str, cross: float) -> None:
    rosetta.retriever().settings = RetrievalConfig(cross_language_sparse_weight=cross, language_neutral=False)
    python = rosetta.retriever().search(question, k=20, rerank=False)
    rosetta.retriever().settings = RetrievalConfig(fuse_in_sql=True, cross_language_sparse_weight=cross,
                                                   language_neutral=False)
    in_sql = rosetta.retriever().search(question, k=20, rerank=False)
    assert [h.chunk.id for h in in_sql] == [h.chunk.id for h in python]
    for a, b in zip(in_sql, python):
        assert a.score == pytest.approx(b.score)
        assert [(leg.leg, leg.rank) for leg in a.legs] == [(leg.leg, leg.rank) for leg in b.legs]
        assert [leg.score for leg in a.legs] == pytest.approx([leg.score for leg in b.legs], rel=1e-5)


@pytest.mark.parametrize("storage", list(Storage))
def test_every_storage_passes_the_retrieval_checks(config: Config, demo_copy: Path, storage: Storage) -> None:
    # Every language gets its own HNSW index (exact_scan_below 0), so the language-neutral legs walk the
    # storage's indexes too, not only the plain leg and the fusion in SQL.
    indexed = replace(config, retrieval=replace(config.retrieval, exact_scan_below=0))
    with Rosetta.open(indexed) as rosetta:
        rosetta.ingest([demo_copy], storage=storage)
        assert [c.storage for c in rosetta.status().collections] == [storage]
        with rosetta.database.pool.connection() as conn:
            indexes = conn.execute("SELECT count(*) FROM pg_indexes WHERE schemaname = %s AND indexdef LIKE %s",
                                   (config.db.schema, f"%{OPERATOR_CLASSES[storage]}%")).fetchone()
        assert indexes == (6,)  # the collection's and one per language (de, en, es, ja, zh)
        for question, expected_file, expected_heading in DENSE_CASES:
            (hit,) = rosetta.search(question, k=1, mode=SearchMode.DENSE)
            assert (Path(hit.chunk.document_uri).name, hit.chunk.heading[-1]) == (expected_file, expected_heading)
        _check_filters(rosetta)
        for question in FUSION_QUESTIONS:
            _check_fusion_in_sql(rosetta, question, 0.5)


def test_sparse_leg_returns_only_chunks_sharing_a_term(rosetta: Rosetta) -> None:
    hits = rosetta.search("Isolationsfehler", k=10, mode=SearchMode.SPARSE)
    assert len(hits) == 1 and "Isolationsfehler" in hits[0].chunk.text


@pytest.mark.parametrize("kind", ["cross-encoder", "colbert"])
def test_configured_reranker_runs_through_the_facade(config: Config, demo_copy: Path, kind: str,
                                                     tiny_cross_encoder: Path, tiny_bge_m3: Path) -> None:
    from dataclasses import replace

    from rag.config import RetrievalConfig, parse_reranker

    model = str(tiny_cross_encoder if kind == "cross-encoder" else tiny_bge_m3)
    config = replace(config, retrieval=RetrievalConfig(reranker=parse_reranker(kind), reranker_model=model,
                                                       rerank_candidates=8))
    with Rosetta.open(config, encoder=HashEncoder()) as rosetta:
        rosetta.ingest([demo_copy])
        fused = rosetta.search("Luftfilter", k=8, rerank=False)
        reranked = rosetta.search("Luftfilter", k=3)
    assert [leg.rank for h in reranked for leg in h.legs if leg.leg == "rerank"] == [1, 2, 3]
    assert {h.chunk.id for h in reranked} <= {h.chunk.id for h in fused}
    assert [h.score for h in reranked] == sorted((h.score for h in reranked), reverse=True)


def test_lexical_queries_drop_the_question_languages_stopwords(rosetta: Rosetta) -> None:
    from rag.chunk import encoded_text
    from rag.encoders.lexical import stopword_indices, term_index, terms

    assert term_index("the") in stopword_indices("en") and term_index("filter") not in stopword_indices("en")
    assert stopword_indices(None) == frozenset() and stopword_indices("xx") == frozenset()
    assert rosetta.detector().detect("What is the HX-F07 part for?") == "en"
    hits = rosetta.search("What is the HX-F07 part for?", k=10, mode=SearchMode.SPARSE)
    # No stopword-only match; a chunk's lexical weights cover its heading path too (ingest.heading_context).
    assert hits and all({"hx", "f07", "part"} & set(terms(encoded_text(h.chunk))) for h in hits)
    assert "HX-F07" in hits[0].chunk.text
    only_stopwords = rosetta.search("what is the", k=10, mode=SearchMode.SPARSE)
    assert only_stopwords and all(h.chunk.language == "en" for h in only_stopwords)


def test_translated_questions_search_densely_within_their_language(config: Config, demo_copy: Path) -> None:
    translator = ScriptedTranslator({("How heavy is it?", "de"): "Wie schwer ist das Gerät?",
                                     ("How heavy is it?", "zh"): "设备重量"})
    config = Config(db=config.db, models=config.models, collection="t",
                    retrieval=RetrievalConfig(translate_dense=True))
    with Rosetta.open(config, encoder=HashEncoder(), translator=translator) as rosetta:
        rosetta.ingest([demo_copy / "de", demo_copy / "zh", demo_copy / "en"])
        hits = rosetta.search("How heavy is it?", k=30)
        off = rosetta.search("How heavy is it?", k=30, translate=False)
    legs = {leg.leg: {h.chunk.language for h in hits if h.leg(leg.leg)} for h in hits for leg in h.legs}
    assert legs["dense:de"] == {"de"} and legs["dense:zh"] == {"zh"}
    chinese = [h for h in hits if h.chunk.language == "zh"]
    assert "四十八公斤" in chinese[0].chunk.text and chinese[0].leg("dense:zh") is not None
    assert not any(leg.leg.startswith("dense:") for h in off for leg in h.legs)


@pytest.mark.parametrize(("margin", "language"), [(0.05, "de"), (2.0, "en")])
def test_translated_questions_take_part_in_choosing_the_language(config: Config, demo_copy: Path, margin: float,
                                                                 language: str) -> None:
    # The hashing encoder matches words only: the English question finds English chunks, its German
    # translation the Luftfilter passage. A translation's scores choose between languages, lowered by the margin.
    question = "How often must the intake screen be washed?"
    translator = ScriptedTranslator({(question, "de"): "Wie oft muss der Luftfilter gereinigt werden?"})
    config = Config(db=config.db, models=config.models, collection="t",
                    retrieval=RetrievalConfig(translate_dense=True, translated_choice_margin=margin))
    with Rosetta.open(config, encoder=HashEncoder(dim=1024), translator=translator) as rosetta:
        rosetta.ingest([demo_copy / "de", demo_copy / "en"])
        (original,) = rosetta.search(question, k=1, translate=False)
        (translated,) = rosetta.search(question, k=1)
    assert original.chunk.language == "en"
    assert translated.chunk.language == language
    if language == "de":
        assert translated.chunk.heading[-1] == "Luftfilter" and translated.leg("dense:de") is not None


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LlmServer]:
    yield from serve(monkeypatch)


def test_translate_with_llm_translates_the_question_through_the_configured_model(
        config: Config, demo_copy: Path, server: LlmServer) -> None:
    question = "How often must the intake screen be washed?"
    config = Config(db=config.db, models=config.models, collection="t",
                    generation=GenerationConfig(generator=GeneratorKind.OPENAI, model=MODEL, max_retries=0,
                                                base_url=f"{server.url}/v1"),
                    retrieval=RetrievalConfig(translate_with_llm=True, translate_dense=True))
    with Rosetta.open(config, encoder=HashEncoder(dim=1024)) as rosetta:
        rosetta.ingest([demo_copy / "de", demo_copy / "en"])
        server.script(openai_completion("Wie oft muss der Luftfilter gereinigt werden?"))
        (hit,) = rosetta.search(question, k=1)
        again = rosetta.search(question, k=1)  # the translation is cached: no second request
    assert hit.chunk.heading[-1] == "Luftfilter" and hit.leg("dense:de") is not None and again == [hit]
    (request,) = server.bodies()
    assert question in request["messages"][-1]["content"] and "German" in request["messages"][-1]["content"]


def test_translate_with_llm_without_a_language_model_is_a_clear_error(config: Config, demo_copy: Path) -> None:
    config = Config(db=config.db, models=config.models, collection="t",
                    retrieval=RetrievalConfig(translate_with_llm=True))
    with Rosetta.open(config, encoder=HashEncoder()) as rosetta:
        rosetta.ingest([demo_copy / "de"])
        with pytest.raises(ConfigError, match="retrieval.translate_with_llm translates questions with a language "
                                              "model, but the generator is extractive"):
            rosetta.search("Luftfilter", k=1)


class BarrierTranslator(ScriptedTranslator):
    """Each call waits until ``parties`` calls are in flight at once (a sequential caller times out)."""

    def __init__(self, table: dict[tuple[str, str], str], parties: int) -> None:
        super().__init__(table)
        self.barrier = threading.Barrier(parties, timeout=10)

    def translate(self, text: str, language: str) -> str:
        """The scripted translation, once every party has arrived."""
        self.barrier.wait()
        return super().translate(text, language)


def test_a_question_is_translated_into_every_target_language_at_once(config: Config, demo_copy: Path) -> None:
    question = "How heavy is it?"
    translator = BarrierTranslator({(question, "de"): "Wie schwer ist das Gerät?", (question, "zh"): "设备重量"}, 2)
    config = Config(db=config.db, models=config.models, collection="t",
                    retrieval=RetrievalConfig(translate_dense=True, translate_languages=2))
    with Rosetta.open(config, encoder=HashEncoder(), translator=translator) as rosetta:
        rosetta.ingest([demo_copy / "de", demo_copy / "zh", demo_copy / "en"])
        rosetta.search(question, k=30, mode=SearchMode.DENSE)
        assert translator.asked == []  # the dense mode uses no translation
        hits = rosetta.search(question, k=30)
    assert sorted(translator.asked) == [(question, "de"), (question, "zh")]
    assert {"dense:de", "dense:zh", "sparse:de", "sparse:zh"} <= {leg.leg for h in hits for leg in h.legs}


def test_translate_with_llm_is_read_from_the_environment() -> None:
    assert load_config(environ={}).retrieval.translate_with_llm is False
    assert load_config(environ={"ROSETTA_TRANSLATE_WITH_LLM": "true"}).retrieval.translate_with_llm is True


def test_a_language_with_few_chunks_gets_no_translation(config: Config, demo_copy: Path) -> None:
    question = "How heavy is it?"
    translator = ScriptedTranslator({(question, "de"): "Wie schwer ist das Gerät?", (question, "zh"): "设备重量"})
    config = Config(db=config.db, models=config.models, collection="t")
    with Rosetta.open(config, encoder=HashEncoder(), translator=translator) as rosetta:
        rosetta.ingest([demo_copy / "de", demo_copy / "zh", demo_copy / "en"])
        retriever = rosetta.retriever()
        counts = rosetta.store.status(retriever.collection).languages
        fewer, more = sorted(("de", "zh"), key=lambda code: counts[code])
        assert counts[fewer] < counts[more]
        retriever.settings = RetrievalConfig(translate_min_share=(counts[fewer] + 0.5) / sum(counts.values()))
        rosetta.search(question, k=5)
    assert translator.asked == [(question, more)]


def test_a_failed_translation_fails_the_search_with_the_models_error(config: Config, demo_copy: Path,
                                                                     server: LlmServer) -> None:
    config = Config(db=config.db, models=config.models, collection="t",
                    generation=GenerationConfig(generator=GeneratorKind.OPENAI, model=MODEL, max_retries=0,
                                                base_url=f"{server.url}/v1"),
                    retrieval=RetrievalConfig(translate_with_llm=True))
    with Rosetta.open(config, encoder=HashEncoder(dim=1024)) as rosetta:
        rosetta.ingest([demo_copy / "de", demo_copy / "en"])
        server.script(openai_error(500, "the model is down"))
        with pytest.raises(GenerationError, match="500"):
            rosetta.search("How often must the intake screen be washed?", k=1)


def test_a_language_filter_narrows_what_is_translated(config: Config, demo_copy: Path) -> None:
    question = "How heavy is it?"
    translator = ScriptedTranslator({(question, "zh"): "设备重量"})
    config = Config(db=config.db, models=config.models, collection="t", retrieval=RetrievalConfig(translate_languages=1))
    with Rosetta.open(config, encoder=HashEncoder(), translator=translator) as rosetta:
        rosetta.ingest([demo_copy / "de", demo_copy / "zh", demo_copy / "en"])
        counts = rosetta.store.status(rosetta.retriever().collection).languages
        assert counts["de"] > counts["zh"]  # unfiltered, the one translation would be into German
        hits = rosetta.search(question, k=10, where=Filter(languages=("zh",)))
    assert translator.asked == [(question, "zh")]
    assert hits and {h.chunk.language for h in hits} == {"zh"} and hits[0].leg("dense:zh") is not None


def test_a_translator_given_to_open_wins_over_translate_with_llm(config: Config, demo_copy: Path) -> None:
    question = "How heavy is it?"
    translator = ScriptedTranslator({(question, "de"): "Wie schwer ist das Gerät?"})
    config = Config(db=config.db, models=config.models, collection="t",
                    retrieval=RetrievalConfig(translate_with_llm=True))  # no LLM configured: an error without it
    with Rosetta.open(config, encoder=HashEncoder(), translator=translator) as rosetta:
        rosetta.ingest([demo_copy / "de", demo_copy / "en"])
        rosetta.search(question, k=3)
    assert translator.asked == [(question, "de")]


@pytest.mark.parametrize(("setting", "message"), [
    ("translate_min_share = 1.5", "retrieval.translate_min_share must be in [0, 1], got 1.5"),
    ("translated_choice_margin = -0.1", ("retrieval.translated_choice_margin must be a number >= 0 (0.05 is the "
                                         "measured default), got -0.1")),
    ("translated_choice_margin = nan", "retrieval.translated_choice_margin must be a number >= 0"),
    ("shared_choice_weight = -0.1", ("retrieval weights must be numbers >= 0, got dense 1.0, sparse 0.1, latent "
                                     "0.15, latent choice 0.2, shared choice -0.1")),
    ("shared_choice_weight = inf", ("retrieval weights must be numbers >= 0, got dense 1.0, sparse 0.1, latent "
                                    "0.15, latent choice 0.2, shared choice inf")),
])
def test_bad_retrieval_settings_are_refused_with_the_value(tmp_path: Path, setting: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"[retrieval]\n{setting}\n")
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(environ={"ROSETTA_CONFIG": str(path)})


def test_translation_settings_are_read_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[retrieval]\ntranslate_min_share = 0.1\ntranslated_choice_margin = 0.08\n"
                    "translate_languages = 2\ntranslate_dense = false\ntranslate_with_llm = true\n")
    r = load_config(environ={"ROSETTA_CONFIG": str(path)}).retrieval
    assert (r.translate_min_share, r.translated_choice_margin, r.translate_languages, r.translate_dense,
            r.translate_with_llm) == (0.1, 0.08, 2, False, True)


def test_the_translation_cache_keeps_the_most_recent_only(config: Config, demo_copy: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rag.search.retriever.TRANSLATIONS_KEPT", 1)
    first, second = "How heavy is it?", "How loud is it?"
    translator = ScriptedTranslator({(first, "de"): "Wie schwer ist das Gerät?", (second, "de"): "Wie laut ist es?"})
    config = Config(db=config.db, models=config.models, collection="t")
    with Rosetta.open(config, encoder=HashEncoder(), translator=translator) as rosetta:
        rosetta.ingest([demo_copy / "de", demo_copy / "en"])
        for question in (first, first, second, first):
            rosetta.search(question, k=3)
    assert translator.asked == [(first, "de"), (second, "de"), (first, "de")]  # the second pushed the first out
