"""The retrieval evaluation: every query language x doc language x leg, for Rosetta and a LlamaIndex peer.

Each doc language is ingested once into its own collection (``eval-xquad-de``); re-running finds the
documents unchanged and the encodings cached, so only the searches run again. ``limit`` keeps the
first N queries of each language and never the corpus: every run searches the same full corpus
(XQuAD: all 240 paragraphs), so scores with and without a limit are comparable and the collection
is shared. Hits are deduplicated by relevance unit (a document, or for manuals a gold section or a
chunk) keeping the best rank, then scored by ``evals.metrics``. ``--pool mixed`` (one collection holding
every document once, in a seeded language) is ``evals.mixed``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import Enum
from functools import partial
from pathlib import Path
from typing import TypeVar

from evals.datasets import (
    Dataset,
    DocumentsConnector,
    Passage,
    Relevance,
    Span,
    limit_queries,
    load_beir,
    load_xquad,
)
from evals.metrics import Scores, mean, score
from evals.report import Leg, PairScore, Report, System, write_report
from evals.translation import TranslatorKind, translator
from rag.config import SINGLE_WEIGHTS, Config
from rag.errors import ConfigError, RagError
from rag.rosetta import Rosetta
from rag.types import Document, Encoder, JsonValue, SearchMode
from rag.words import TERMS_VERSION

# Chunks Rosetta returns per query: headroom so that 10 distinct units survive deduplication.
FETCH = 30

E = TypeVar("E", bound=Enum)
Searcher = Callable[[str], list[Passage]]
Progress = Callable[[str], None]


# The legs each system has; the peer's "sparse" is PostgreSQL full-text search (ts_rank).
SYSTEM_LEGS = {
    System.ROSETTA: (Leg.DENSE, Leg.SPARSE, Leg.HYBRID, Leg.HYBRID_RERANK),
    System.LLAMAINDEX: (Leg.DENSE, Leg.SPARSE, Leg.HYBRID),
}


def _parse_list(text: str, kind: type[Enum], what: str) -> tuple[Enum, ...]:
    items = [item.strip().lower() for item in text.split(",") if item.strip()]
    names = ", ".join(str(member.value) for member in kind)
    try:
        return tuple(dict.fromkeys(kind(item) for item in items))
    except ValueError:
        raise ConfigError(f"unknown {what} in {text!r}; choose from: {names}") from None


def parse_one(text: str, kind: type[E], what: str) -> E:
    """Exactly one member of ``kind`` by its value, or a ConfigError naming the choices."""
    found = _parse_list(text, kind, what)
    if len(found) != 1 or not isinstance(found[0], kind):
        raise ConfigError(f"give one {what}, got {text!r}")
    return found[0]


def parse_legs(text: str) -> tuple[Leg, ...]:
    """``dense,sparse,hybrid,hybrid+rerank`` (any subset) as Legs."""
    return tuple(leg for leg in _parse_list(text, Leg, "leg") if isinstance(leg, Leg))


def parse_systems(text: str) -> tuple[System, ...]:
    """``rosetta``, ``llamaindex-pgvector`` or ``both``."""
    if text.strip().lower() == "both":
        return (System.ROSETTA, System.LLAMAINDEX)
    return tuple(s for s in _parse_list(text, System, "system (or 'both')") if isinstance(s, System))


def parse_languages(text: str | None) -> tuple[str, ...]:
    """``en,de,zh`` as a tuple of codes; empty for None (meaning every language of the dataset)."""
    return tuple(dict.fromkeys(code.strip() for code in (text or "").split(",") if code.strip()))


@dataclass(frozen=True, slots=True)
class Plan:
    """What to run: languages, legs and systems."""

    query_langs: tuple[str, ...]
    doc_langs: tuple[str, ...]
    legs: tuple[Leg, ...] = tuple(Leg)
    systems: tuple[System, ...] = (System.ROSETTA,)

    def __post_init__(self) -> None:
        for name in ("query_langs", "doc_langs", "legs", "systems"):
            if not getattr(self, name):
                raise ValueError(f"Plan.{name} must not be empty")


def units(passages: Sequence[Passage], gold: frozenset[Span], relevance: Relevance) -> list[str]:
    """The ranked relevance units of ``passages``, each at its best rank: a gold span's key where a
    passage lies in one, else the document (document relevance) or the passage itself (section relevance)."""
    ranked: dict[str, None] = {}
    for p in passages:
        span = next((s for s in gold if s.holds(p.uri, p.start, p.end)), None)
        unit = span.key if span else p.uri if relevance is Relevance.DOCUMENT else f"{p.uri}#{p.start}-{p.end}"
        ranked.setdefault(unit)
    return list(ranked)


def score_pair(dataset: Dataset, search: Searcher, query_lang: str, doc_lang: str) -> Scores:
    """Mean scores of ``search`` over the queries in ``query_lang`` judged in ``doc_lang``."""
    return mean([score(units(search(query.text), gold, dataset.relevance), {s.key for s in gold})
                 for query, gold in dataset.judged(query_lang, doc_lang)])


def collection_name(dataset: Dataset, lang: str) -> str:
    """``eval-{dataset}-{lang}``, with characters a collection name cannot hold replaced."""
    return re.sub(r"[^\w.-]", "-", f"eval-{dataset.name}-{lang}")[:128]


def ingest_language(rosetta: Rosetta, dataset: Dataset, lang: str, progress: Progress) -> str:
    """Ingest ``lang``'s documents into their collection (a no-op when unchanged); return its name."""
    documents = dataset.documents.get(lang, ())
    if not documents:
        raise ConfigError(f"dataset {dataset.name} has no documents in {lang!r}; "
                          f"its languages: {', '.join(dataset.languages())}")
    return ingest_documents(rosetta, collection_name(dataset, lang), documents, progress)


