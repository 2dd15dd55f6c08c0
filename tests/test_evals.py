"""Retrieval evaluation: metric values and properties, dataset loaders, unit deduplication."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evals.datasets import Passage, Query, Relevance, Span, limit_queries, load_beir, load_xquad
from evals.manuals import hugo_slug, load_manuals
from evals.metrics import Scores, mean, mrr_at, ndcg_at, recall_at, score
from evals.report import Leg, System
from evals.retrieval import parse_legs, parse_systems, units
from rag.errors import ConfigError, ConnectorError

# --- metrics -------------------------------------------------------------------------------------


def test_metrics_on_a_hand_computed_ranking() -> None:
    ranked, relevant = ["a", "b", "c", "d"], {"b", "d"}
    assert [recall_at(ranked, relevant, k) for k in (1, 2, 3, 4)] == [0.0, 0.5, 0.5, 1.0]
    assert mrr_at(ranked, relevant) == 0.5
    assert ndcg_at(ranked, relevant) == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3)))


def test_one_relevant_at_rank_three() -> None:
    assert score(["x", "y", "g"], {"g"}) == Scores(ndcg10=0.5, recall1=0.0, recall5=1.0, recall10=1.0,
                                                    mrr10=1 / 3, n=1)


def test_a_relevant_id_beyond_the_cutoff_counts_nothing() -> None:
    ranked = [f"d{i}" for i in range(10)] + ["g"]
    assert score(ranked, {"g"}) == Scores(0.0, 0.0, 0.0, 0.0, 0.0, 1)


def test_ndcg_ideal_is_capped_at_k() -> None:
    relevant = {f"r{i}" for i in range(12)}
    assert ndcg_at(sorted(relevant), relevant, 10) == pytest.approx(1.0)
    assert recall_at(sorted(relevant), relevant, 10) == pytest.approx(10 / 12)


def test_mean_averages_each_metric_and_sums_n() -> None:
    assert mean([Scores(1.0, 1.0, 1.0, 1.0, 1.0, 3), Scores(0.5, 0.0, 1.0, 1.0, 0.25, 2)]) == \
        Scores(0.75, 0.5, 1.0, 1.0, 0.625, 5)
    assert mean([]).n == 0


@pytest.mark.parametrize(("ranked", "relevant", "message"), [
    (["a", "a"], {"a"}, "ranked ids must be unique (dedupe hits first), repeated: ['a']"),
    (["a"], set(), "relevant must hold at least one id; skip queries without judgements"),
])
def test_metrics_reject_bad_input(ranked: list[str], relevant: set[str], message: str) -> None:
    with pytest.raises(ValueError) as error:
        score(ranked, relevant)
    assert str(error.value) == message


_ids = st.lists(st.sampled_from([f"d{i}" for i in range(20)]), unique=True, max_size=15)


@given(_ids, st.sets(st.sampled_from([f"d{i}" for i in range(20)]), min_size=1, max_size=5))
def test_metrics_are_bounded_and_recall_grows_with_k(ranked: list[str], relevant: set[str]) -> None:
    s = score(ranked, relevant)
    # Against a plain restatement of each definition (Scores itself refuses values outside [0, 1]).
    found = [unit in relevant for unit in ranked]
    first = next((rank for rank, hit in enumerate(found[:10], 1) if hit), None)
    assert (s.recall1, s.recall5, s.recall10) == tuple(sum(found[:k]) / len(relevant) for k in (1, 5, 10))
    assert s.mrr10 == (1 / first if first else 0.0)
    ideal = sum(1 / math.log2(rank + 1) for rank in range(1, min(10, len(relevant)) + 1))
    assert s.ndcg10 == pytest.approx(sum(1 / math.log2(r + 1) for r, hit in enumerate(found[:10], 1) if hit) / ideal)
    assert s.recall1 <= s.recall5 <= s.recall10
    assert (s.mrr10 > 0) == (s.recall10 > 0) == (s.ndcg10 > 0)


@given(_ids, st.sets(st.sampled_from([f"d{i}" for i in range(20)]), min_size=1, max_size=5))
def test_moving_relevant_ids_to_the_front_is_ideal_and_never_worse(ranked: list[str], relevant: set[str]) -> None:
    ideal = sorted(relevant) + [unit for unit in ranked if unit not in relevant]
    assert ndcg_at(ideal, relevant) == pytest.approx(1.0)
    assert mrr_at(ideal, relevant) == 1.0
    assert ndcg_at(ideal, relevant) >= ndcg_at(ranked, relevant) - 1e-12


# --- units ---------------------------------------------------------------------------------------


def test_units_keep_each_document_at_its_best_rank() -> None:
    passages = [Passage("x://b", 0, 5), Passage("x://a", 0, 5), Passage("x://b", 5, 9), Passage("x://c", 0, 2)]
    assert units(passages, frozenset({Span("x://a")}), Relevance.DOCUMENT) == ["x://b", "x://a", "x://c"]


def test_units_map_chunks_inside_a_gold_section_to_that_section() -> None:
    gold = frozenset({Span("m://d", 10, 50)})
    passages = [Passage("m://d", 0, 10), Passage("m://d", 12, 30), Passage("m://d", 30, 50), Passage("m://d", 40, 60)]
    assert units(passages, gold, Relevance.SECTION) == ["m://d#0-10", "m://d#10-50", "m://d#40-60"]


# --- datasets ------------------------------------------------------------------------------------

PARAGRAPHS = {
    "en": [("The filter of the coffee machine is changed every month.", "How often is the filter changed?"),
           ("Paris is the capital and largest city of France.", "What is the capital of France?"),
           ("Photosynthesis turns light into chemical energy in plants.", "What does photosynthesis turn light into?")],
    "de": [("Der Filter der Kaffeemaschine wird jeden Monat gewechselt.", "Wie oft wird der Filter gewechselt?"),
           ("Paris ist die Hauptstadt und größte Stadt Frankreichs.", "Was ist die Hauptstadt Frankreichs?"),
           ("Photosynthese wandelt Licht in Pflanzen in chemische Energie um.", "Was wandelt Photosynthese um?")],
}


def write_xquad(root: Path) -> Path:
    """Three parallel paragraphs (two articles) in English and German, one question each."""
    root.mkdir(parents=True, exist_ok=True)
    for lang, items in PARAGRAPHS.items():
        paragraphs = [{"context": context, "qas": [{"id": f"q{i}", "question": question,
                                                    "answers": [{"answer_start": 0, "text": context[:5]}]}]}
                      for i, (context, question) in enumerate(items)]
        data = {"version": "1.0", "data": [{"title": "A", "paragraphs": paragraphs[:2]},
                                           {"title": "B", "paragraphs": paragraphs[2:]}]}
        (root / f"xquad.{lang}.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return root


def test_xquad_documents_queries_and_parallel_gold(tmp_path: Path) -> None:
    dataset = load_xquad(write_xquad(tmp_path), ["en", "de"])
    assert [d.uri for d in dataset.documents["de"]] == ["xquad://de/0/0", "xquad://de/0/1", "xquad://de/1/0"]
    assert dataset.documents["de"][2].language == "de"
    assert dataset.queries["en"][1] == Query("q1", "What is the capital of France?", "en")
    assert dataset.judged("de", "en")[2] == (Query("q2", "Was wandelt Photosynthese um?", "de"),
                                             frozenset({Span("xquad://en/1/0")}))
    assert [q.id for q in limit_queries(dataset, 2).queries["de"]] == ["q0", "q1"]


def test_xquad_missing_language_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConnectorError) as error:
        load_xquad(write_xquad(tmp_path), ["th"])
    assert str(error.value) == f"{tmp_path / 'xquad.th.json'}: no such file; check --data and the language codes"


def test_beir_folder(tmp_path: Path) -> None:
    (tmp_path / "qrels").mkdir()
    corpus = [{"_id": "d1", "title": "Filter", "text": "Change it monthly.", "language": "en"},
              {"_id": "d2", "title": "", "text": "Monatlich wechseln.", "language": "de"},
              {"_id": "d3", "text": "No language given."}]
    queries = [{"_id": "q1", "text": "How often?", "language": "en"}, {"_id": "q2", "text": "Which one?"}]
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in corpus) + "\n")
    (tmp_path / "queries.jsonl").write_text("\n".join(json.dumps(r) for r in queries) + "\n")
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t2\nq2\td3\t1\n"
                                                  "q2\td1\t0\n")
    dataset = load_beir(tmp_path)
    assert dataset.documents["en"][0].text == "Filter\n\nChange it monthly."
    assert [d.uri for d in dataset.documents["und"]] == ["beir://d3"]
    assert dict(dataset.gold) == {("q1", "en"): frozenset({Span("beir://d1")}),
                                  ("q1", "de"): frozenset({Span("beir://d2")}),
                                  ("q2", "und"): frozenset({Span("beir://d3")})}
    assert dataset.queries["und"] == (Query("q2", "Which one?", "und"),)


@pytest.mark.parametrize(("heading", "slug"), [
    ("What is OpenTelemetry?", "what-is-opentelemetry"),
    ("Set up the `otelcol` binary", "set-up-the-otelcol-binary"),
    ("[Traces](/docs/traces/) and *spans*", "traces-and-spans"),
    ("OTLP/HTTP exporter", "otlphttp-exporter"),
    ("Use auto_instrumentation - v2", "use-auto_instrumentation---v2"),
])
def test_hugo_slug(heading: str, slug: str) -> None:
    assert hugo_slug(heading) == slug


EN_PAGE = "---\ntitle: Start\n---\n\nIntro.\n\n## Getting Started\n\nRun it.\n\n### Install the SDK\n\npip.\n\n" \
          "## Next steps\n\nRead more.\n"
JA_PAGE = "---\ntitle: 始め\n---\n\n紹介。\n\n## はじめに {#getting-started}\n\n実行。\n\n### SDKのインストール " \
          "{#install-the-sdk}\n\npip。\n\n## 古い見出し {#old-heading}\n\n古い。\n\n## 次へ\n\nもっと。\n"


def write_manuals(root: Path) -> Path:
    """One page in English (no anchors) and Japanese (anchors on all but the last heading)."""
    for lang, page in (("en", EN_PAGE), ("ja", JA_PAGE)):
        (root / lang / "docs").mkdir(parents=True)
        (root / lang / "docs" / "start.md").write_text(page, encoding="utf-8")
    return root


def test_manuals_align_sections_by_anchor(tmp_path: Path) -> None:
    dataset = load_manuals(write_manuals(tmp_path), ["en", "ja"])
    en = dataset.documents["en"][0]
    assert en.uri == "manuals://en/docs/start.md" and en.language == "en"
    assert [q.text for q in dataset.queries["ja"]] == ["はじめに", "SDKのインストール", "古い見出し"]
    judged = dataset.judged("ja", "en")
    assert [q.id for q, _ in judged] == ["docs/start.md#getting-started", "docs/start.md#install-the-sdk"]
    (span,) = judged[0][1]
    assert en.text[span.start:span.end] == "## Getting Started\n\nRun it.\n\n### Install the SDK\n\npip.\n\n"
    assert dataset.notes == {"anchor_match": {"ja": {"matched": 2, "explicit": 3, "rate": 0.6667}}}


def test_manuals_missing_language_folder(tmp_path: Path) -> None:
    with pytest.raises(ConnectorError) as error:
        load_manuals(write_manuals(tmp_path), ["zh"])
    assert str(error.value) == f"{tmp_path / 'zh'}: no such directory; the manuals hold one folder per language " \
                               "(en, ja, ...)"


def test_parse_legs_and_systems() -> None:
    assert parse_legs("dense, hybrid+rerank,dense") == (Leg.DENSE, Leg.HYBRID_RERANK)
    assert parse_systems("both") == (System.ROSETTA, System.LLAMAINDEX)
    with pytest.raises(ConfigError) as error:
        parse_legs("dense,bm25")
    assert str(error.value) == "unknown leg in 'dense,bm25'; choose from: dense, sparse, hybrid, hybrid+rerank"
