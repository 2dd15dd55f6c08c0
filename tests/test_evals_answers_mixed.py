"""The answer eval on mixed pools: cases over the assigned languages, the cross/same split and bias@1, the CLI."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from evals import mixed
from evals.answers import METRICS, Case, Judged, PairAnswers, cases, judge, load_answer_texts
from evals.answers_mixed import (
    AnswerSplit,
    MixedAnswerReport,
    PoolAnswers,
    mixed_cases,
    run,
    split_answers,
    summarise,
)
from evals.cli import eval_app, mixed_answers_table
from evals.datasets import load_xquad
from evals.report import Leg
from evals.retrieval import DatasetKind
from rag.config import Config
from tests.fakes import HashEncoder
from tests.test_evals_answers import CASE, CITES_GOLD, PARAGRAPHS, write_xquad

# Seeds whose two-language pool of the three test paragraphs holds both languages (checked below).
MIXED_SEEDS = (0, 1, 3)


# --- cases ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", MIXED_SEEDS)
def test_each_question_is_asked_over_its_paragraph_in_the_assigned_language(tmp_path: Path, seed: int) -> None:
    root = write_xquad(tmp_path)
    dataset, gold = load_xquad(root, ["en", "de"]), load_answer_texts(root, ["en", "de"])
    pool = mixed.assign(dataset.documents, ("en", "de"), seed)  # paragraph i (question q{i}) is pool[i]
    assert {d.language for d in pool} == {"en", "de"}
    answer = {"en": [a for _, _, a in PARAGRAPHS["en"]], "de": [a for _, _, a in PARAGRAPHS["de"]]}
    for lang in ("en", "de"):
        queries = dataset.queries[lang]
        assert mixed_cases(dataset, gold, lang, pool, None) == [
            Case(queries[i], d.language or "", (answer[d.language or ""][i],)) for i, d in enumerate(pool)]


def test_questions_without_gold_in_the_pool_are_skipped_and_the_sample_is_the_pairs_one(tmp_path: Path) -> None:
    root = write_xquad(tmp_path)
    dataset, gold = load_xquad(root, ["en", "de"]), load_answer_texts(root, ["en", "de"])
    pool = mixed.assign(dataset.documents, ("en", "de"), 0)
    assert [c.query.id for c in mixed_cases(dataset, gold, "de", pool[:2], None)] == ["q0", "q1"]
    moved = {**gold, ("q1", pool[1].language or ""): ("Berlin",)}  # no longer in q1's paragraph
    assert [c.query.id for c in mixed_cases(dataset, moved, "de", pool, None)] == ["q0", "q2"]
    assert [c.query.id for c in mixed_cases(dataset, gold, "de", pool, 2)] == [
        c.query.id for c in cases(dataset, gold, "de", "de", limit=2)]


def test_judge_keeps_the_first_citations_passage_language() -> None:
    cited = CITES_GOLD.citations[0]
    first_en = replace(CITES_GOLD, citations=(replace(cited, language="en"), cited))
    assert (judge(first_en, CASE, 1.0).cited_language, judge(CITES_GOLD, CASE, 1.0).cited_language) == ("en", "de")
    assert judge(replace(CITES_GOLD, citations=()), CASE, 1.0).cited_language is None


# --- scoring (pure) ---------------------------------------------------------------------------------


def _judged(hit: bool, cited: str | None) -> Judged:
    """An answer citing one verified passage in ``cited`` (none when None), the gold one when ``hit``, right
    about its language."""
    count = 0 if cited is None else 1
    return Judged("q", hit, True, count, count, True, True, 1.0, (), "", cited, count if hit else 0)


def _metrics(hit: float, precision: float, verified: float | None, all_verified: float) -> dict[str, float | None]:
    return {"answer_hit": hit, "retrieval_hit@k": 1.0, "citation_precision": precision, "citations_verified": verified,
            "all_verified": all_verified, "language_ok": 1.0, "ok": 1.0, "seconds": 1.0}


def test_the_split_parts_answers_by_gold_language_and_bias_reads_the_first_citation() -> None:
    pairs = [PairAnswers("en", "de", (_judged(True, "de"), _judged(False, "en"))),
             PairAnswers("en", "en", (_judged(True, "en"), _judged(False, "en"))),
             PairAnswers("en", "zh", (_judged(False, None), _judged(False, "en")))]
    assert split_answers(pairs) == AnswerSplit(_metrics(1 / 4, 1 / 3, 1.0, 3 / 4), _metrics(1 / 2, 1 / 2, 1.0, 1.0),
                                               4, 2, 1 / 2)
    assert split_answers(pairs[1:2]) == AnswerSplit(dict.fromkeys(METRICS), _metrics(1 / 2, 1 / 2, 1.0, 1.0), 0, 2,
                                                    None)


def test_the_summary_means_over_query_languages_then_seeds() -> None:
    first = PoolAnswers(0, "s0", (PairAnswers("en", "de", (_judged(True, "en"),)),
                                  PairAnswers("de", "de", (_judged(True, "de"),)),
                                  PairAnswers("de", "en", (_judged(False, "en"), _judged(True, "en")))))
    second = PoolAnswers(1, "s1", (PairAnswers("en", "en", (_judged(False, "en"),)),
                                   PairAnswers("de", "en", (_judged(False, "de"),))))
    summary = summarise([first, second])
    assert {seed: (s.cross["answer_hit"], s.n_cross, s.same["answer_hit"], s.n_same, s.bias1)
            for seed, s in summary.per_seed.items()} == {0: (0.75, 3, 1.0, 1, 0.5), 1: (0.0, 1, 0.0, 1, 1.0)}
    assert {lang: (s.cross["answer_hit"], s.same["answer_hit"], s.bias1)
            for lang, s in summary.per_query_lang.items()} == {"en": (1.0, 0.0, 1.0), "de": (0.25, 1.0, 0.5)}
    assert (summary.mean.cross["answer_hit"], summary.mean.same["answer_hit"], summary.mean.bias1) == (0.375, 0.5, 0.75)
    assert (summary.mean.n_cross, summary.mean.n_same) == (4, 2)


def test_the_table_shows_the_mean_then_each_query_language_with_bias_on_the_cross_row() -> None:
    pool = PoolAnswers(0, "s0", (PairAnswers("en", "de", (_judged(True, "en"), _judged(False, "de"))),
                                 PairAnswers("de", "de", (_judged(True, "de"),))))
    text = io.StringIO()
    Console(file=text, width=120).print(mixed_answers_table(MixedAnswerReport((pool,))))
    rows = [" ".join(line.replace("│", " ").replace("┃", " ").split()) for line in text.getvalue().splitlines()]
    assert "query part hit retr@k prec verif all_ver lang ok s/ans n bias@1" in rows  # a header over every column
    body = rows[rows.index(next(r for r in rows if r.startswith("all cross"))):]
    assert [r for r in body if r and r[0] not in "├└"] == [
        "all cross 0.500 1.000 0.500 1.000 1.000 1.000 1.000 1.00 2 0.500",
        "same 1.000 1.000 1.000 1.000 1.000 1.000 1.000 1.00 1",
        "en cross 0.500 1.000 0.500 1.000 1.000 1.000 1.000 1.00 2 0.500",
        "same - - - - - - - - 0",
        "de cross - - - - - - - - 0 -",
        "same 1.000 1.000 1.000 1.000 1.000 1.000 1.000 1.00 1"]


# --- end to end -------------------------------------------------------------------------------------


def test_answers_reuse_the_retrieval_evals_mixed_collections(config: Config, tmp_path: Path) -> None:
    encoder, root = HashEncoder(), write_xquad(tmp_path / "xquad")
    retrieval = mixed.run(DatasetKind.XQUAD, root, config, tmp_path / "retrieval", ("en", "de"), ("en", "de"),
                          legs=(Leg.DENSE,), seeds=(0, 1), encoder=encoder)
    calls = len(encoder.calls)
    report = run(DatasetKind.XQUAD, root, config, tmp_path / "answers", ("en", "de"), ("en", "de"), (0, 1),
                 encoder=encoder)
    assert report.config["collections"] == retrieval.config["collections"]
    paragraphs = {context for items in PARAGRAPHS.values() for context, _, _ in items}
    assert not paragraphs & {text for batch in encoder.calls[calls:] for text in batch}


def test_cli_answers_on_mixed_pools_end_to_end(config: Config, tmp_path: Path) -> None:
    assert config.db.url is not None
    env = {"ROSETTA_DATABASE_URL": config.db.url, "ROSETTA_SCHEMA": config.db.schema, "NO_COLOR": "1",
           "COLUMNS": "200"}
    root, out = write_xquad(tmp_path / "xquad"), tmp_path / "out"
    result = CliRunner().invoke(eval_app, [
        "answers", "--data", str(root), "--out", str(out), "--query-langs", "en,de", "--doc-langs", "en,de",
        "--limit", "2", "--pool", "mixed", "--seeds", "0,1", "--data-dir", str(config.db.data_dir)], env=env)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "answers.json").read_text())
    assert set(data) == {"pairs", "summary", "mixed", "config"} and (data["pairs"], data["summary"]) == ([], {})
    assert data["config"]["collections"] == {"0": "eval-xquad-mixed-de-en-s0", "1": "eval-xquad-mixed-de-en-s1"}
    assert (data["config"]["pool"], data["config"]["seeds"], data["config"]["limit"]) == ("mixed", [0, 1], 2)
    assert all(sum(counts.values()) == 3 for counts in data["config"]["assigned"].values())
    result_mixed = data["mixed"]
    assert set(result_mixed) == {"seeds", "per_seed", "per_query_lang", "mean"} and result_mixed["seeds"] == [0, 1]
    assert set(result_mixed["per_query_lang"]) == {"en", "de"}
    for part in (result_mixed["mean"], *result_mixed["per_query_lang"].values(), *result_mixed["per_seed"].values()):
        assert set(part) >= {"cross", "same", "bias@1"}
        assert all(set(part[side]) == {*METRICS, "n"} for side in ("cross", "same"))
    assert result_mixed["mean"]["cross"]["n"] + result_mixed["mean"]["same"]["n"] == 2 * 2 * 2  # seeds x langs x 2
    dataset = load_xquad(root, ["en", "de"])
    language = {seed: {f"q{i}": d.language for i, d in enumerate(mixed.assign(dataset.documents, ("en", "de"), seed))}
                for seed in (0, 1)}
    lines = [json.loads(line) for line in (out / "cases.jsonl").read_text().splitlines()]
    assert len(lines) == 8 and all(line["doc_lang"] == language[line["seed"]][line["id"]] for line in lines)
    assert all(line["cross"] == (line["query_lang"] != line["doc_lang"]) for line in lines)
    crossed = sum(bool(line["cross"]) for line in lines)
    assert (result_mixed["mean"]["cross"]["n"], result_mixed["mean"]["same"]["n"]) == (crossed, len(lines) - crossed)
    for seed, entry in result_mixed["per_seed"].items():
        assert sum(p["n"] for p in entry["pairs"]) == 4
        assert {p["doc_lang"] for p in entry["pairs"]} <= set(language[int(seed)].values())
    assert not (out / "answers.png").exists()
    assert "bias@1" in result.stdout and "cross" in result.stdout