def ingest_documents(rosetta: Rosetta, name: str, documents: Sequence[Document], progress: Progress) -> str:
    """Ingest ``documents`` into the collection ``name`` (a no-op when unchanged); return the name."""
    report = rosetta.ingest([DocumentsConnector.of(documents)], collection=name)
    failed = [f"{f.uri}: {f.error}" for f in report.files if f.error]
    if failed:
        raise RagError(f"ingesting {name} failed for {len(failed)} documents, e.g. {failed[0]}")
    progress(f"{name}: {len(documents)} documents; {report.chunks} chunks (re)stored in {report.seconds:.1f}s")
    return name


def rosetta_searcher(rosetta: Rosetta, collection: str, leg: Leg) -> Searcher:
    """Rosetta's search for one leg: its mode, and the reranker only for ``hybrid+rerank``."""
    mode = {Leg.DENSE: SearchMode.DENSE, Leg.SPARSE: SearchMode.SPARSE}.get(leg, SearchMode.HYBRID)

    def search(text: str) -> list[Passage]:
        hits = rosetta.search(text, collection=collection, k=FETCH, mode=mode, rerank=leg is Leg.HYBRID_RERANK)
        return [Passage(h.chunk.document_uri, h.chunk.start, h.chunk.end, h.chunk.language) for h in hits]

    return search


@contextmanager
def searchers(rosetta: Rosetta, system: System, collection: str, legs: Sequence[Leg]
              ) -> Iterator[dict[Leg, Searcher]]:
    """The searchers of ``system`` over ``collection`` for the legs it has."""
    if system is System.ROSETTA:
        yield {leg: rosetta_searcher(rosetta, collection, leg) for leg in legs}
        return
    from llama_index.core.vector_stores.types import VectorStoreQueryMode

    from evals.peer_llamaindex import LlamaIndexPeer

    modes = {Leg.DENSE: VectorStoreQueryMode.DEFAULT, Leg.SPARSE: VectorStoreQueryMode.TEXT_SEARCH,
             Leg.HYBRID: VectorStoreQueryMode.HYBRID}
    peer = LlamaIndexPeer.build(rosetta, collection)
    try:
        yield {leg: partial(peer.search, mode=modes[leg]) for leg in legs}
    finally:
        peer.close()


