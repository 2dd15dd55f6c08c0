"""Mixed-language pools: seeded assignment, gold in the pool, the cross/same split and bias@1, and the CLI."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evals.cli import eval_app
from evals.datasets import Passage, Query, Relevance, Span, load_xquad
from evals.metrics import Scores, mean
from evals.mixed import MixedQuery, assign, identity, mixed_queries, parse_seeds, run, split
from evals.report import Leg, MixedScore, Report, Split, System, to_json
from evals.retrieval import DatasetKind
from rag.config import Config
from rag.errors import ConfigError
from rag.types import Document
from tests.fakes import HashEncoder
from tests.test_evals import write_xquad

LANGS = ("en", "de", "zh")


def _parallel(count: int, langs: tuple[str, ...] = LANGS) -> dict[str, tuple[Document, ...]]:
    return {lang: tuple(Document(f"xquad://{lang}/{i // 4}/{i % 4}", f"paragraph {i} in {lang}", language=lang)
                        for i in range(count)) for lang in langs}


# --- assignment ----------------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_pool_and_another_seed_another() -> None:
    documents = _parallel(40)
    first = [d.uri for d in assign(documents, LANGS, 0)]
    assert first == [d.uri for d in assign(documents, LANGS, 0)]
    assert first == [d.uri for d in assign(documents, tuple(reversed(LANGS)), 0)]  # language order is irrelevant
    assert first != [d.uri for d in assign(documents, LANGS, 1)]
    # pinned: random.Random(seed).choice over the sorted languages, documents in sorted identity order
    assert [uri.split("/")[2] for uri in first[:8]] == ["en", "en", "de", "en", "zh", "en", "en", "en"]
    assert Counter(uri.split("/")[2] for uri in first) == {"en": 17, "zh": 13, "de": 10}


def test_every_document_is_in_the_pool_once_in_a_language_it_exists_in() -> None:
    documents = {**_parallel(12, ("en",)), **_parallel(5, ("de",))}  # de has only the first 5
    pool = assign(documents, ("en", "de"), 3)
    assert sorted(identity(d, d.language or "") for d in pool) == sorted(identity(d, "en") for d in documents["en"])
    assert {d.language for d in pool[5:]} == {"en"}  # the rest exist in English only
    assert all(d in documents[d.language or ""] for d in pool)


def test_a_uri_without_its_language_is_refused() -> None:
    with pytest.raises(ConfigError) as error:
        identity(Document("beir://d1", "text", language="en"), "en")
    assert str(error.value) == ("beir://d1: --pool mixed needs URIs like scheme://en/path that name the same "
                                "document in every language; use --pool pairs for this dataset")


def test_parse_seeds() -> None:
    assert parse_seeds("0, 2,1,2") == (0, 2, 1)
    with pytest.raises(ConfigError) as error:
        parse_seeds("0-2")
    assert str(error.value) == "--seeds takes comma-separated integers such as 0,1,2, got '0-2'"


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_each_query_is_judged_against_its_document_in_the_drawn_language(tmp_path: Path, seed: int) -> None:
    dataset = load_xquad(write_xquad(tmp_path), ["en", "de"])
    pool = assign(dataset.documents, ("en", "de"), seed)  # paragraph i (question q{i}) is pool[i]
    assert [(q.query.id, q.query.language, q.gold, q.gold_langs, q.cross)
            for q in mixed_queries(dataset, ("en", "de"), pool)] == [
        (f"q{i}", lang, frozenset({Span(pool[i].uri)}), frozenset({pool[i].language}), pool[i].language != lang)
        for lang in ("en", "de") for i in range(3)]


# --- scoring (pure) ------------------------------------------------------------------------------


def _query(lang: str, gold: str) -> MixedQuery:
    return MixedQuery(Query(gold, f"question in {lang}", lang), frozenset({Span(gold)}),
                      frozenset({gold.split("/")[2]}))


def test_split_scores_cross_and_same_apart_and_bias_counts_top_hits_in_the_query_language() -> None:
    queries = [_query("en", "x://de/a"), _query("en", "x://zh/c"), _query("de", "x://en/b"),
               _query("en", "x://en/d")]
    rankings = [
        [Passage("x://en/b", 0, 5, "en"), Passage("x://de/a", 0, 5, "de")],  # cross, gold 2nd, top hit English
        [Passage("x://zh/c", 0, 5, "zh")],  # cross, gold 1st
        [],  # cross, nothing found: scores 0 and not biased
        [Passage("x://de/a", 0, 5, "de"), Passage("x://de/a", 5, 9, "de"), Passage("x://en/d", 0, 5, "en")],  # same
    ]
    second = Scores(1 / math.log2(3), 0.0, 1.0, 1.0, 0.5, 1)
    assert split(queries, rankings, Relevance.DOCUMENT) == Split(
        mean([second, Scores(1.0, 1.0, 1.0, 1.0, 1.0, 1), Scores(0.0, 0.0, 0.0, 0.0, 0.0, 1)]), second, 1 / 3)


def test_bias_reads_the_hit_language_not_the_uri() -> None:
    query = _query("en", "x://de/a")
    assert split([query], [[Passage("x://de/z", 0, 5, "en")]], Relevance.DOCUMENT).bias1 == 1.0
    assert split([query], [[Passage("x://en/z", 0, 5, None)]], Relevance.DOCUMENT).bias1 == 0.0


def _mixed(seed: int, lang: str, cross_r1: float, bias: float) -> MixedScore:
    cross = Scores(cross_r1, cross_r1, cross_r1, cross_r1, cross_r1, 2)
    return MixedScore(System.ROSETTA, Leg.DENSE, seed, lang, Split(cross, Scores(1.0, 1.0, 1.0, 1.0, 1.0, 1), bias))


def test_mixed_json_means_over_query_languages_then_seeds() -> None:
    report = Report((), (), {}, (_mixed(0, "en", 0.5, 1.0), _mixed(0, "de", 1.0, 0.5),
                                 _mixed(1, "en", 0.0, 0.0), _mixed(1, "de", 0.5, 0.5)))
    data = json.loads(json.dumps(to_json(report)))
    assert set(data) == {"pairs", "summary", "skipped", "config", "mixed"} and data["pairs"] == []
    run = data["mixed"]["rosetta/dense"]
    assert run["seeds"] == [0, 1]
    assert {seed: (s["cross"]["recall@1"], s["bias@1"]) for seed, s in run["per_seed"].items()} == {
        "0": (0.75, 0.75), "1": (0.25, 0.25)}
    assert {lang: (s["cross"]["mrr@10"], s["bias@1"]) for lang, s in run["per_query_lang"].items()} == {
        "en": (0.25, 0.5), "de": (0.75, 0.5)}
    assert run["mean"] == {"cross": {"ndcg@10": 0.5, "recall@1": 0.5, "recall@5": 0.5, "recall@10": 0.5,
                                     "mrr@10": 0.5, "n": 8},
                           "same": {"ndcg@10": 1.0, "recall@1": 1.0, "recall@5": 1.0, "recall@10": 1.0,
                                    "mrr@10": 1.0, "n": 4},
                           "bias@1": 0.5}


# --- end to end ----------------------------------------------------------------------------------


def test_cli_mixed_pool_end_to_end(config: Config, tmp_path: Path) -> None:
    assert config.db.url is not None
    env = {"ROSETTA_DATABASE_URL": config.db.url, "ROSETTA_SCHEMA": config.db.schema, "NO_COLOR": "1",
           "COLUMNS": "200"}
    out = tmp_path / "out"
    result = CliRunner().invoke(eval_app, [
        "retrieval", "--data", str(write_xquad(tmp_path / "xquad")), "--out", str(out), "--query-langs", "en,de",
        "--doc-langs", "en,de", "--legs", "dense,hybrid", "--system", "both", "--pool", "mixed", "--seeds", "0,1",
        "--data-dir", str(config.db.data_dir)], env=env)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "metrics.json").read_text())
    assert (data["pairs"], data["summary"]) == ([], {})
    assert data["skipped"] == ["llamaindex-pgvector: the peer does not run on a mixed pool"]
    assert data["config"]["collections"] == {"0": "eval-xquad-mixed-de-en-s0", "1": "eval-xquad-mixed-de-en-s1"}
    assert all(sum(counts.values()) == 3 for counts in data["config"]["assigned"].values())
    assert set(data["mixed"]) == {"rosetta/dense", "rosetta/hybrid"}
    for leg in data["mixed"].values():
        assert set(leg) == {"seeds", "per_seed", "per_query_lang", "mean"} and leg["seeds"] == [0, 1]
        assert set(leg["per_seed"]) == {"0", "1"} and set(leg["per_query_lang"]) == {"en", "de"}
        assert leg["mean"]["cross"]["n"] + leg["mean"]["same"]["n"] == 2 * 6  # two seeds x six questions
        assert set(leg["mean"]) == {"cross", "same", "bias@1"}
    assert not (out / "heatmap.png").exists()
    assert "rosetta/dense" in result.stdout and "bias@1" in result.stdout


def _write_beir(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    corpus = [{"_id": "d1", "text": "The filter is changed every month.", "language": "en"},
              {"_id": "d2", "text": "Paris ist die Hauptstadt Frankreichs.", "language": "de"}]
    queries = [{"_id": "q1", "text": "How often is the filter changed?", "language": "en"},
               {"_id": "q2", "text": "Was ist die Hauptstadt?", "language": "de"},
               {"_id": "q3", "text": "Wie oft wird der Filter gewechselt?", "language": "de"}]
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (root / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries))
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq3\td1\t1\n")
    return root


def test_a_beir_corpus_is_one_unseeded_pool(config: Config, tmp_path: Path) -> None:
    report = run(DatasetKind.BEIR, _write_beir(tmp_path / "beir"), config, tmp_path / "out", legs=(Leg.DENSE,),
                 seeds=(0, 1), encoder=HashEncoder())
    assert report.skipped[0] == "--seeds: ignored; a BEIR corpus has no parallel documents, so it is one " \
                                "unseeded pool"
    assert report.config["collections"] == {"unseeded": "eval-beir-beir-mixed-de-en"}
    assert [(m.seed, m.query_lang, m.split.cross.n, m.split.same.n) for m in report.mixed] == [
        (None, "en", 0, 1), (None, "de", 1, 1)]
    data = json.loads((tmp_path / "out" / "metrics.json").read_text())["mixed"]["rosetta/dense"]
    assert (data["seeds"], data["per_seed"]) == ([], {})
