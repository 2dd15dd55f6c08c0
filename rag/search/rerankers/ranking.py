"""What every reranker does with its scores: order the hits, keep the best ``k``, record the ``rerank`` leg."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from rag.types import Hit, LegScore

LEG = "rerank"


def check_k(k: int) -> None:
    """Raise ValueError unless ``k`` asks for at least one hit."""
    if k < 1:
        raise ValueError(f"rerank k must be >= 1, got {k}")


def ranked(scored: Iterable[tuple[Hit, float]], k: int) -> list[Hit]:
    """Return the ``k`` best-scored hits, best first (ties keep input order), each a copy whose score is
    the reranker's and whose legs end with a ``rerank`` LegScore (replacing an earlier rerank's)."""
    order = sorted(scored, key=lambda pair: -pair[1])
    return [_scored(hit, float(score), rank) for rank, (hit, score) in enumerate(order[:k], start=1)]


def _scored(hit: Hit, score: float, rank: int) -> Hit:
    legs = tuple(leg for leg in hit.legs if leg.leg != LEG)
    return replace(hit, score=score, legs=(*legs, LegScore(LEG, rank, score)))
