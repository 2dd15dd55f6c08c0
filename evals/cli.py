"""``rosetta eval``: parses options, calls a runner (evals.retrieval, .mixed, .answers, .answers_mixed), renders. No logic here.

    python -m evals.cli retrieval --dataset xquad --data ../shared/data/xquad \\
        --query-langs en,de,zh,ar,th --doc-langs en,de,zh,ar,th --system both --out /tmp/eval-xquad
    python -m evals.cli retrieval --dataset xquad --data ../shared/data/xquad --pool mixed --seeds 0,1,2 \\
        --query-langs en,de,zh,ar,th --doc-langs en,de,zh,ar,th --out /tmp/eval-xquad-mixed
    python -m evals.cli answers --dataset xquad --data ../shared/data/xquad \\
        --query-langs en,de,zh,ar,th --doc-langs en,de,zh,ar,th --limit 40 --out /tmp/eval-answers
    python -m evals.cli answers --dataset xquad --data ../shared/data/xquad --pool mixed --seeds 0,1,2 \\
        --query-langs en,de,zh,ar,th --doc-langs en,de,zh,ar,th --limit 200 --out /tmp/eval-answers-mixed
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evals import answers as answer_eval
from evals import answers_mixed, mixed
from evals.metrics import METRIC_NAMES, Scores
from evals.report import Leg, Report, Split
from evals.retrieval import parse_dataset, parse_languages, parse_legs, parse_one, parse_systems, run
from evals.translation import TranslatorKind
from rag.cli.terminal import console
from rag.config import load_config, parse_generator
from rag.errors import RagError

ALL_LEGS = ",".join(leg.value for leg in Leg)
eval_app = typer.Typer(no_args_is_help=True, add_completion=False,
                       help="Evaluations: retrieval and answer quality across query and document languages.")


@eval_app.callback()
def _group() -> None:
    """Evaluations: retrieval and answer quality across query and document languages."""


# METRIC_NAMES, short enough for an 80-column terminal.
_HEADERS = ("nDCG@10", "R@1", "R@5", "R@10", "MRR@10")


def _cells(scores: Scores) -> list[str]:
    if not scores.n:
        return ["-"] * (len(METRIC_NAMES) + 1)
    return [f"{value:.3f}" for value in scores.values()] + [str(scores.n)]


def summary_table(report: Report) -> Table:
    """One row per system, leg and scope (cross-lingual / monolingual) with the five metrics."""
    table = Table(title="retrieval summary (mean over language pairs)")
    for name in ("system", "leg", "scope"):
        table.add_column(name, overflow="fold")
    for name in (*_HEADERS, "n"):
        table.add_column(name, justify="right", no_wrap=True)
    for (system, leg), (cross, mono) in report.summary().items():
        table.add_row(system.value, leg.value, "cross", *_cells(cross))
        table.add_row("", "", "mono", *_cells(mono), end_section=True)
    return table


def _split_cells(split: Split) -> list[str]:
    def cell(scores: Scores, value: float) -> str:
        return f"{value:.3f}" if scores.n else "-"

    return [cell(split.cross, split.cross.recall1), cell(split.cross, split.cross.mrr10),
            cell(split.same, split.same.recall1), cell(split.same, split.same.mrr10),
            "-" if split.bias1 is None else f"{split.bias1:.3f}", str(split.cross.n), str(split.same.n)]


def mixed_table(report: Report) -> Table:
    """Per system/leg: the mean over seeds, then one row per query language (its mean over seeds)."""
    table = Table(title="mixed pool (mean over seeds): cross = gold in another language, same = in the query's")
    table.add_column("system/leg", overflow="fold")
    table.add_column("query", no_wrap=True)
    for name in ("cross R@1", "cross MRR@10", "same R@1", "same MRR@10", "bias@1", "n cross", "n same"):
        table.add_column(name, justify="right", no_wrap=True)
    for (system, leg), summary in report.mixed_summary().items():
        table.add_row(f"{system.value}/{leg.value}", "all", *_split_cells(summary.mean))
        langs = list(summary.per_query_lang.items())
        for lang, split in langs:
            table.add_row("", lang, *_split_cells(split), end_section=lang == langs[-1][0])
    return table


def render(report: Report, console: Console) -> None:
    """Print the summary (or mixed-pool) table and each skipped leg's reason."""
    console.print(mixed_table(report) if report.mixed else summary_table(report))
    for reason in report.skipped:
        console.print(f"[yellow]skipped:[/] {escape(reason)}", highlight=False)


