"""Language-neutral similarity: each language's mean vector is taken out before vectors are compared.

A multilingual encoder places every language in a region of its own: a question is closer to any
passage in its own language than to the passage in another language that answers it (same-language
bias). Most of that is a per-language offset, and a collection already knows it: the mean of its chunk
vectors per detected language (kept in Postgres, ``language_stats``). The score of a passage ``d`` in
language L for a question ``q`` in language Q is

    cos(q - a * mean(Q), d - mean(L))

where ``mean`` is shrunk toward the collection's mean with ``prior`` pseudo-chunks, so a language with one
chunk is not wiped out (its centred vector would otherwise be zero), and ``a`` (``query_weight``) is how
much of the question's own language is taken out (only when the collection holds that language).
Measured choices are in the README ("Language-neutral retrieval").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from rag.types import Hit


@dataclass(frozen=True, slots=True)
class LanguageMeans:
    """A collection's chunk count and dense vector sum per language, and how to centre with them."""

    counts: Mapping[str, int]
    sums: Mapping[str, np.ndarray] = field(repr=False)
    prior: float = 2.0
    query_weight: float = 0.5

    def __post_init__(self) -> None:
        if set(self.counts) != set(self.sums):
            raise ValueError(f"counts and sums name different languages: {sorted(self.counts)} vs {sorted(self.sums)}")
        if any(count < 1 for count in self.counts.values()):
            raise ValueError(f"every language needs >= 1 chunk, got {dict(self.counts)}")
        if self.prior < 0 or not 0 <= self.query_weight <= 2:
            raise ValueError(f"prior must be >= 0 and query_weight in [0, 2], got {self.prior}, {self.query_weight}")
        if len({np.shape(s) for s in self.sums.values()}) > 1:
            raise ValueError("the language sums have different dimensions")

    @property
    def languages(self) -> tuple[str, ...]:
        """The languages, most chunks first."""
        return tuple(sorted(self.counts, key=lambda code: (-self.counts[code], code)))

    def mean(self) -> np.ndarray | None:
        """The collection's mean vector; None when it is empty."""
        total = sum(self.counts.values())
        if not total:
            return None
        mean: np.ndarray = np.sum([np.asarray(s, dtype=np.float64) for s in self.sums.values()], axis=0) / total
        return mean

    def centroid(self, language: str) -> np.ndarray | None:
        """``language``'s mean shrunk toward the collection's; the collection's for a language it lacks."""
        mean = self.mean()
        if mean is None:
            return None
        if language not in self.counts:
            return mean
        return (np.asarray(self.sums[language], dtype=np.float64) + self.prior * mean) / (
            self.counts[language] + self.prior)

    def query(self, vector: np.ndarray, language: str | None) -> np.ndarray:
        """The question's vector with its language's mean taken out (as it is when the collection lacks it)."""
        if language is None or language not in self.counts or not self.query_weight:
            return np.asarray(vector, dtype=np.float64)
        centroid = self.centroid(language)
        assert centroid is not None
        return np.asarray(vector, dtype=np.float64) - self.query_weight * centroid

    def similarities(self, query: np.ndarray, vectors: np.ndarray, languages: Sequence[str]) -> np.ndarray:
        """Centred cosine of ``query`` (already through ``query()``) with each row of ``vectors``."""
        if len(vectors) != len(languages):
            raise ValueError(f"{len(vectors)} vectors but {len(languages)} languages")
        if not len(vectors):
            return np.empty(0)
        offsets = np.stack([_centroid_or_zero(self, code, vectors.shape[1]) for code in languages])
        centred = np.asarray(vectors, dtype=np.float64) - offsets
        return _cosines(np.asarray(query, dtype=np.float64), centred)


@dataclass(frozen=True, slots=True)
class Centering:
    """A collection's chunk and sentence means, and how much a chunk's best sentence counts in its score."""

    chunks: LanguageMeans
    sentences: LanguageMeans
    sentence_weight: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.sentence_weight <= 1:
            raise ValueError(f"sentence_weight must be in [0, 1], got {self.sentence_weight}")


@dataclass(frozen=True, slots=True)
class Products:
    """A stored vector ``d`` as SQL returns it: q'.d (centred question), q.d (plain question), d.mean(L), |d|."""

    query_dot: float
    plain_dot: float
    centroid_dot: float
    norm: float


