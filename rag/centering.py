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
Latent terms (an encoder's sparse features of what a text says, rag/types.py LatentEncoder) of a chunk in
another language than the question's add their cosine with the question's to the score that orders its
language (``latent_weight``) and to the one that interleaves languages (``latent_choice_weight``).
With a :class:`SingleScore` (``retrieval.single_score``) one linear score of the same cosines does both.
Measured choices are in the README ("Language-neutral retrieval", "Latent terms", "One score for the order
and the choice").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from itertools import zip_longest

import numpy as np

from rag.types import Hit, SparseVector
from rag.words import shared_shares


@dataclass(frozen=True, slots=True)
class LanguageMeans:
    """A collection's chunk count and dense vector sum per language, and how to centre with them."""

    counts: Mapping[str, int]
    sums: Mapping[str, np.ndarray] = field(repr=False)
    prior: float = 2.0
    query_weight: float = 0.5
    # Each language's mean vector of the parallel reference text (rag/reference.py) as the collection's encoder
    # reads it. With ``reference_prior``, a language that has one is shrunk by that many pseudo-chunks toward
    # the collection's mean moved by its reference offset (``shift``) instead of by ``prior`` toward the plain
    # mean: a language with few chunks, often all on one topic, keeps its language offset without its topic.
    offsets: Mapping[str, np.ndarray] = field(default_factory=dict, repr=False)
    reference_prior: float | None = None

    def __post_init__(self) -> None:
        if set(self.counts) != set(self.sums):
            raise ValueError(f"counts and sums name different languages: {sorted(self.counts)} vs {sorted(self.sums)}")
        if any(count < 1 for count in self.counts.values()):
            raise ValueError(f"every language needs >= 1 chunk, got {dict(self.counts)}")
        if self.reference_prior is not None and not (math.isfinite(self.reference_prior) and self.reference_prior >= 0):
            raise ValueError(f"reference_prior must be a number >= 0 or None, got {self.reference_prior}")
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
        prior, target = self.prior, mean
        if self.reference_prior is not None and language in self.offsets:
            prior, target = self.reference_prior, mean + self.shift(language)
        return (np.asarray(self.sums[language], dtype=np.float64) + prior * target) / (self.counts[language] + prior)

    def shift(self, language: str) -> np.ndarray:
        """How far ``language``'s mean lies from the collection's by the reference text: its reference mean less
        the collection's languages' reference means weighted by their chunks, times the scale that best fits the
        collection's own language means (least squares over its languages, weighted by their chunks; >= 0):
        short reference sentences and long chunks sit at different distances from the centre, while a topic
        that only one language's chunks share hardly projects onto the language offsets."""
        if language not in self.offsets or language not in self.counts:
            raise ValueError(f"{language!r} needs chunks and a reference offset, got {sorted(self.offsets)}")
        raw = self._reference_shifts()
        mean = self.mean()
        assert mean is not None
        fit = sum(self.counts[code] * float((np.asarray(self.sums[code], dtype=np.float64) / self.counts[code] - mean)
                                            @ shift) for code, shift in raw.items())
        size = sum(self.counts[code] * float(shift @ shift) for code, shift in raw.items())
        return max(fit / size, 0.0) * raw[language] if size > 0 else np.zeros_like(mean)

    def _reference_shifts(self) -> dict[str, np.ndarray]:
        """Each language's reference mean less the chunk-weighted mix of them, for the languages that have one."""
        known = [code for code in self.counts if code in self.offsets]
        total = sum(self.counts[code] for code in known)
        mixed = np.sum([self.counts[code] * np.asarray(self.offsets[code], dtype=np.float64) for code in known],
                       axis=0) / total
        return {code: np.asarray(self.offsets[code], dtype=np.float64) - mixed for code in known}

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
class SingleScore:
    """One score per chunk that both orders a language's chunks and interleaves languages: a linear mix of
    the chunk's centred and plain cosines, its best sentence's, its latent terms' cosine (in every language,
    the question's own included) and ``own_language`` for a chunk in the question's language.

    Fitted on XQuAD's mixed pools (a listwise softmax over these features; docs/explorations/choice-score.md)
    and measured in the README ("One score for the order and the choice"). The plain cosine counts against
    a chunk (a negative weight): beyond what the centred cosine measures, it carries the language offset and
    a chunk's closeness to any question."""

    neutral_chunk: float
    neutral_sentence: float
    plain_chunk: float
    plain_sentence: float
    latent: float
    own_language: float
    # The score's share of the order within a language, the split scores' plain order the rest (1: the score
    # alone; 0: it only interleaves languages, which keeps the plain order that measured better where one
    # language is searched; README).
    order_share: float = 1.0

    def __post_init__(self) -> None:
        if not all(math.isfinite(getattr(self, f.name)) for f in fields(self)):
            raise ValueError(f"single score weights must be finite numbers, got {self}")
        if not 0 <= self.order_share <= 1:
            raise ValueError(f"the single score's order_share must be in [0, 1], got {self.order_share}")

    def of(self, neutral: float, best_neutral: float, plain: float, best_plain: float, latent: float,
           own: bool) -> float:
        """The chunk's score from its cosines (``own``: it is in the question's language)."""
        return (self.neutral_chunk * neutral + self.neutral_sentence * best_neutral + self.plain_chunk * plain
                + self.plain_sentence * best_plain + self.latent * latent + (self.own_language if own else 0.0))


@dataclass(frozen=True, slots=True)
class Centering:
    """A collection's chunk and sentence means, how much a chunk's best sentence counts in its score, and how
    much the latent terms count."""

    chunks: LanguageMeans
    sentences: LanguageMeans
    sentence_weight: float = 0.5
    # A chunk's latent-term cosine with the question's (0 for chunks in the question's own language) adds
    # ``latent_weight`` times itself to the score that orders its language and ``latent_choice_weight`` times
    # itself to the one that interleaves languages.
    latent_weight: float = 0.0
    latent_choice_weight: float = 0.0
    # A text holding the question's words that survive translation adds up to ``shared_choice_weight`` to
    # the score that interleaves languages (shared_shares), in search and in the extractive generator.
    shared_choice_weight: float = 0.0
    # One score for the order and the choice instead of the two above (sentence_weight and the latent
    # weights then do not count in search; the extractive generator keeps them).
    single: SingleScore | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.sentence_weight <= 1:
            raise ValueError(f"sentence_weight must be in [0, 1], got {self.sentence_weight}")
        if not all(math.isfinite(w) and w >= 0
                   for w in (self.latent_weight, self.latent_choice_weight, self.shared_choice_weight)):
            raise ValueError(f"latent and shared weights must be numbers >= 0, got {self.latent_weight}, "
                             f"{self.latent_choice_weight}, {self.shared_choice_weight}")

    @property
    def uses_latent(self) -> bool:
        """Whether any score uses the latent terms (so a search encodes the question's)."""
        return bool(self.latent_weight or self.latent_choice_weight or (self.single and self.single.latent))


@dataclass(frozen=True, slots=True)
class Products:
    """A stored vector ``d`` as SQL returns it: q'.d (centred question), q.d (plain question), d.mean(L), |d|."""

    query_dot: float
    plain_dot: float
    centroid_dot: float
    norm: float


@dataclass(frozen=True, slots=True)
class LatentQuery:
    """The question's latent terms (as a dense ``latent.dim``-d array) and language, for scoring chunks'."""

    plain: np.ndarray
    norm: float
    language: str | None = None  # the question's: its own chunks keep their dense order (see score_many)

    @classmethod
    def of(cls, centering: Centering, latent: SparseVector, language: str | None) -> LatentQuery | None:
        """None when every latent weight is 0 (nothing to score)."""
        if not centering.uses_latent:
            return None
        plain = np.zeros(latent.dim)
        for index, weight in latent.weights.items():
            plain[index] = weight
        return cls(plain, float(np.sqrt(_dot(plain, plain))), language)

    def score_vectors(self, languages: Sequence[str], latents: Sequence[SparseVector | None]) -> list[float]:
        """:meth:`score_many` for texts' latent terms given as SparseVectors (None or empty: no terms)."""
        return self.score_many(languages, [
            None if latent is None else (np.fromiter(latent.weights.keys(), dtype=np.int64, count=len(latent.weights)),
                                         np.fromiter(latent.weights.values(), dtype=np.float64,
                                                     count=len(latent.weights)))
            for latent in latents])

    def score_many(self, languages: Sequence[str], latents: Sequence[tuple[np.ndarray, np.ndarray] | None]
                   ) -> list[float]:
        """Each chunk's latent-term cosine with the question's, the chunks' terms given as (term ids, weights), in
        one vectorised pass (a search scores hundreds); 0 for a chunk without latent terms.

        A chunk in the question's own language scores 0: there the dense cosine orders better alone (the
        manuals' monolingual R@1: 0.798 without latent terms, 0.760 with them), while in other languages the
        latent terms add what the dense vector's language offset hides (README, "Latent terms")."""
        sizes = np.array([0 if item is None else len(item[0]) for item in latents])
        found = [item for item in latents if item is not None and len(item[0])]
        if not found or not self.norm:
            return [0.0] * len(latents)
        ids = np.concatenate([item[0] for item in found]).astype(np.int64)
        values = np.concatenate([item[1] for item in found]).astype(np.float64)
        owner = np.repeat(np.arange(len(latents)), sizes)  # the chunk each term belongs to
        norms = np.sqrt(np.bincount(owner, weights=values * values, minlength=len(latents)))
        dots = np.bincount(owner, weights=self.plain[ids] * values, minlength=len(latents))
        return [0.0 if not norm or (self.language is not None and code == self.language)
                else float(dot / (norm * self.norm))
                for code, norm, dot in zip(languages, norms.tolist(), dots.tolist(), strict=True)]


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """a.b of two long dense vectors without BLAS: OpenBLAS spreads a 16,384-d dot over its threads, which
    measured 70x slower than this on two busy cores (0.86 ms against 0.012)."""
    return float(np.multiply(a, b).sum())


@dataclass(frozen=True, slots=True)
class ChunkScore:
    """A chunk's plain cosine (which orders a language's chunks) and centred cosine (which interleaves
    languages), each mixing the chunk's vector with its best sentence's and adding its latent terms' cosine
    where the collection has them."""

    plain: float
    neutral: float


def score_chunk(centering: Centering, query: np.ndarray, plain_query: np.ndarray, language: str,
                chunk: Products, sentences: Sequence[Products], latent: float = 0.0, own: bool = False
                ) -> ChunkScore:
    """The chunk's scores from its own products and its sentences' (a one-sentence chunk is its sentence),
    plus its latent terms' cosine with the question's: ``latent_weight`` times it in the score that orders
    its language, ``latent_choice_weight`` times it in the score that interleaves languages (README,
    "Latent terms"). The latent cosine of a chunk in the question's own language is 0
    (LatentQuery.score_many): the latent terms add to other languages' chunks what the dense vector's
    language offset takes from them. With ``centering.single`` both scores are its one score (``own``: the
    chunk is in the question's language; ``latent`` is then counted in every language), the order only
    ``single.order_share`` of it and the split order the rest."""
    chunk_centroid = _centroid_or_zero(centering.chunks, language, len(query))
    sentence_centroid = _centroid_or_zero(centering.sentences, language, len(query))
    plain_norm = float(np.linalg.norm(plain_query))
    plain = _plain(chunk, plain_norm)
    neutral = centred_cosine(query, chunk_centroid, chunk.query_dot, chunk.centroid_dot, chunk.norm)
    best_plain = max((_plain(s, plain_norm) for s in sentences), default=plain)
    best_neutral = max((centred_cosine(query, sentence_centroid, s.query_dot, s.centroid_dot, s.norm)
                        for s in sentences), default=neutral)
    w = centering.sentence_weight
    # The split order counts latent terms for other languages only (with ``single`` they come in every language).
    order = w * best_plain + (1 - w) * plain + (0.0 if own else centering.latent_weight * latent)
    if centering.single is None:
        return ChunkScore(order, w * best_neutral + (1 - w) * neutral + centering.latent_choice_weight * latent)
    score = centering.single.of(neutral, best_neutral, plain, best_plain, latent, own)
    share = centering.single.order_share
    return ChunkScore(share * score + (1 - share) * order, score)


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


def language_scores(hits: Sequence[Hit]) -> dict[str, list[float]]:
    """The hits' scores per chunk language, in the hits' order."""
    scores: dict[str, list[float]] = {}
    for hit in hits:
        scores.setdefault(hit.chunk.language, []).append(hit.score)
    return scores


def translated_choice(dense: Sequence[Hit], translated: Mapping[str, Sequence[Hit]], margin: float
                      ) -> dict[str, list[float]]:
    """The scores that interleave languages when the question was also translated (translate-then-embed).

    ``dense`` is the original question's language-neutral leg, ``translated[L]`` the leg of its translation
    into L, searched among L's chunks. A language with a translation takes, slot by slot, the better of the
    two legs' scores (each sorted best first), lowered by ``margin``, whichever leg gave it: a translation
    matches its language's passages more closely than the original question matches another language's,
    and without the margin translated languages crowd out the question's own and the untranslated ones.
    Lowering only the translation's scores (the better of original and translation minus the margin) kept
    fewer same-language answers (README, "Translated questions in the language choice"). Other languages
    keep the original's scores; with nothing translated this is the dense leg's scores per language.
    """
    scores = language_scores(dense)
    for language, hits in translated.items():
        original = sorted(scores.get(language, ()), reverse=True)
        translation = sorted((hit.score for hit in hits), reverse=True)
        scores[language] = [max(pair) - margin
                            for pair in zip_longest(original, translation, fillvalue=-math.inf)]
    return scores


def shared_evidence(legs: Sequence[Sequence[Hit]], words: frozenset[str], weight: float) -> list[list[Hit]]:
    """The legs' hits with ``weight`` times their chunk's :func:`shared_shares` added to their scores, for the
    choice between languages (IDF among the legs' chunks).

    The lexical legs already lift a chunk that holds the question's codes or numbers within its language;
    this also lifts its language, in whichever language the chunk and the question are (the question's own
    included, so it does not favour other languages). Without it a Spanish question about the part HX-BK1
    preferred a Spanish warranty passage to the English one that names the part.
    """
    if not words or not weight:
        return [list(hits) for hits in legs]
    chunks = {hit.key: hit.chunk for hits in legs for hit in hits}
    shares = dict(zip(chunks, shared_shares([" ".join((*c.heading, c.text)) for c in chunks.values()], words),
                      strict=True))
    return [[replace(hit, score=hit.score + weight * shares[hit.key]) for hit in hits] for hits in legs]


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
