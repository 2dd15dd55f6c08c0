"""Mixed-language pools: one collection holding each document once, in one language, so languages compete.

A pairs run (``evals.retrieval``) gives each document language its own collection, so the encoder's
preference for the query's own language never competes with the answer. Here, for a dataset whose
documents are parallel across languages (XQuAD: ``xquad://{lang}/{article}/{paragraph}``; manuals:
``manuals://{lang}/{relative path}``), each seed builds one collection
``eval-{dataset}-mixed-{doc langs}-s{seed}`` holding every document identity (the URI without its
language) once, in a language drawn by ``random.Random(seed)`` among the plan's doc languages it exists
in, identities taken in sorted order. A BEIR folder has no parallel structure: its whole corpus (in the
plan's doc languages) is one unseeded collection ``eval-{dataset}-mixed-{doc langs}``.

Every query of every query language is asked; its gold is the dataset's gold for (query id, language)
over the documents in the pool, so for a parallel dataset its document in the language that document was
given. A query is **cross** when no gold document is in its language, else **same**; queries without gold
in the pool (a manuals section missing from the drawn translation) are not asked. Each part gets R@1,
MRR@10 and nDCG@10 as pairs do (``units``, ``score``), and **bias@1** is the share of cross queries whose
top hit's chunk language (detected per chunk at ingest) is the query's. The LlamaIndex peer does not run
here. metrics.json's ``"mixed"`` shape and the averaging are in ``evals.report``.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

from evals.datasets import UNDETERMINED, Dataset, Passage, Query, Relevance, Span
from evals.metrics import mean, score
from evals.report import Leg, MixedScore, Report, Split, System, write_report
from evals.retrieval import (
    DatasetKind,
    Plan,
    Progress,
    Searcher,
    collection_name,
    ingest_documents,
    load_plan,
    parse_one,
    run_config,
    runnable_legs,
    searchers,
    units,
    warm_queries,
)
from evals.translation import TranslatorKind, translator
from rag.config import Config
from rag.errors import ConfigError
from rag.rosetta import Rosetta
from rag.types import Document, Encoder, JsonValue


class Pool(Enum):
    """How documents are pooled: one collection per language (pairs) or all languages in one (mixed)."""

    PAIRS = "pairs"
    MIXED = "mixed"


def parse_pool(text: str) -> Pool:
    """``pairs`` or ``mixed``."""
    return parse_one(text, Pool, "pool")


def parse_seeds(text: str) -> tuple[int, ...]:
    """``0,1,2`` as distinct integers, in order."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items or not all(item.lstrip("-").isdigit() for item in items):
        raise ConfigError(f"--seeds takes comma-separated integers such as 0,1,2, got {text!r}")
    return tuple(dict.fromkeys(int(item) for item in items))


def identity(document: Document, lang: str) -> str:
    """The document's URI without its language: ``xquad://de/3/1`` in ``de`` is ``xquad://3/1``."""
    scheme, sep, rest = document.uri.partition("://")
    if not sep or not rest.startswith(f"{lang}/"):
        raise ConfigError(f"{document.uri}: --pool mixed needs URIs like scheme://{lang}/path that name the "
                          "same document in every language; use --pool pairs for this dataset")
    return f"{scheme}://{rest.removeprefix(f'{lang}/')}"


def assign(documents: Mapping[str, Sequence[Document]], langs: Sequence[str], seed: int) -> tuple[Document, ...]:
    """Each document identity once, in a language drawn by ``seed`` among those of ``langs`` it exists in."""
    versions: dict[str, dict[str, Document]] = defaultdict(dict)
    for lang in dict.fromkeys(langs):
        for document in documents.get(lang, ()):
            versions[identity(document, lang)][lang] = document
    rng = random.Random(seed)
    return tuple(found[rng.choice(sorted(found))] for _, found in sorted(versions.items()))


@dataclass(frozen=True, slots=True)
class MixedQuery:
    """A query with its gold in a mixed pool and the languages of the documents that gold lies in."""

    query: Query
    gold: frozenset[Span]
    gold_langs: frozenset[str]

    @property
    def cross(self) -> bool:
        """True when no gold document is in the query's language."""
        return self.query.language not in self.gold_langs


def _language(document: Document) -> str:
    return document.language or UNDETERMINED


def mixed_queries(dataset: Dataset, query_langs: Sequence[str], pool: Sequence[Document]) -> list[MixedQuery]:
    """The queries in ``query_langs`` that have gold among the ``pool``'s documents, with that gold."""
    language_of = {document.uri: _language(document) for document in pool}
    doc_langs = sorted(set(language_of.values()))
    found = []
    for query in (q for lang in query_langs for q in dataset.queries.get(lang, ())):
        gold = frozenset(span for lang in doc_langs for span in dataset.gold.get((query.id, lang), ())
                         if span.uri in language_of)
        if gold:
            found.append(MixedQuery(query, gold, frozenset(language_of[span.uri] for span in gold)))
    return found


def split(queries: Sequence[MixedQuery], rankings: Sequence[Sequence[Passage]], relevance: Relevance) -> Split:
    """Mean scores of the cross and of the same queries given their ``rankings``, and bias@1 (see above)."""
    if len(queries) != len(rankings):
        raise ValueError(f"one ranking per query: {len(queries)} queries, {len(rankings)} rankings")
    scored = [(q, score(units(ranked, q.gold, relevance), {s.key for s in q.gold}), ranked)
              for q, ranked in zip(queries, rankings)]
    cross = [(q, s, ranked) for q, s, ranked in scored if q.cross]
    biased = [bool(ranked) and ranked[0].language == q.query.language for q, _, ranked in cross]
    return Split(mean([s for _, s, _ in cross]), mean([s for q, s, _ in scored if not q.cross]),
                 sum(biased) / len(biased) if biased else None)