def runnable_legs(rosetta: Rosetta, plan: Plan, collection: str) -> tuple[dict[System, tuple[Leg, ...]], list[str]]:
    """The legs each system runs, and a note for each requested leg it cannot."""
    has_reranker = rosetta.retriever(collection).reranker is not None
    runs: dict[System, tuple[Leg, ...]] = {}
    skipped = []
    for system in plan.systems:
        legs = [leg for leg in plan.legs if leg in SYSTEM_LEGS[system]]
        skipped += [f"{system.value}/{leg.value}: the system has no such leg"
                    for leg in plan.legs if leg not in SYSTEM_LEGS[system]]
        if Leg.HYBRID_RERANK in legs and not has_reranker:
            legs.remove(Leg.HYBRID_RERANK)
            skipped.append(f"{system.value}/hybrid+rerank: no reranker configured (set ROSETTA_RERANKER)")
        runs[system] = tuple(legs)
    return runs, skipped


def warm_queries(rosetta: Rosetta, dataset: Dataset, plan: Plan, collection: str) -> None:
    """Encode every query once, in batches: searches then read them from the encoding cache."""
    encoder = rosetta.encoder(collection)
    for lang in plan.query_langs:
        encoder.encode_queries([query.text for query in dataset.queries.get(lang, ())])


def evaluate(rosetta: Rosetta, dataset: Dataset, plan: Plan, progress: Progress = lambda message: None) -> Report:
    """Ingest, search and score every pair of ``plan``; see the module docstring."""
    started = time.perf_counter()
    collections = {lang: ingest_language(rosetta, dataset, lang, progress) for lang in plan.doc_langs}
    runs, skipped = runnable_legs(rosetta, plan, collections[plan.doc_langs[0]])
    warm_queries(rosetta, dataset, plan, collections[plan.doc_langs[0]])
    pairs: list[PairScore] = []
    seconds = {system.value: 0.0 for system in runs}
    for doc_lang, collection in collections.items():
        for system, legs in runs.items():
            began = time.perf_counter()
            with searchers(rosetta, system, collection, legs) as by_leg:
                for leg, search in by_leg.items():
                    for query_lang in plan.query_langs:
                        if not dataset.judged(query_lang, doc_lang):
                            skipped.append(f"{query_lang}->{doc_lang}: no query has gold in {doc_lang}")
                            continue
                        pairs.append(PairScore(system, query_lang, doc_lang, leg,
                                               score_pair(dataset, search, query_lang, doc_lang)))
                    progress(f"{system.value}/{leg.value} over {doc_lang}: {len(plan.query_langs)} query languages")
            seconds[system.value] += time.perf_counter() - began
    config = run_config(rosetta, dataset, plan, collections, seconds, time.perf_counter() - started)
    return Report(tuple(pairs), tuple(dict.fromkeys(skipped)), config)


def run_config(rosetta: Rosetta, dataset: Dataset, plan: Plan, collections: Mapping[str, str],
               seconds: Mapping[str, float], total: float) -> dict[str, JsonValue]:
    """The settings a report records: dataset, plan, collections, encoder, retrieval knobs and timings."""
    r = rosetta.config.retrieval
    config: dict[str, JsonValue] = {
        "dataset": dataset.name, "relevance": dataset.relevance.value,
        "query_langs": list(plan.query_langs), "doc_langs": list(plan.doc_langs),
        "legs": [leg.value for leg in plan.legs], "systems": [s.value for s in plan.systems],
        "queries": {lang: len(dataset.queries.get(lang, ())) for lang in plan.query_langs},
        "documents": {lang: len(dataset.documents.get(lang, ())) for lang in plan.doc_langs},
        "collections": dict(collections), "encoder": rosetta.encoder(next(iter(collections.values()))).name,
        "terms": TERMS_VERSION,
        "rosetta": {"fetch": FETCH, "k_dense": r.k_dense, "k_sparse": r.k_sparse, "rrf_k": r.rrf_k,
                    "ef_search": r.ef_search, "reranker": str(getattr(r.reranker, "value", r.reranker)),
                    "translate_dense": r.translate_dense, "translate_languages": r.translate_languages,
                    "translated_choice_margin": r.translated_choice_margin,
                    "language_neutral": r.language_neutral, "sparse_weight": r.sparse_weight,
                    "latent_weight": r.latent_weight, "latent_choice_weight": r.latent_choice_weight,
                    "shared_choice_weight": r.shared_choice_weight, "single_score": r.single_score,
                    **({name: getattr(r, name) for name in (*SINGLE_WEIGHTS, "single_order", "single_order_share")} if r.single_score else {})},
        "notes": dict(dataset.notes), "search_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "seconds": round(total, 1),
    }
    if System.LLAMAINDEX in plan.systems:
        from evals.peer_llamaindex import SPARSE_TOP_K, TEXT_SEARCH_CONFIG, TOP_K

        config[System.LLAMAINDEX.value] = {"similarity_top_k": TOP_K, "sparse_top_k": SPARSE_TOP_K,
                                           "text_search_config": TEXT_SEARCH_CONFIG}
    return config


