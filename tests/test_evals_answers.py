"""The answer eval: metrics on hand-made Answers, XQuAD answer loading and sampling, and one run end to end."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from evals.answers import (
    METRICS,
    AnswerReport,
    Case,
    Judged,
    PairAnswers,
    cases,
    holds,
    judge,
    load_answer_texts,
    mean_metrics,
    pair_metrics,
    run,
)
from evals.cli import answers_table, eval_app
from evals.datasets import Query, load_xquad
from evals.retrieval import DatasetKind
from rag.answer.dialogue import Passage
from rag.answer.types import Answer, Citation, Problem, ProblemKind
from rag.config import Config
from rag.errors import ConnectorError
from rag.types import Chunk, Hit
from tests.fakes import HashEncoder

# --- a tiny XQuAD with answers ----------------------------------------------------------------------

PARAGRAPHS = {
    "en": [("The filter of the coffee machine is changed every month. Descaling is needed twice a year.",
            "How often is the filter of the coffee machine changed?", "every month"),
           ("Paris is the capital and largest city of France. It lies on the Seine.",
            "What is the capital of France?", "Paris"),
           ("Photosynthesis turns light into chemical energy in plants.",
            "What does photosynthesis turn light into?", "chemical energy")],
    "de": [("Der Filter der Kaffeemaschine wird jeden Monat gewechselt. Entkalken ist zweimal im Jahr nötig.",
            "Wie oft wird der Filter der Kaffeemaschine gewechselt?", "jeden Monat"),
           ("Paris ist die Hauptstadt und größte Stadt Frankreichs. Es liegt an der Seine.",
            "Was ist die Hauptstadt Frankreichs?", "Paris"),
           ("Photosynthese wandelt Licht in Pflanzen in chemische Energie um.",
            "Was wandelt Photosynthese aus Licht?", "chemische Energie")],
}


def write_xquad(root: Path) -> Path:
    """Three parallel paragraphs (two articles) in English and German, one answered question each."""
    root.mkdir(parents=True, exist_ok=True)
    for lang, items in PARAGRAPHS.items():
        paragraphs = [{"context": context, "qas": [{"id": f"q{i}", "question": question, "answers": [
            {"answer_start": context.index(answer), "text": answer}]}]}
            for i, (context, question, answer) in enumerate(items)]
        data = {"version": "1.0", "data": [{"title": "A", "paragraphs": paragraphs[:2]},
                                           {"title": "B", "paragraphs": paragraphs[2:]}]}
        (root / f"xquad.{lang}.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return root


# --- metrics on hand-made answers -------------------------------------------------------------------

FILTER_DE = "Der Filter der Kaffeemaschine wird Jeden  Monat gewechselt."
PARIS_DE = "Paris ist die Hauptstadt Frankreichs."
CASE = Case(Query("q0", "How often is the filter changed?", "en"), "de", ("jeden\nMonat",))


def _passage(number: int, text: str) -> Passage:
    chunk = Chunk(f"c{number}", f"xquad://de/0/{number}", 0, text, 0, len(text), "de")
    return Passage(number, Hit(chunk, "A", 1.0, (), "eval-xquad-de"))


def _citation(passage: Passage, verified: bool) -> Citation:
    chunk = passage.hit.chunk
    return Citation(passage.number, chunk.id, chunk.document_uri, "A", None, (), "de", chunk.text, chunk.text, 0,
                    len(chunk.text), "claim", 1.0 if verified else 0.3, verified)


def _answer(passages: tuple[Passage, ...], citations: tuple[Citation, ...], detected: str | None,
            problems: tuple[ProblemKind, ...] = ()) -> Answer:
    return Answer(CASE.query.text, CASE.query.text, "en", "text [1]", citations, passages,
                  tuple(Problem(kind, kind.value) for kind in problems), (), "extractive", detected)


FILTER, PARIS = _passage(1, FILTER_DE), _passage(2, PARIS_DE)
CITES_GOLD = _answer((FILTER, PARIS), (_citation(FILTER, True),), "en")
CITES_OTHER = _answer((FILTER, PARIS), (_citation(PARIS, False),), "de", (ProblemKind.UNSUPPORTED,))
CITES_NOTHING = _answer((PARIS,), (), None, (ProblemKind.NO_CITATIONS,))


def test_gold_spans_match_case_and_whitespace_aside() -> None:
    assert holds(FILTER_DE, ["jeden\tMONAT"]) and holds("巴黎是法国的首都。", ["法国"])
    assert not holds(FILTER_DE, ["jeden Jahr"]) and not holds(FILTER_DE, [" ", ""])


def test_judge_counts_hits_citations_language_and_problems() -> None:
    assert judge(CITES_GOLD, CASE, 1.0) == Judged("q0", True, True, 1, 1, True, True, 1.0, (), "text [1]", "de",
                                                   cited_hits=1)
    assert judge(CITES_OTHER, CASE, 2.0) == Judged("q0", False, True, 1, 0, False, False, 2.0, ("unsupported",),
                                                   "text [1]", "de")
    assert judge(CITES_NOTHING, CASE, 3.0) == Judged("q0", False, False, 0, 0, False, False, 3.0,
                                                     ("no-citations",), "text [1]")


def test_pair_metrics_on_three_answers() -> None:
    judged = [judge(CITES_GOLD, CASE, 1.0), judge(CITES_OTHER, CASE, 2.0), judge(CITES_NOTHING, CASE, 3.0)]
    assert pair_metrics(judged) == pytest.approx({
        "answer_hit": 1 / 3, "retrieval_hit@k": 2 / 3, "citation_precision": 1 / 2, "citations_verified": 1 / 2,
        "all_verified": 1 / 3,
        "language_ok": 1 / 3, "ok": 1 / 3, "seconds": 2.0})
    assert pair_metrics([]) == dict.fromkeys(METRICS)
    nothing = pair_metrics([judge(CITES_NOTHING, CASE, 1.0)])
    assert nothing["citations_verified"] is None and nothing["citation_precision"] is None


def test_means_weigh_every_pair_the_same_and_skip_missing_values() -> None:
    three = PairAnswers("en", "de", (judge(CITES_GOLD, CASE, 1.0), judge(CITES_OTHER, CASE, 2.0),
                                     judge(CITES_NOTHING, CASE, 3.0)))
    one = PairAnswers("de", "de", (judge(CITES_NOTHING, CASE, 4.0),))
    assert mean_metrics([three, one, PairAnswers("en", "en", ())]) == pytest.approx({
        "answer_hit": 1 / 6, "retrieval_hit@k": 1 / 3, "citation_precision": 1 / 2, "citations_verified": 1 / 2,
        "all_verified": 1 / 6,
        "language_ok": 1 / 6, "ok": 1 / 6, "seconds": 3.0})


# --- data ---------------------------------------------------------------------------------------------


def test_answer_texts_by_question_and_language(tmp_path: Path) -> None:
    texts = load_answer_texts(write_xquad(tmp_path), ["en", "de"])
    assert texts[("q0", "de")] == ("jeden Monat",) and texts[("q2", "en")] == ("chemical energy",)
    assert len(texts) == 6


def test_answer_texts_in_a_file_without_answers_name_the_format(tmp_path: Path) -> None:
    (tmp_path / "xquad.en.json").write_text('{"data": [{"paragraphs": [{"qas": [{"id": "q0"}]}]}]}')
    with pytest.raises(ConnectorError) as error:
        load_answer_texts(tmp_path, ["en"])
    assert str(error.value) == (f"{tmp_path / 'xquad.en.json'}: not in SQuAD format "
                                "(data[].paragraphs[].qas[].answers[].text): KeyError('answers')")


def test_cases_keep_gold_found_in_the_doc_paragraph_and_sample_the_same_ids(tmp_path: Path) -> None:
    root = write_xquad(tmp_path)
    dataset = load_xquad(root, ["en", "de"])
    gold = {**load_answer_texts(root, ["en", "de"]), ("q1", "de"): ("Berlin",)}
    assert [(c.query.id, c.query.language, c.gold) for c in cases(dataset, gold, "en", "de")] == [
        ("q0", "en", ("jeden Monat",)), ("q2", "en", ("chemische Energie",))]
    sampled = [[c.query.id for c in cases(dataset, gold, q, "en", limit=2)] for q in ("en", "de")]
    assert sampled[0] == sampled[1] and len(sampled[0]) == 2
    assert sampled[0] == [c.query.id for c in cases(dataset, gold, "en", "en", limit=2)]


# --- end to end -----------------------------------------------------------------------------------------

PAIR_KEYS = {"query_lang", "doc_lang", *METRICS, "n", "citations", "problems"}


def test_a_run_writes_answers_json_plot_and_cases_and_a_rerun_encodes_nothing(config: Config,
                                                                              tmp_path: Path) -> None:
    encoder = HashEncoder()
    root, out = write_xquad(tmp_path / "xquad"), tmp_path / "out"
    report = run(DatasetKind.XQUAD, root, config, out, ("en", "de"), ("en", "de"), limit=2, encoder=encoder)
    data = json.loads((out / "answers.json").read_text())
    assert set(data) == {"pairs", "summary", "config"}
    assert [(p["query_lang"], p["doc_lang"], p["n"]) for p in data["pairs"]] == [
        ("en", "en", 2), ("de", "en", 2), ("en", "de", 2), ("de", "de", 2)]
    assert all(set(p) == PAIR_KEYS for p in data["pairs"])
    assert all(p["retrieval_hit@k"] == 1.0 for p in data["pairs"])  # k=6 passages over 3 paragraphs
    assert {name: s["pairs"] for name, s in data["summary"].items()} == {"all": 4, "cross_lingual": 2,
                                                                          "monolingual": 2}
    assert all(set(s) == {*METRICS, "pairs", "n"} for s in data["summary"].values())
    assert {key: data["config"][key] for key in ("encoder", "generator", "k", "limit", "collections")} == {
        "encoder": "hash-fake", "generator": "extractive", "k": 6, "limit": 2,
        "collections": {"en": "eval-xquad-en", "de": "eval-xquad-de"}}
    assert (out / "answers.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((out / "cases.jsonl").read_text().splitlines()) == 8
    calls = len(encoder.calls)
    again = run(DatasetKind.XQUAD, root, config, out, ("en", "de"), ("en", "de"), limit=2, encoder=encoder)
    assert len(encoder.calls) == calls
    assert [[(j.question_id, j.answer_hit, j.text) for j in p.judged] for p in again.pairs] == [
        [(j.question_id, j.answer_hit, j.text) for j in p.judged] for p in report.pairs]


# --- CLI -------------------------------------------------------------------------------------------------


def test_the_table_shows_each_pair_and_the_means() -> None:
    report = AnswerReport((PairAnswers("en", "de", (judge(CITES_GOLD, CASE, 1.5),)),
                           PairAnswers("de", "de", (judge(CITES_NOTHING, CASE, 0.5),))))
    text = io.StringIO()
    Console(file=text, width=120).print(answers_table(report))
    rows = [" ".join(line.replace("│", " ").replace("┃", " ").split()) for line in text.getvalue().splitlines()]
    assert "pair hit retr@k prec verif all_ver lang ok s/ans n" in rows  # a header over every column
    assert "en->de 1.000 1.000 1.000 1.000 1.000 1.000 1.000 1.50 1" in rows
    assert "de->de 0.000 0.000 - - 0.000 0.000 0.000 0.50 1" in rows
    assert "cross 1.000 1.000 1.000 1.000 1.000 1.000 1.000 1.50 1" in rows


def test_cli_refuses_a_dataset_without_answer_texts(tmp_path: Path) -> None:
    result = CliRunner().invoke(eval_app, ["answers", "--dataset", "beir", "--data", str(tmp_path), "--out",
                                           str(tmp_path / "out"), "--query-langs", "en", "--doc-langs", "en"])
    assert result.exit_code == 2
    assert "error: answers need gold answer texts, which only xquad has; got beir" in result.output