def pool_name(dataset: Dataset, langs: Sequence[str], seed: int | None) -> str:
    """``eval-{dataset}-mixed-{sorted langs}-s{seed}`` (no ``-s`` part for an unseeded pool)."""
    suffix = "" if seed is None else f"-s{seed}"
    return collection_name(dataset, f"mixed-{'-'.join(sorted(set(langs)))}{suffix}")


def pools(dataset: Dataset, langs: Sequence[str], seeds: Sequence[int]) -> dict[int | None, tuple[Document, ...]]:
    """Each seed's pool; without seeds, one unseeded pool of every document in ``langs``."""
    found: dict[int | None, tuple[Document, ...]] = (
        {seed: assign(dataset.documents, langs, seed) for seed in seeds} if seeds
        else {None: tuple(d for lang in dict.fromkeys(langs) for d in dataset.documents.get(lang, ()))})
    if not any(found.values()):
        raise ConfigError(f"dataset {dataset.name} has no documents in {', '.join(langs)}; "
                          f"its languages: {', '.join(dataset.languages())}")
    return found


def score_pool(search: Searcher, queries: Sequence[MixedQuery], query_langs: Sequence[str],
               relevance: Relevance) -> dict[str, Split]:
    """Per query language that has queries in the pool: ``search``'s split scores."""
    by_lang = {lang: [q for q in queries if q.query.language == lang] for lang in query_langs}
    return {lang: split(chosen, [search(q.query.text) for q in chosen], relevance)
            for lang, chosen in by_lang.items() if chosen}


def evaluate(rosetta: Rosetta, dataset: Dataset, plan: Plan, seeds: Sequence[int],
             progress: Progress = lambda message: None) -> Report:
    """Ingest each seed's pool (one unseeded pool without seeds), search it with every query and score
    Rosetta's legs; see the module docstring."""
    if System.ROSETTA not in plan.systems:
        raise ConfigError("--pool mixed runs Rosetta only (the LlamaIndex peer has no mixed pool); "
                          "use --system rosetta")
    started = time.perf_counter()
    skipped = [f"{s.value}: the peer does not run on a mixed pool" for s in plan.systems if s is not System.ROSETTA]
    plan = replace(plan, systems=(System.ROSETTA,))
    chosen = pools(dataset, plan.doc_langs, seeds)
    collections = {seed: ingest_documents(rosetta, pool_name(dataset, plan.doc_langs, seed), pool, progress)
                   for seed, pool in chosen.items()}
    first = next(iter(collections.values()))
    runs, not_run = runnable_legs(rosetta, plan, first)
    skipped += not_run
    warm_queries(rosetta, dataset, plan, first)
    scores: list[MixedScore] = []
    for seed, collection in collections.items():
        queries = mixed_queries(dataset, plan.query_langs, chosen[seed])
        skipped += [f"{lang} (seed {seed}): no query has gold in the pool" for lang in plan.query_langs
                    if not any(q.query.language == lang for q in queries)]
        with searchers(rosetta, System.ROSETTA, collection, runs[System.ROSETTA]) as by_leg:
            for leg, search in by_leg.items():
                for lang, result in score_pool(search, queries, plan.query_langs, dataset.relevance).items():
                    scores.append(MixedScore(System.ROSETTA, leg, seed, lang, result))
                progress(f"rosetta/{leg.value} over {collection}: {len(queries)} queries")
    seconds = time.perf_counter() - started
    names = {"unseeded" if seed is None else str(seed): name for seed, name in collections.items()}
    config: dict[str, JsonValue] = {
        **run_config(rosetta, dataset, plan, names, {System.ROSETTA.value: seconds}, seconds),
        "pool": Pool.MIXED.value, "seeds": list[JsonValue](seeds), "assigned": _assigned(chosen)}
    return Report((), tuple(dict.fromkeys(skipped)), config, tuple(scores))


def _assigned(chosen: Mapping[int | None, Sequence[Document]]) -> dict[str, JsonValue]:
    return {"unseeded" if seed is None else str(seed): dict(sorted(Counter(_language(d) for d in pool).items()))
            for seed, pool in chosen.items()}


def run(kind: DatasetKind, data: Path, config: Config, out: Path, query_langs: Sequence[str] = (),
        doc_langs: Sequence[str] = (), legs: Sequence[Leg] = tuple(Leg), systems: Sequence[System] = (System.ROSETTA,),
        seeds: Sequence[int] = (0,), limit: int | None = None, progress: Progress = lambda message: None,
        encoder: Encoder | None = None, translating: TranslatorKind = TranslatorKind.NONE) -> Report:
    """Load the dataset, evaluate its mixed pools on a Rosetta opened with ``config`` (and the translator
    ``translating`` names, evals.translation) and write ``out``/metrics.json. BEIR has one unseeded pool,
    so ``seeds`` are ignored there (with a note)."""
    dataset, plan = load_plan(kind, data, (query_langs, doc_langs), legs, systems, limit)
    notes = []
    if kind is DatasetKind.BEIR:
        notes.append("--seeds: ignored; a BEIR corpus has no parallel documents, so it is one unseeded pool")
        seeds = ()
    elif not seeds:
        raise ConfigError("--pool mixed needs at least one seed, e.g. --seeds 0,1,2")
    with Rosetta.open(config, encoder=encoder, translator=translator(translating, dataset)) as rosetta:
        report = evaluate(rosetta, dataset, plan, seeds, progress)
    report = replace(report, skipped=(*notes, *report.skipped),
                     config={**report.config, "data": str(data), "limit": limit, "translator": translating.value})
    write_report(report, out)
    return report