@dataclass(frozen=True, slots=True)
class ChunkScore:
    """A chunk's plain cosine (which orders a language's chunks) and centred cosine (which interleaves
    languages), each mixing the chunk's vector with its best sentence's."""

    plain: float
    neutral: float


def score_chunk(centering: Centering, query: np.ndarray, plain_query: np.ndarray, language: str,
                chunk: Products, sentences: Sequence[Products]) -> ChunkScore:
    """The chunk's scores from its own products and its sentences' (a one-sentence chunk is its sentence)."""
    chunk_centroid = _centroid_or_zero(centering.chunks, language, len(query))
    sentence_centroid = _centroid_or_zero(centering.sentences, language, len(query))
    plain_norm = float(np.linalg.norm(plain_query))
    plain = _plain(chunk, plain_norm)
    neutral = centred_cosine(query, chunk_centroid, chunk.query_dot, chunk.centroid_dot, chunk.norm)
    best_plain = max((_plain(s, plain_norm) for s in sentences), default=plain)
    best_neutral = max((centred_cosine(query, sentence_centroid, s.query_dot, s.centroid_dot, s.norm)
                        for s in sentences), default=neutral)
    w = centering.sentence_weight
    return ChunkScore(w * best_plain + (1 - w) * plain, w * best_neutral + (1 - w) * neutral)


def interleave(ordered: Mapping[str, Sequence[Hit]], scores: Mapping[str, Sequence[float]]) -> list[Hit]:
    """Each language's hits, in their order, merged across languages by language-neutral scores.

    The i-th hit of language L takes L's i-th best score from ``scores`` (one below L's lowest when L has
    fewer), so the order inside a language is kept and only the interleaving of languages comes from
    the scores. Ties break by language, then position. Every hit keeps its legs.
    """
    placed: list[tuple[float, str, int, Hit]] = []
    for language, hits in ordered.items():
        slots = sorted(scores.get(language, ()), reverse=True)
        floor = (slots[-1] if slots else 0.0) - 1.0
        placed += [(slots[i] if i < len(slots) else floor, language, i, hit) for i, hit in enumerate(hits)]
    placed.sort(key=lambda entry: (-entry[0], entry[1], entry[2]))
    return [replace(hit, score=score) for score, _, _, hit in placed]


def stratified(languages: Sequence[str], plain: Sequence[float], neutral: Sequence[float]) -> list[float]:
    """Each item's score when items are ordered within their language by ``plain`` and languages are
    interleaved by ``neutral``: the item that is i-th of its language by ``plain`` takes that language's
    i-th best ``neutral`` score."""
    result = [0.0] * len(languages)
    for code in dict.fromkeys(languages):
        members = [i for i, other in enumerate(languages) if other == code]
        by_plain = sorted(members, key=lambda i: -plain[i])
        for i, value in zip(by_plain, sorted((neutral[i] for i in members), reverse=True)):
            result[i] = value
    return result


def _plain(products: Products, query_norm: float) -> float:
    denominator = products.norm * query_norm
    return products.plain_dot / denominator if denominator > 0 else 0.0


def _centroid_or_zero(means: LanguageMeans, language: str, dim: int) -> np.ndarray:
    centroid = means.centroid(language)
    return np.zeros(dim) if centroid is None else centroid


def centred_cosine(query: np.ndarray, centroid: np.ndarray, query_dot: float, centroid_dot: float,
                   norm: float) -> float:
    """cos(query, d - centroid) for a vector ``d`` known only by q.d, d.centroid and |d| (as SQL returns them)."""
    numerator = query_dot - float(query @ centroid)
    length = norm * norm - 2 * centroid_dot + float(centroid @ centroid)
    denominator = float(np.linalg.norm(query)) * float(np.sqrt(max(length, 0.0)))
    return numerator / denominator if denominator > 0 else 0.0


def _cosines(query: np.ndarray, rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1) * np.linalg.norm(query)
    cosines: np.ndarray = np.divide(rows @ query, norms, out=np.zeros(len(rows)), where=norms > 0)
    return cosines


def plain(sentence_weight: float = 0.5) -> Centering:
    """No statistics: every score is the plain cosine (language-neutral scoring turned off)."""
    return Centering(LanguageMeans({}, {}), LanguageMeans({}, {}), sentence_weight)