class DatasetKind(Enum):
    """The dataset formats ``--dataset`` accepts."""

    XQUAD = "xquad"
    BEIR = "beir"
    MANUALS = "manuals"


def parse_dataset(text: str) -> DatasetKind:
    """``xquad``, ``beir`` or ``manuals``."""
    return parse_one(text, DatasetKind, "dataset")


def available_languages(kind: DatasetKind, data: Path) -> tuple[str, ...]:
    """The languages a dataset folder holds (BEIR: read from its records when loaded)."""
    if kind is DatasetKind.XQUAD:
        return tuple(sorted(p.name.split(".")[1] for p in data.glob("xquad.*.json")))
    if kind is DatasetKind.MANUALS:
        return tuple(sorted(p.name for p in data.iterdir() if p.is_dir())) if data.is_dir() else ()
    return ()


def load_dataset(kind: DatasetKind, data: Path, languages: Sequence[str]) -> Dataset:
    """Load the dataset ``kind`` from ``data`` in ``languages`` (BEIR: all it holds)."""
    if kind is DatasetKind.XQUAD:
        return load_xquad(data, languages)
    if kind is DatasetKind.MANUALS:
        from evals.manuals import load_manuals

        return load_manuals(data, languages)
    return load_beir(data)


def load_plan(kind: DatasetKind, data: Path, langs: tuple[Sequence[str], Sequence[str]], legs: Sequence[Leg],
              systems: Sequence[System], limit: int | None) -> tuple[Dataset, Plan]:
    """The dataset (its first ``limit`` queries per language) and the plan over it; an empty list of query
    or doc languages in ``langs`` means every language of the dataset."""
    wanted = [*langs[0], *langs[1]] or available_languages(kind, data)
    dataset = limit_queries(load_dataset(kind, data, list(dict.fromkeys(wanted))), limit)
    return dataset, Plan(tuple(langs[0]) or tuple(dataset.queries), tuple(langs[1]) or tuple(dataset.documents),
                         tuple(legs), tuple(systems))


def run(kind: DatasetKind, data: Path, config: Config, out: Path, query_langs: Sequence[str] = (),
        doc_langs: Sequence[str] = (), legs: Sequence[Leg] = tuple(Leg),
        systems: Sequence[System] = (System.ROSETTA,), limit: int | None = None,
        progress: Progress = lambda message: None, encoder: Encoder | None = None,
        translating: TranslatorKind = TranslatorKind.NONE) -> Report:
    """Load the dataset, evaluate it on a Rosetta opened with ``config`` (and the translator ``translating``
    names, evals.translation), and write ``out``/metrics.json and heatmap.png. Empty language lists mean
    every language of the dataset."""
    dataset, plan = load_plan(kind, data, (query_langs, doc_langs), legs, systems, limit)
    with Rosetta.open(config, encoder=encoder, translator=translator(translating, dataset)) as rosetta:
        report = evaluate(rosetta, dataset, plan, progress)
    report = replace(report, config={**report.config, "data": str(data), "limit": limit,
                                     "translator": translating.value})
    write_report(report, out)
    return report
