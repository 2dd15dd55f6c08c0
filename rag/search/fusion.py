"""Reciprocal Rank Fusion: ranked lists from different legs fused by rank alone (Cormack et al., 2009).

Scores from different legs are not comparable, so only ranks count. Pure: no store, no encoder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from rag.centering import interleave, language_scores
from rag.types import Hit, LegScore


def rrf(rankings: Sequence[Sequence[Hit]], k: int = 60, weights: Sequence[float] | None = None,
        item_weight: Callable[[int, Hit], float] | None = None) -> list[Hit]:
    """Fuse ranked lists: score = sum of weight / (k + rank) over the lists holding a hit (1-based ranks).

    A hit missing from a list contributes nothing for it; a hit repeated within one list counts at its
    best rank. ``item_weight(list_index, hit)``, when given, scales one hit's share of one list. Each
    fused hit keeps every leg's LegScore. Ties break by (collection, chunk id).
    """
    if k < 0:
        raise ValueError(f"rrf k must be >= 0, got {k}")
    weights = [1.0] * len(rankings) if weights is None else list(weights)
    if len(weights) != len(rankings):
        raise ValueError(f"rrf got {len(rankings)} rankings but {len(weights)} weights")
    scores: dict[tuple[str, str], float] = {}
    legs: dict[tuple[str, str], list[LegScore]] = {}
    first: dict[tuple[str, str], Hit] = {}
    for index, (ranking, weight) in enumerate(zip(rankings, weights)):
        seen: set[tuple[str, str]] = set()
        for rank, hit in enumerate(ranking, start=1):
            if hit.key in seen:
                continue
            seen.add(hit.key)
            share = weight * (item_weight(index, hit) if item_weight else 1.0)
            scores[hit.key] = scores.get(hit.key, 0.0) + share / (k + rank)
            legs.setdefault(hit.key, []).extend(hit.legs)
            first.setdefault(hit.key, hit)
    fused = [replace(first[key], score=scores[key], legs=tuple(sorted(legs[key], key=_leg_order)))
             for key in first]
    return sorted(fused, key=lambda hit: (-hit.score, hit.key))


def _leg_order(leg: LegScore) -> tuple[str, int, float]:
    return (leg.leg, leg.rank, leg.score)


def rrf_by_language(dense: Sequence[Hit], rankings: Sequence[Sequence[Hit]], k: int = 60,
                    weights: Sequence[float] | None = None,
                    item_weight: Callable[[int, Hit], float] | None = None,
                    choice: Mapping[str, Sequence[float]] | None = None) -> list[Hit]:
    """RRF inside each chunk language (ranks counted within it), languages interleaved by the dense scores
    (or by ``choice``, each language's interleaving scores, when given).

    ``dense`` is the language-neutral dense leg and is also ``rankings[0]``. Lexical evidence exists only
    within a language (and for the few words that survive translation), so fusing across languages
    would lift every chunk in the question's language that shares a word with it; here the legs only
    reorder chunks of one language, and how languages interleave stays language-neutral.
    """
    languages = list(dict.fromkeys(hit.chunk.language for ranking in rankings for hit in ranking))
    ordered = {code: rrf([[hit for hit in ranking if hit.chunk.language == code] for ranking in rankings],
                         k, weights, item_weight) for code in languages}
    return interleave(ordered, language_scores(dense) if choice is None else choice)
