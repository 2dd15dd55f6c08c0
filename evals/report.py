"""Evaluation results and their outputs: metrics.json (a stable schema) and a heatmap of nDCG@10.

metrics.json::

    {"pairs": [{"system", "query_lang", "doc_lang", "leg", "ndcg@10", "recall@1", "recall@5",
                "recall@10", "mrr@10", "n"}, ...],
     "summary": {"<system>/<leg>": {"cross_lingual": {metrics, "n"}, "monolingual": {metrics, "n"}}},
     "skipped": [reasons], "config": {...}}

A summary scope without pairs has every metric ``null`` and ``n`` 0. A mixed-pool run (``evals.mixed``)
has no pairs and adds::

    "mixed": {"<system>/<leg>": {
        "seeds": [0, 1, 2],
        "per_seed": {"<seed>": {"cross": {metrics, "n"}, "same": {metrics, "n"}, "bias@1": x}},
        "per_query_lang": {"<lang>": {"cross": ..., "same": ..., "bias@1": x}},
        "mean": {"cross": ..., "same": ..., "bias@1": x}}}

A seed's scores are the mean over its query languages, a language's the mean over seeds, and ``mean``
the mean over seeds (every language and seed weighs the same; ``n`` counts the queries behind a value).
An unseeded pool (a BEIR corpus) has ``"seeds": []`` and ``"per_seed": {}``. ``bias@1`` is null where
no query was cross-language.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from evals.metrics import METRIC_NAMES, Scores, mean
from rag.types import JsonValue


class Leg(Enum):
    """A retrieval configuration under test."""

    DENSE = "dense"
    SPARSE = "sparse"
    HYBRID = "hybrid"
    HYBRID_RERANK = "hybrid+rerank"


class System(Enum):
    """Whose retrieval is measured."""

    ROSETTA = "rosetta"
    LLAMAINDEX = "llamaindex-pgvector"


@dataclass(frozen=True, slots=True)
class PairScore:
    """The scores of one system and leg on queries in one language over documents in another."""

    system: System
    query_lang: str
    doc_lang: str
    leg: Leg
    scores: Scores

    @property
    def cross_lingual(self) -> bool:
        """True when the query and document languages differ."""
        return self.query_lang != self.doc_lang


@dataclass(frozen=True, slots=True)
class Split:
    """Mixed-pool scores of some queries: those whose gold is in another language than theirs (cross) and
    in theirs (same), and bias@1, the share of cross queries whose top hit is in the query's language."""

    cross: Scores
    same: Scores
    bias1: float | None  # None without cross queries

    def __post_init__(self) -> None:
        if self.bias1 is not None and not 0.0 <= self.bias1 <= 1.0:
            raise ValueError(f"Split.bias1 must be in [0, 1] or None, got {self.bias1}")


def mean_split(splits: Sequence[Split]) -> Split:
    """The mean of each part over the splits that have it (cross, same and bias@1 separately)."""
    biases = [s.bias1 for s in splits if s.bias1 is not None]
    return Split(mean([s.cross for s in splits if s.cross.n]), mean([s.same for s in splits if s.same.n]),
                 math.fsum(biases) / len(biases) if biases else None)


@dataclass(frozen=True, slots=True)
class MixedScore:
    """One system and leg on one mixed pool (``seed`` None: an unseeded pool), queries in one language."""

    system: System
    leg: Leg
    seed: int | None
    query_lang: str
    split: Split


@dataclass(frozen=True, slots=True)
class MixedSummary:
    """A system and leg's mixed-pool scores per seed, per query language (mean over seeds) and overall."""

    per_seed: Mapping[int | None, Split]
    per_query_lang: Mapping[str, Split]
    mean: Split


@dataclass(frozen=True, slots=True)
class Report:
    """All pair (or mixed-pool) scores, what was skipped and why, and the settings that produced them."""

    pairs: tuple[PairScore, ...]
    skipped: tuple[str, ...] = ()
    config: Mapping[str, JsonValue] = field(default_factory=dict)
    mixed: tuple[MixedScore, ...] = ()

    def runs(self) -> list[tuple[System, Leg]]:
        """The (system, leg) combinations that were scored, in order."""
        return list(dict.fromkeys((p.system, p.leg) for p in self.pairs))

    def summary(self) -> dict[tuple[System, Leg], tuple[Scores, Scores]]:
        """Per (system, leg): the mean over cross-lingual pairs and the mean over monolingual pairs."""
        def scope(run: tuple[System, Leg], cross: bool) -> Scores:
            return mean([p.scores for p in self.pairs if (p.system, p.leg) == run and p.cross_lingual == cross])

        return {run: (scope(run, True), scope(run, False)) for run in self.runs()}

    def mixed_summary(self) -> dict[tuple[System, Leg], MixedSummary]:
        """Per (system, leg) of the mixed-pool scores: see the module docstring for how they are averaged."""
        return {run: _summarise([m for m in self.mixed if (m.system, m.leg) == run])
                for run in dict.fromkeys((m.system, m.leg) for m in self.mixed)}