def _progress(console: Console) -> Callable[[str], None]:
    return lambda message: console.print(f"[dim]{escape(message)}[/]")


@eval_app.command()
def retrieval(
    data: Annotated[Path, typer.Option(help="Dataset folder (XQuAD json files, BEIR folder, manuals).")],
    out: Annotated[Path, typer.Option(help="Where metrics.json and heatmap.png go.")],
    dataset: Annotated[str, typer.Option(help="xquad, beir or manuals.")] = "xquad",
    query_langs: Annotated[str | None, typer.Option(help="Comma-separated; default: all.")] = None,
    doc_langs: Annotated[str | None, typer.Option(help="Comma-separated; default: all.")] = None,
    legs: Annotated[str, typer.Option(help="Any of dense,sparse,hybrid,hybrid+rerank.")] = ALL_LEGS,
    system: Annotated[str, typer.Option(help="rosetta, llamaindex-pgvector or both.")] = "rosetta",
    limit: Annotated[int | None, typer.Option(help="First N queries per query language.")] = None,
    data_dir: Annotated[Path, typer.Option(help="Database directory, kept between runs.")] = Path(".rosetta/evals"),
    encoder: Annotated[str, typer.Option(help="auto, bge-m3 or e5-small.")] = "e5-small",
    pool: Annotated[str, typer.Option(help="pairs (a collection per doc language) or mixed (one collection, "
                                           "each document once in a seeded language).")] = "pairs",
    seeds: Annotated[str, typer.Option(help="--pool mixed: comma-separated seeds, one pool each.")] = "0",
    translator: Annotated[str, typer.Option(help="none, or human: the dataset's own translation of each "
                                                 "question stands in for an LLM's (translated legs; an "
                                                 "upper bound).")] = "none",
) -> None:
    """Score dense, sparse and hybrid retrieval for every query language x document language pair, or on
    mixed-language pools (--pool mixed)."""
    stderr = console(stderr=True)
    try:
        args = (parse_dataset(dataset), data, load_config(data_dir=data_dir, encoder=encoder), out,
                parse_languages(query_langs), parse_languages(doc_langs), parse_legs(legs), parse_systems(system))
        translating = parse_one(translator, TranslatorKind, "translator")
        if mixed.parse_pool(pool) is mixed.Pool.MIXED:
            report = mixed.run(*args, seeds=mixed.parse_seeds(seeds), limit=limit, progress=_progress(stderr),
                               translating=translating)
        else:
            report = run(*args, limit=limit, progress=_progress(stderr), translating=translating)
    except (RagError, ValueError) as exc:
        stderr.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    render(report, console())
    written = [out / "metrics.json", *([] if report.mixed else [out / "heatmap.png"])]
    stderr.print(f"[dim]wrote {' and '.join(str(path) for path in written)}[/]")


# Each answer metric's column header (evals.answers.METRICS, in its order), short enough for a terminal.
_ANSWER_HEADERS = {"answer_hit": "hit", "retrieval_hit@k": "retr@k", "citation_precision": "prec",
                   "citations_verified": "verif", "all_verified": "all_ver", "language_ok": "lang", "ok": "ok",
                   "seconds": "s/ans"}


def _answer_cells(metrics: dict[str, float | None]) -> list[str]:
    return ["-" if (value := metrics[name]) is None else f"{value:.2f}" if name == "seconds" else f"{value:.3f}"
            for name in _ANSWER_HEADERS]


def answers_table(report: answer_eval.AnswerReport) -> Table:
    """One row per (query language, doc language) pair, then the cross-lingual and monolingual means."""
    table = Table(title="answer quality per pair; cross and mono are means over pairs")
    table.add_column("pair", no_wrap=True)
    for name in (*_ANSWER_HEADERS.values(), "n"):
        table.add_column(name, justify="right", no_wrap=True)
    for p in report.pairs:
        table.add_row(f"{p.query_lang}->{p.doc_lang}", *_answer_cells(answer_eval.pair_metrics(p.judged)),
                      str(len(p.judged)), end_section=p is report.pairs[-1])
    for scope, cross in (("cross", True), ("mono", False)):
        chosen = [p for p in report.pairs if p.cross_lingual == cross]
        table.add_row(scope, *_answer_cells(answer_eval.mean_metrics(chosen)), str(sum(len(p.judged) for p in chosen)))
    return table


