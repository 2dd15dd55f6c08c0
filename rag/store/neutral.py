"""Language-neutral dense search in Postgres (rag/centering.py): the statistics read, the per-language legs
built, and their rows turned into Hits ordered within each language by cosine and interleaved by centred
cosine."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from pgvector import SparseVector as PgSparseVector
from psycopg import sql

from rag.centering import (
    Centering,
    LanguageMeans,
    LatentQuery,
    Products,
    interleave,
    score_chunk,
)
from rag.store.adapt import dense_from_pg
from rag.store.sql import language_legs_statement, row_to_hit
from rag.store.storage import candidates
from rag.types import Collection, Filter, Hit, LegScore


def centering_from_rows(rows: Sequence[tuple[Any, ...]], prior: float, query_weight: float,
                        sentence_weight: float, latent_weight: float = 0.0,
                        latent_choice_weight: float = 0.0, reference_prior: float | None = None) -> Centering:
    """LANGUAGE_STATS rows (kind, language, rows, dense_sum) as the chunk and sentence means, with the reference
    text's means (kind ``reference``) as their offsets."""
    offsets = {str(code): dense_from_pg(total) / int(count) for k, code, count, total in rows if k == "reference"}

    def means(kind: str) -> LanguageMeans:
        found = [(str(code), int(count), dense_from_pg(total)) for k, code, count, total in rows if k == kind]
        return LanguageMeans({code: count for code, count, _ in found}, {code: v for code, _, v in found},
                             prior, query_weight, offsets, reference_prior)

    return Centering(means("chunk"), means("sentence"), sentence_weight, latent_weight, latent_choice_weight)


def language_legs(schema: str, collection: Collection, question: np.ndarray, language: str | None,
                  centering: Centering, k: int, where: Filter | None, exact_below: int, rescore_factor: int = 8
                  ) -> tuple[sql.Composed, dict[str, Any], np.ndarray] | None:
    """The UNION of per-language legs with its parameters (``pool``: each index scan's candidates) and the
    centred question; None when no language the collection holds passes ``where``."""
    means = centering.chunks
    wanted = [code for code in means.languages if where is None or not where.languages or code in where.languages]
    if not wanted:
        return None
    query = means.query(question, language)
    statement, params = language_legs_statement(
        schema, collection, [(code, means.counts[code] < exact_below) for code in wanted], where)
    params |= {"query": query.astype(np.float32), "plain": question.astype(np.float32), "k": k,
               "pool": candidates(collection.storage, k, rescore_factor)}
    for i, code in enumerate(wanted):
        centroid = means.centroid(code)
        sentence = centering.sentences.centroid(code) if centering.sentences.counts else centroid
        params[f"centroid_{i}"] = np.asarray(centroid, dtype=np.float32)
        params[f"sentence_centroid_{i}"] = np.asarray(sentence, dtype=np.float32)
    return statement, params, query


def _latent_scores(latent: LatentQuery | None, rows: Sequence[tuple[Any, ...]]) -> list[float]:
    """The rows' latent terms (pgvector's SparseVector, None where a chunk has none) scored for the question."""
    if latent is None:
        return [0.0] * len(rows)
    stored: list[PgSparseVector | None] = [row[18] for row in rows]
    return latent.score_many([row[5] for row in rows], [
        None if vector is None else (np.asarray(vector.indices(), dtype=np.int64),
                                     np.asarray(vector.values(), dtype=np.float64)) for vector in stored])


def interleaved(collection: Collection, centering: Centering, query: np.ndarray, question: np.ndarray,
                 rows: Sequence[tuple[Any, ...]], latent: LatentQuery | None = None, language: str | None = None
                 ) -> list[Hit]:
    """Rows of the language legs as Hits: per language by plain score, languages interleaved by neutral score
    (both with the latent terms' cosine where ``latent``, the question's, is given); with ``centering.single``
    both are its one score where the rows carry latent terms (``language``: the question's, for its
    ``own_language`` weight)."""
    ordered: dict[str, list[tuple[float, Hit]]] = {}
    neutral: dict[str, list[float]] = {}
    if centering.single is not None and all(row[18] is None for row in rows):
        # The single score's weights count latent terms; chunks stored without them (another encoder's
        # ingest, latent_terms = false) are scored as they would be by an encoder without them: split.
        centering = replace(centering, single=None)
    if latent is not None and centering.single is not None:
        latent = replace(latent, language=None)  # the single score counts latent terms in every language
    for row, latent_score in zip(rows, _latent_scores(latent, rows), strict=True):
        sentences = [Products(*values) for values in zip(*(row[i] or () for i in range(14, 18)))]
        scores = score_chunk(centering, query, question, row[5], Products(*map(float, row[10:14])), sentences,
                             latent_score, own=language is not None and row[5] == language)
        ordered.setdefault(row[5], []).append((scores.plain, row_to_hit(row, collection, "dense", 1, scores.plain)))
        neutral.setdefault(row[5], []).append(scores.neutral)
    by_plain = {code: [hit for _, hit in sorted(pairs, key=lambda p: (-p[0], p[1].chunk.id))]
                for code, pairs in ordered.items()}
    hits = interleave(by_plain, neutral)
    return [replace(hit, legs=(LegScore("dense", rank, hit.score),)) for rank, hit in enumerate(hits, 1)]