def _summarise(scores: Sequence[MixedScore]) -> MixedSummary:
    seeds = list(dict.fromkeys(m.seed for m in scores))
    langs = list(dict.fromkeys(m.query_lang for m in scores))
    per_seed = {seed: mean_split([m.split for m in scores if m.seed == seed]) for seed in seeds}
    per_lang = {lang: mean_split([m.split for m in scores if m.query_lang == lang]) for lang in langs}
    return MixedSummary(per_seed, per_lang, mean_split(list(per_seed.values())))


def _metrics(scores: Scores) -> dict[str, JsonValue]:
    values: list[JsonValue] = [round(v, 6) if scores.n else None for v in scores.values()]
    return {**dict(zip(METRIC_NAMES, values)), "n": scores.n}


def to_json(report: Report) -> dict[str, JsonValue]:
    """The metrics.json document (see the module docstring)."""
    pairs: list[JsonValue] = [
        {"system": p.system.value, "query_lang": p.query_lang, "doc_lang": p.doc_lang, "leg": p.leg.value,
         **_metrics(p.scores)}
        for p in report.pairs
    ]
    summary: dict[str, JsonValue] = {
        f"{system.value}/{leg.value}": {"cross_lingual": _metrics(cross), "monolingual": _metrics(mono)}
        for (system, leg), (cross, mono) in report.summary().items()
    }
    document: dict[str, JsonValue] = {"pairs": pairs, "summary": summary, "skipped": list(report.skipped),
                                      "config": dict(report.config)}
    if report.mixed:
        document["mixed"] = {f"{system.value}/{leg.value}": _mixed_json(summary)
                             for (system, leg), summary in report.mixed_summary().items()}
    return document


def _split_json(split: Split) -> dict[str, JsonValue]:
    return {"cross": _metrics(split.cross), "same": _metrics(split.same),
            "bias@1": None if split.bias1 is None else round(split.bias1, 6)}


def _mixed_json(summary: MixedSummary) -> dict[str, JsonValue]:
    seeds = [seed for seed in summary.per_seed if seed is not None]
    return {"seeds": list[JsonValue](seeds),
            "per_seed": {str(seed): _split_json(summary.per_seed[seed]) for seed in seeds},
            "per_query_lang": {lang: _split_json(split) for lang, split in summary.per_query_lang.items()},
            "mean": _split_json(summary.mean)}


def _grid(report: Report, run: tuple[System, Leg]) -> tuple[list[str], list[str], list[list[float]]]:
    pairs = [p for p in report.pairs if (p.system, p.leg) == run]
    rows = list(dict.fromkeys(p.query_lang for p in pairs))
    columns = list(dict.fromkeys(p.doc_lang for p in pairs))
    values = {(p.query_lang, p.doc_lang): p.scores.ndcg10 for p in pairs}
    return rows, columns, [[values.get((r, c), math.nan) for c in columns] for r in rows]


def write_heatmap(report: Report, path: Path) -> None:
    """A PNG with one panel per system/leg: query language x doc language, cells colored by nDCG@10."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = report.runs()
    if not runs:
        figure = plt.figure(figsize=(4, 1))
        figure.text(0.5, 0.5, "no pairs were scored", ha="center", va="center")
        figure.savefig(path, dpi=110)
        plt.close(figure)
        return
    columns = min(3, len(runs))
    rows = math.ceil(len(runs) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.8 * rows), squeeze=False)
    for ax in axes.flat[len(runs):]:
        ax.axis("off")
    for ax, run in zip(axes.flat, runs):
        query_langs, doc_langs, grid = _grid(report, run)
        image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis")
        ax.set_xticks(range(len(doc_langs)), doc_langs)
        ax.set_yticks(range(len(query_langs)), query_langs)
        ax.set_xlabel("document language")
        ax.set_ylabel("query language")
        ax.set_title(f"{run[0].value} / {run[1].value}", fontsize=10)
        for (i, j), value in ((ij, grid[ij[0]][ij[1]]) for ij in _cells(grid)):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8,
                    color="black" if value > 0.6 else "white")
    figure.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="nDCG@10")
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _cells(grid: list[list[float]]) -> list[tuple[int, int]]:
    return [(i, j) for i, row in enumerate(grid) for j, value in enumerate(row) if not math.isnan(value)]


def publish_bench(table: str, report: Mapping[str, object], out: Path | None, name: str) -> None:
    """What every benchmark does with its numbers: print the table and the JSON, and with ``out`` write the
    JSON to ``out``/``name``.json."""
    print(table)
    print(json.dumps(report, indent=2, ensure_ascii=False))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_report(report: Report, out: Path) -> tuple[Path, ...]:
    """Write ``out``/metrics.json and, unless the report is a mixed pool's, ``out``/heatmap.png; return
    the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    metrics, heatmap = out / "metrics.json", out / "heatmap.png"
    metrics.write_text(json.dumps(to_json(report), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    if report.mixed and not report.pairs:
        return (metrics,)
    write_heatmap(report, heatmap)
    return metrics, heatmap
