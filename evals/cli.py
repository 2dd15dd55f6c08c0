"""``rosetta eval``: parses options, calls ``evals.retrieval.run``, renders the summary. No logic lives here.

    python -m evals.cli retrieval --dataset xquad --data ../shared/data/xquad \\
        --query-langs en,de,zh,ar,th --doc-langs en,de,zh,ar,th --system both --out /tmp/eval-xquad
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evals.metrics import METRIC_NAMES, Scores
from evals.report import Leg, Report
from evals.retrieval import parse_dataset, parse_languages, parse_legs, parse_systems, run
from rag.config import load_config
from rag.errors import RagError

ALL_LEGS = ",".join(leg.value for leg in Leg)
eval_app = typer.Typer(no_args_is_help=True, add_completion=False,
                       help="Evaluations: retrieval quality across query and document languages.")


@eval_app.callback()
def _group() -> None:
    """Evaluations: retrieval quality across query and document languages."""


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


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    eval_app()
