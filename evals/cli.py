"""``rosetta eval``: parses options, calls ``evals.retrieval.run`` or ``evals.answers.run``, renders. No logic here.

    python -m evals.cli retrieval --dataset xquad --data ../shared/data/xquad \\
        --query-langs en,de,zh,ar,th --doc-langs en,de,zh,ar,th --system both --out /tmp/eval-xquad
    python -m evals.cli answers --dataset xquad --data ../shared/data/xquad \\
        --query-langs en,de,zh,ar,th --doc-langs en,de,zh,ar,th --limit 40 --out /tmp/eval-answers
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evals import answers as answer_eval
from evals.metrics import METRIC_NAMES, Scores
from evals.report import Leg, Report
from evals.retrieval import parse_dataset, parse_languages, parse_legs, parse_systems, run
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


def render(report: Report, console: Console) -> None:
    """Print the summary table and each skipped leg's reason."""
    console.print(summary_table(report))
    for reason in report.skipped:
        console.print(f"[yellow]skipped:[/] {escape(reason)}", highlight=False)


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
) -> None:
    """Score dense, sparse and hybrid retrieval for every query language x document language pair."""
    stderr = Console(stderr=True)
    try:
        report = run(parse_dataset(dataset), data, load_config(data_dir=data_dir, encoder=encoder), out,
                     parse_languages(query_langs), parse_languages(doc_langs), parse_legs(legs),
                     parse_systems(system), limit, progress=lambda m: stderr.print(f"[dim]{escape(m)}[/]"))
    except (RagError, ValueError) as exc:
        stderr.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    render(report, Console())
    Console(stderr=True).print(f"[dim]wrote {out / 'metrics.json'} and {out / 'heatmap.png'}[/]")


# The answer metrics (evals.answers.METRICS), short enough for an 80-column terminal.
_ANSWER_HEADERS = ("hit", "retr@k", "verif", "all_ver", "lang", "ok", "s/ans")


def _answer_cells(metrics: dict[str, float | None]) -> list[str]:
    return ["-" if value is None else f"{value:.2f}" if name == "seconds" else f"{value:.3f}"
            for name, value in metrics.items()]


def answers_table(report: answer_eval.AnswerReport) -> Table:
    """One row per (query language, doc language) pair, then the cross-lingual and monolingual means."""
    table = Table(title="answer quality per pair; cross and mono are means over pairs")
    table.add_column("pair", no_wrap=True)
    for name in (*_ANSWER_HEADERS, "n"):
        table.add_column(name, justify="right", no_wrap=True)
    for p in report.pairs:
        table.add_row(f"{p.query_lang}->{p.doc_lang}", *_answer_cells(answer_eval.pair_metrics(p.judged)),
                      str(len(p.judged)), end_section=p is report.pairs[-1])
    for scope, cross in (("cross", True), ("mono", False)):
        chosen = [p for p in report.pairs if p.cross_lingual == cross]
        table.add_row(scope, *_answer_cells(answer_eval.mean_metrics(chosen)), str(sum(len(p.judged) for p in chosen)))
    return table


@eval_app.command()
def answers(
    data: Annotated[Path, typer.Option(help="The XQuAD folder (xquad.{lang}.json).")],
    out: Annotated[Path, typer.Option(help="Where answers.json, answers.png and cases.jsonl go.")],
    query_langs: Annotated[str, typer.Option(help="Comma-separated question languages.")],
    doc_langs: Annotated[str, typer.Option(help="Comma-separated document languages.")],
    dataset: Annotated[str, typer.Option(help="xquad (the one with gold answer texts).")] = "xquad",
    limit: Annotated[int | None, typer.Option(help="Questions per pair, a seeded sample; default: all.")] = None,
    k: Annotated[int | None, typer.Option(help="Passages per search; default: generation.k.")] = None,
    generator: Annotated[str, typer.Option(help="extractive, openai or cohere.")] = "extractive",
    data_dir: Annotated[Path, typer.Option(envvar="ROSETTA_DATA_DIR",
                                           help="Database directory, kept between runs.")] = Path(".rosetta/evals"),
    encoder: Annotated[str, typer.Option(help="auto, bge-m3 or e5-small.")] = "e5-small",
) -> None:
    """Ask each pair's questions and score the answers' citations, verification and language."""
    stderr = Console(stderr=True)
    try:
        report = answer_eval.run(parse_dataset(dataset), data, load_config(data_dir=data_dir, encoder=encoder), out,
                                 parse_languages(query_langs), parse_languages(doc_langs), limit, k,
                                 parse_generator(generator), progress=lambda m: stderr.print(f"[dim]{escape(m)}[/]"))
    except (RagError, ValueError) as exc:
        stderr.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    Console().print(answers_table(report))
    stderr.print(f"[dim]wrote {out / 'answers.json'}, {out / 'answers.png'} and {out / 'cases.jsonl'}[/]")


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    eval_app()
