"""Ranking metrics with binary relevance: Recall@k, MRR@k and nDCG@k, per query and averaged.

Every function takes ``ranked`` (unit ids, best first, no repeats) and ``relevant`` (the ids that count),
and is pure. Ranks are 1-based; nDCG uses the gain 1 / log2(rank + 1) and the ideal ranking of
``min(k, len(relevant))`` relevant units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

METRIC_NAMES = ("ndcg@10", "recall@1", "recall@5", "recall@10", "mrr@10")


def _check(ranked: Sequence[str], relevant: AbstractSet[str], k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not relevant:
        raise ValueError("relevant must hold at least one id; skip queries without judgements")
    if len(set(ranked)) != len(ranked):
        repeated = sorted({unit for unit in ranked if ranked.count(unit) > 1})
        raise ValueError(f"ranked ids must be unique (dedupe hits first), repeated: {repeated}")


def recall_at(ranked: Sequence[str], relevant: AbstractSet[str], k: int) -> float:
    """The share of ``relevant`` found in the first ``k`` of ``ranked``."""
    _check(ranked, relevant, k)
    return sum(unit in relevant for unit in ranked[:k]) / len(relevant)


def mrr_at(ranked: Sequence[str], relevant: AbstractSet[str], k: int = 10) -> float:
    """1 / the rank of the first relevant id within the first ``k``, else 0."""
    _check(ranked, relevant, k)
    return next((1.0 / rank for rank, unit in enumerate(ranked[:k], 1) if unit in relevant), 0.0)


def _gain(rank: int) -> float:
    return 1.0 / math.log2(rank + 1)


def ndcg_at(ranked: Sequence[str], relevant: AbstractSet[str], k: int = 10) -> float:
    """Discounted cumulative gain of the first ``k`` over that of an ideal ranking (binary gains)."""
    _check(ranked, relevant, k)
    dcg = sum(_gain(rank) for rank, unit in enumerate(ranked[:k], 1) if unit in relevant)
    ideal = sum(_gain(rank) for rank in range(1, min(k, len(relevant)) + 1))
    return dcg / ideal


@dataclass(frozen=True, slots=True)
class Scores:
    """The five metrics, averaged over ``n`` queries (``n == 1``: one query's values)."""

    ndcg10: float
    recall1: float
    recall5: float
    recall10: float
    mrr10: float
    n: int

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError(f"Scores.n must be >= 0, got {self.n}")
        for name, value in zip(METRIC_NAMES, self.values()):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Scores {name} must be in [0, 1], got {value}")

    def values(self) -> tuple[float, float, float, float, float]:
        """The metrics in the order of METRIC_NAMES."""
        return (self.ndcg10, self.recall1, self.recall5, self.recall10, self.mrr10)

    def as_dict(self) -> dict[str, float | int]:
        """``{"ndcg@10": ..., "recall@1": ..., ..., "n": ...}`` as written to metrics.json."""
        return {**dict(zip(METRIC_NAMES, self.values())), "n": self.n}


EMPTY = Scores(0.0, 0.0, 0.0, 0.0, 0.0, 0)


def score(ranked: Sequence[str], relevant: AbstractSet[str]) -> Scores:
    """All five metrics for one query."""
    return Scores(ndcg_at(ranked, relevant, 10), recall_at(ranked, relevant, 1), recall_at(ranked, relevant, 5),
                  recall_at(ranked, relevant, 10), mrr_at(ranked, relevant, 10), 1)


def mean(scores: Sequence[Scores]) -> Scores:
    """The unweighted mean of each metric over ``scores`` (queries, or pairs); ``n`` is their total."""
    if not scores:
        return EMPTY
    columns = list(zip(*(s.values() for s in scores)))
    ndcg, r1, r5, r10, mrr = (math.fsum(column) / len(scores) for column in columns)
    return Scores(ndcg, r1, r5, r10, mrr, sum(s.n for s in scores))
