"""Hybrid retrieval: a dense leg and one or more sparse legs, fused by Reciprocal Rank Fusion (fusion.py),
then reranked.

With a translator, the question is also translated into the collection's main languages and each
translation runs its own sparse leg (``sparse:de``): lexical matching needs the document's words.
With ``translate_dense`` each translation also runs a dense leg among its language's chunks
(``dense:de``), and its scores take part in how languages are interleaved (rag/centering.py,
``translated_choice``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import cast

import numpy as np

from rag.centering import Centering, SingleScore, shared_evidence, translated_choice
from rag.config import RetrievalConfig
from rag.encoders.lexical import shared_terms, stopword_indices
from rag.reference import SENTENCES, reference_sums
from rag.search.fusion import rrf, rrf_by_language
from rag.store import PgStore
from rag.types import (
    Collection,
    Encoder,
    Filter,
    Hit,
    LatentEncoder,
    LegScore,
    Reranker,
    SearchMode,
    SparseVector,
    Translator,
    check_text,
    latent_dim,
)
from rag.words import bm25_idf, surviving_words

log = logging.getLogger(__name__)

# Translations a retriever keeps, least recently used dropped first (one per question and language).
TRANSLATIONS_KEPT = 4096


def _within(where: Filter | None, languages: tuple[str, ...]) -> Filter | None:
    """``where`` narrowed to ``languages`` (None when none of them is left)."""
    allowed = tuple(code for code in languages if not (where and where.languages) or code in where.languages)
    return replace(where or Filter(), languages=allowed) if allowed else None


@dataclass(slots=True)
class Retriever:
    """Searches one collection with its encoder; holds the translation cache."""

    store: PgStore
    encoder: Encoder
    collection: Collection
    detect: Callable[[str], str | None]
    settings: RetrievalConfig = field(default_factory=RetrievalConfig)
    reranker: Reranker | None = None
    translator: Translator | None = None
    _translations: OrderedDict[tuple[str, str], str] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def search(self, query: str, k: int = 10, where: Filter | None = None, mode: SearchMode = SearchMode.HYBRID,
               rerank: bool = True, translate: bool = True) -> list[Hit]:
        """The best ``k`` hits for ``query``: legs by ``mode``, fused by RRF, reranked when a reranker is set."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        check_text(query, "query")
        started = time.perf_counter()
        hits = self._fused_in_sql(query, where) if self._sql_fusion(mode, translate) else None
        if hits is None:
            hits = self._fused(query, where, mode, translate)
        legs = sorted({leg.leg for hit in hits for leg in hit.legs})
        reranker = self.reranker if rerank and hits else None
        if reranker is not None:
            hits = reranker.rerank(query, hits[: max(self.settings.rerank_candidates, k)], k)
        hits = hits[:k]
        log.info("search %s: k %d, %s, %d hits from legs %s%s, %.1f ms", self.collection.name, k, mode.value,
                 len(hits), ",".join(legs) or "none", ", reranked" if reranker is not None else "",
                 (time.perf_counter() - started) * 1000)
        log.debug("search %s: query %r", self.collection.name, query)
        return hits

    def _fused(self, query: str, where: Filter | None, mode: SearchMode, translate: bool) -> list[Hit]:
        rankings, weights, languages, translated = self._legs(query, where, mode, translate)
        if self._neutral(mode):  # also with the dense leg alone: the question's codes still choose the language
            dense, *legs = shared_evidence([rankings[0], *translated.values()], surviving_words(query),
                                           self.settings.shared_choice_weight)
            choice = translated_choice(dense, dict(zip(translated, legs, strict=True)),
                                       self.settings.translated_choice_margin)
            return rrf_by_language(rankings[0], rankings, self.settings.rrf_k, weights, choice=choice)
        if len(rankings) == 1:
            return rankings[0]
        return rrf(rankings, self.settings.rrf_k, weights, self._language_weight(languages))

    def _neutral(self, mode: SearchMode) -> bool:
        return self.settings.language_neutral and mode is SearchMode.HYBRID

    def _translating(self, translate: bool, mode: SearchMode) -> bool:
        """Whether this search translates the question (the dense mode has no translated legs)."""
        return (translate and self.translator is not None and self.settings.translate_languages > 0
                and mode is not SearchMode.DENSE)

    def _sql_fusion(self, mode: SearchMode, translate: bool) -> bool:
        return self.settings.fuse_in_sql and mode is SearchMode.HYBRID and not self._translating(translate, mode)

    def _fused_in_sql(self, query: str, where: Filter | None) -> list[Hit] | None:
        (encoding,) = self.encoder.encode_queries([query])
        sparse = self._weighted(encoding.sparse, self.detect(query)) if encoding.sparse is not None else None
        if sparse is None or not sparse.weights:
            return None
        k = max(self.settings.k_dense, self.settings.k_sparse)
        return self.store.hybrid_search(self.collection, encoding.dense, sparse, k, where, self.detect(query),
                                        self.settings)

    def _language_weight(self, languages: Sequence[str | None]) -> Callable[[int, Hit], float]:
        factor = self.settings.cross_language_sparse_weight

        def weight(index: int, hit: Hit) -> float:
            own = languages[index]
            return 1.0 if own is None or hit.chunk.language == own else factor

        return weight

    def _legs(self, query: str, where: Filter | None, mode: SearchMode, translate: bool
              ) -> tuple[list[list[Hit]], list[float], list[str | None], dict[str, list[Hit]]]:
        """Each leg's ranking, its weight, and the language it matches words in (None for the original
        question's dense leg); and the translated dense legs by language (they take part in the choice)."""
        (encoding,) = self.encoder.encode_queries([query])
        s = self.settings
        rankings: list[list[Hit]] = []
        weights: list[float] = []
        languages: list[str | None] = []
        translated: dict[str, list[Hit]] = {}
        own = self.detect(query)
        centering = self.centering()  # read once per search: the legs below all use the same statistics
        translations = (self._translations_of(query, self._target_languages(own, where, centering))
                        if self._translating(translate, mode) else {})
        if mode in (SearchMode.DENSE, SearchMode.HYBRID):
            rankings.append(self._dense(encoding.dense, own, where, centering, query))
            weights.append(s.dense_weight)
            languages.append(None)
        if s.translate_dense and self._neutral(mode):
            for target, ranking in self._translated_dense(translations, where, centering):
                translated[target] = ranking
                rankings.append(ranking)
                weights.append(s.dense_weight)
                languages.append(target)
        if mode in (SearchMode.SPARSE, SearchMode.HYBRID):
            for leg, sparse in self._sparse_queries(own, encoding.sparse, translations):
                language = leg.removeprefix("sparse:") if ":" in leg else own
                for name, vector, scope in self._scoped(leg, language, sparse, query, where, centering, mode):
                    rankings.append(self.store.sparse_search(self.collection, vector, s.k_sparse, scope, s.ef_search,
                                                             name))
                    weights.append(s.sparse_weight)
                    languages.append(language)
        return rankings, weights, languages, translated

    def _scoped(self, leg: str, language: str | None, sparse: SparseVector, query: str, where: Filter | None,
                centering: Centering | None, mode: SearchMode) -> list[tuple[str, SparseVector, Filter | None]]:
        """A lexical leg as it runs: over every chunk, or (language-neutral hybrid) over the chunks of its own
        language with all its words, plus ``sparse:shared`` over the other languages with only the words
        that survive translation (``shared_terms``: codes, numbers, Latin terms in other scripts)."""
        if not self._neutral(mode) or language is None or centering is None:
            return [(leg, sparse, where)]
        others = tuple(code for code in centering.chunks.languages if code != language)
        scoped = [(leg, sparse, _within(where, (language,)))]
        shared = shared_terms(query, sparse.dim) if leg == "sparse" and self.encoder.lexical_idf else frozenset()
        kept = {term: weight for term, weight in sparse.weights.items() if term in shared}
        if kept and others:
            scoped.append(("sparse:shared", SparseVector(kept, sparse.dim), _within(where, others)))
        return [(name, vector, scope) for name, vector, scope in scoped if scope is not None]

    def centering(self) -> Centering | None:
        """The collection's language means as they are now; None when language-neutral scoring is off."""
        s = self.settings
        if not s.language_neutral:
            return None
        single = (SingleScore(s.single_neutral_chunk, s.single_neutral_sentence, s.single_plain_chunk,
                              s.single_plain_sentence, s.single_latent, s.single_own_language,
                              s.single_order_share if s.single_order else 0.0)
                  if s.single_score and latent_dim(self.encoder) > 0 else None)  # its weights need latent terms
        reference_prior = s.reference_prior if s.language_reference else None

        def read() -> Centering:
            return self.store.centering(self.collection, s.language_prior, s.query_language_weight,
                                        s.sentence_weight, s.latent_weight, s.latent_choice_weight, reference_prior)

        centering = read()
        missing = {code for code in centering.chunks.counts if code in SENTENCES} - set(centering.chunks.offsets)
        if reference_prior is not None and missing:
            # A collection ingested before the reference text existed (or a crash before ingest wrote it): read
            # it now with the collection's encoder, once, as ingest would have.
            self.store.ensure_language_references(self.collection, lambda codes: reference_sums(self.encoder, codes))
            centering = read()
        return replace(centering, shared_choice_weight=s.shared_choice_weight, single=single)

    def _dense(self, vector: np.ndarray, language: str | None, where: Filter | None,
               centering: Centering | None, query: str | None = None) -> list[Hit]:
        """The dense leg: language-neutral (centred cosine, per-language scans) with ``centering``, else plain;
        with ``query``, its latent terms order each language's chunks too (where the encoder has them)."""
        s = self.settings
        if centering is None:
            return self.store.dense_search(self.collection, vector, s.k_dense, where, s.ef_search, s.rescore_factor)
        latent = None
        if query is not None and centering.uses_latent and latent_dim(self.encoder) > 0:
            (latent,) = cast(LatentEncoder, self.encoder).encode_latent([query])
        return self.store.neutral_dense_search(self.collection, vector, language, centering, s.k_dense,
                                               where, s.ef_search, s.exact_scan_below, s.rescore_factor, latent)

    def _translated_dense(self, translations: Mapping[str, str], where: Filter | None, centering: Centering | None
                          ) -> list[tuple[str, list[Hit]]]:
        """Translate-then-embed: the question translated into each target language, searched densely among
        that language's chunks (leg ``dense:de``); fused within the language like the lexical legs, and its
        scores take part in choosing between languages (``translated_choice``)."""
        found = []
        for language, translation in translations.items():
            scope = _within(where, (language,))
            if scope is None:
                continue
            (encoding,) = self.encoder.encode_queries([translation])
            hits = self._dense(encoding.dense, language, scope, centering)
            found.append((language, [replace(h, legs=(LegScore(f"dense:{language}", rank, h.score),))
                                     for rank, h in enumerate(hits, 1)]))
        return found

    def _sparse_queries(self, own: str | None, sparse: SparseVector | None, translations: Mapping[str, str]
                        ) -> list[tuple[str, SparseVector]]:
        queries = [("sparse", sparse, own)] if sparse is not None else []
        for language, translation in translations.items():
            (encoding,) = self.encoder.encode_queries([translation])
            if encoding.sparse is not None:
                queries.append((f"sparse:{language}", encoding.sparse, language))
        return [(leg, self._weighted(vector, language)) for leg, vector, language in queries]

    def _weighted(self, sparse: SparseVector, language: str | None) -> SparseVector:
        """Lexical query terms weighted by the collection's IDF, the language's stopwords dropped."""
        if not self.encoder.lexical_idf:
            return sparse
        stop = stopword_indices(language, sparse.dim)
        kept = {term: weight for term, weight in sparse.weights.items() if term not in stop}
        # A question made only of stopwords keeps them rather than matching nothing.
        sparse = SparseVector(kept, sparse.dim) if kept else sparse
        total, frequencies = self.store.term_frequencies(self.collection, sorted(sparse.weights))
        weights = {term: weight * bm25_idf(total, frequencies[term])
                   for term, weight in sparse.weights.items() if frequencies.get(term)}
        return SparseVector(weights, sparse.dim)

    def _target_languages(self, own: str | None, where: Filter | None, centering: Centering | None) -> list[str]:
        """The languages a question in ``own`` is translated into, as the collection is now: its most frequent
        others that ``where`` allows and that hold at least ``translate_min_share`` of its chunks (a few
        misdetected chunks get no LLM call)."""
        # Both are most chunks first: LanguageMeans.languages, and the status query's ORDER BY.
        counts = centering.chunks.counts if centering is not None else self.store.status(self.collection).languages
        ordered = centering.chunks.languages if centering is not None else tuple(counts)
        floor = self.settings.translate_min_share * sum(counts.values())
        allowed = where.languages if where is not None and where.languages else None
        found = [code for code in ordered
                 if code not in ("und", own) and counts[code] >= floor and (allowed is None or code in allowed)]
        return found[: self.settings.translate_languages]

    def _translations_of(self, query: str, languages: Sequence[str]) -> dict[str, str]:
        """``query`` in each of ``languages``: from the cache, else from the translator, the missing ones at the
        same time (each is one LLM call). A failed translation raises the translator's error."""
        with self._lock:
            found = {code: self._translations[(query, code)] for code in languages if (query, code) in self._translations}
            for code in found:
                self._translations.move_to_end((query, code))
        missing = [code for code in languages if code not in found]
        if missing:
            assert self.translator is not None
            translate = self.translator.translate
            if len(missing) == 1:
                done = [translate(query, missing[0])]
            else:
                with ThreadPoolExecutor(max_workers=len(missing), thread_name_prefix="rosetta-translate") as pool:
                    done = list(pool.map(lambda code: translate(query, code), missing))
            with self._lock:
                for code, text in zip(missing, done):
                    self._translations[(query, code)] = text
                while len(self._translations) > TRANSLATIONS_KEPT:
                    self._translations.popitem(last=False)
            found.update(zip(missing, done))
        return {code: found[code] for code in languages}