def mixed_answers_table(report: answers_mixed.MixedAnswerReport) -> Table:
    """The cross and same answers' metrics and bias@1: the mean over seeds, then per query language."""
    table = Table(title="answers on mixed pools (mean over seeds): cross = gold paragraph in another language "
                        "than the question, same = in the question's")
    table.add_column("query", no_wrap=True)
    table.add_column("part", no_wrap=True)
    for name in (*_ANSWER_HEADERS.values(), "n", "bias@1"):
        table.add_column(name, justify="right", no_wrap=True)
    summary = answers_mixed.summarise(report.pools)
    for lang, split in [("all", summary.mean), *summary.per_query_lang.items()]:
        bias = "-" if split.bias1 is None else f"{split.bias1:.3f}"
        table.add_row(lang, "cross", *_answer_cells(dict(split.cross)), str(split.n_cross), bias)
        table.add_row("", "same", *_answer_cells(dict(split.same)), str(split.n_same), "", end_section=True)
    return table


def _render_answers(report: answer_eval.AnswerReport | answers_mixed.MixedAnswerReport, out: Path,
                    stderr: Console) -> None:
    if isinstance(report, answers_mixed.MixedAnswerReport):
        console().print(mixed_answers_table(report))
        stderr.print(f"[dim]wrote {out / 'answers.json'} and {out / 'cases.jsonl'}[/]")
        return
    console().print(answers_table(report))
    stderr.print(f"[dim]wrote {out / 'answers.json'}, {out / 'answers.png'} and {out / 'cases.jsonl'}[/]")


@eval_app.command()
def answers(
    data: Annotated[Path, typer.Option(help="The XQuAD folder (xquad.{lang}.json).")],
    out: Annotated[Path, typer.Option(help="Where answers.json, answers.png and cases.jsonl go.")],
    query_langs: Annotated[str, typer.Option(help="Comma-separated question languages.")],
    doc_langs: Annotated[str, typer.Option(help="Comma-separated document languages.")],
    dataset: Annotated[str, typer.Option(help="xquad (the one with gold answer texts).")] = "xquad",
    limit: Annotated[int | None, typer.Option(help="Questions per pair (--pool mixed: per query language), "
                                                      "a seeded sample; default: all.")] = None,
    k: Annotated[int | None, typer.Option(help="Passages per search; default: generation.k.")] = None,
    generator: Annotated[str, typer.Option(help="extractive, openai or cohere.")] = "extractive",
    data_dir: Annotated[Path, typer.Option(envvar="ROSETTA_DATA_DIR",
                                           help="Database directory, kept between runs.")] = Path(".rosetta/evals"),
    encoder: Annotated[str, typer.Option(help="auto, bge-m3 or e5-small.")] = "e5-small",
    pool: Annotated[str, typer.Option(help="pairs (a collection per doc language) or mixed (one collection, "
                                           "each paragraph once in a seeded language).")] = "pairs",
    seeds: Annotated[str, typer.Option(help="--pool mixed: comma-separated seeds, one pool each.")] = "0",
    translator: Annotated[str, typer.Option(help="none, or human: XQuAD's own translation of each question "
                                                 "stands in for an LLM's in search (an upper bound).")] = "none",
) -> None:
    """Ask each pair's questions (or, with --pool mixed, every question over mixed-language pools) and score
    the answers' citations, verification and language."""
    stderr = console(stderr=True)
    report: answer_eval.AnswerReport | answers_mixed.MixedAnswerReport
    try:
        args = (parse_dataset(dataset), data, load_config(data_dir=data_dir, encoder=encoder), out,
                parse_languages(query_langs), parse_languages(doc_langs))
        translating = parse_one(translator, TranslatorKind, "translator")
        if mixed.parse_pool(pool) is mixed.Pool.MIXED:
            report = answers_mixed.run(*args, mixed.parse_seeds(seeds), limit, k, parse_generator(generator),
                                       progress=_progress(stderr), translating=translating)
        else:
            report = answer_eval.run(*args, limit, k, parse_generator(generator), progress=_progress(stderr),
                                     translating=translating)
    except (RagError, ValueError) as exc:
        stderr.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    _render_answers(report, out, stderr)


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    eval_app()
