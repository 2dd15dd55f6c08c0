"""The answer evaluation on mixed-language pools: every question over one collection holding each paragraph once.

With ``--pool mixed --seeds 0,1,2`` each seed's pool is ``evals.mixed.assign``'s (every XQuAD paragraph
once, in a language the seed draws among the doc languages), ingested into ``evals.mixed.pool_name``'s
collection: the one ``rosetta eval retrieval --pool mixed`` uses for the same doc languages, so either
run finds it stored. Each query language asks the seeded ``limit`` questions that ``evals.answers``
samples (``sample``), among those whose gold paragraph, in the language it was given, holds a gold answer
text; each is judged against that paragraph's answer texts. Answers are asked and judged in groups of
(query language, assigned doc language) by ``evals.answers.answer_pair``, so the metrics are a pair's.

An answer is **cross** when its gold paragraph is in another language than its question, else **same**.
Per seed and query language, each part's metrics are computed over its answers as one pair's are, and
**bias@1** is the share of cross answers whose first citation's passage (its chunk language, detected at
ingest) is in the question's language; a cross answer without citations counts as not biased. As in
``evals.report``, a seed's values are the mean over its query languages, a query language's the mean
over seeds and ``mean`` the mean over seeds; ``n`` counts the answers behind a value, a metric is null
where nothing was counted and ``bias@1`` without cross answers. Outputs (no answers.png)::

    answers.json  {"pairs": [], "summary": {},
                   "mixed": {"seeds": [0, 1, 2],
                             "per_seed": {"<seed>": {"cross": {<metrics>, "n"}, "same": {<metrics>, "n"},
                                                     "bias@1": x, "pairs": [<evals.answers pair entry>]}},
                             "per_query_lang": {"<lang>": {"cross": ..., "same": ..., "bias@1": x}},
                             "mean": {"cross": ..., "same": ..., "bias@1": x}},
                   "config": {<evals.answers config>, "pool": "mixed", "seeds": [...],
                              "collections": {"<seed>": name}, "assigned": {"<seed>": {lang: paragraphs}}}}
    cases.jsonl   one line per answer as evals.answers writes it (its ``doc_lang`` the gold paragraph's
                  assigned language), plus "seed", "cross" and "cited_language"
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from evals.answers import (
    Case,
    Gold,
    PairAnswers,
    Progress,
    _rounded,
    answer_pair,
    average,
    case_record,
    gold_case,
    load,
    pair_metrics,
    pair_record,
    run_config,
    sample,
)
from evals.datasets import UNDETERMINED, Dataset
from evals.mixed import MixedQuery, Pool, assign, mixed_queries, pool_name
from evals.retrieval import DatasetKind, ingest_documents
from evals.translation import TranslatorKind, translator
from rag.config import Config, GeneratorKind
from rag.errors import ConfigError
from rag.rosetta import Rosetta
from rag.types import Document, Encoder, JsonValue


@dataclass(frozen=True, slots=True)
class PoolAnswers:
    """One seed's pool: its collection and the judged answers per (query language, assigned doc language)."""

    seed: int
    collection: str
    pairs: tuple[PairAnswers, ...]


@dataclass(frozen=True, slots=True)
class MixedAnswerReport:
    """Every seed's judged answers and the settings that produced them."""

    pools: tuple[PoolAnswers, ...]
    config: Mapping[str, JsonValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AnswerSplit:
    """The answer metrics of the cross and of the same answers, how many each, and bias@1 (see above)."""

    cross: Mapping[str, float | None]
    same: Mapping[str, float | None]
    n_cross: int
    n_same: int
    bias1: float | None  # None without cross answers


@dataclass(frozen=True, slots=True)
class MixedAnswerSummary:
    """The splits per seed, per query language (mean over seeds) and overall (mean over seeds)."""

    per_seed: Mapping[int, AnswerSplit]
    per_query_lang: Mapping[str, AnswerSplit]
    mean: AnswerSplit


# --- cases ------------------------------------------------------------------------------------------


def mixed_cases(dataset: Dataset, gold: Gold, query_lang: str, pool: Sequence[Document], limit: int | None
                ) -> list[Case]:
    """``query_lang``'s sampled questions whose gold paragraph in the ``pool`` holds a gold answer text, each
    over the language that paragraph was assigned."""
    paragraphs = {document.uri: document.text for document in pool}
    found = [case for q in mixed_queries(dataset, (query_lang,), pool)
             if (case := gold_case(q.query, _gold_lang(q), q.gold, gold, paragraphs))]
    return sample(found, limit)


def _gold_lang(query: MixedQuery) -> str:
    if len(query.gold_langs) != 1:
        raise ConfigError(f"question {query.query.id} has gold paragraphs in {', '.join(sorted(query.gold_langs))}; "
                          "the answer eval needs one gold paragraph per question, as XQuAD has")
    return next(iter(query.gold_langs))


# --- scoring (pure) ---------------------------------------------------------------------------------


def split_answers(pairs: Sequence[PairAnswers]) -> AnswerSplit:
    """The metrics of the cross and of the same answers in ``pairs`` (each part as one pair's), and bias@1."""
    cross = [j for p in pairs if p.cross_lingual for j in p.judged]
    same = [j for p in pairs if not p.cross_lingual for j in p.judged]
    biased = [j.cited_language == p.query_lang for p in pairs if p.cross_lingual for j in p.judged]
    return AnswerSplit(pair_metrics(cross), pair_metrics(same), len(cross), len(same),
                       sum(biased) / len(biased) if biased else None)


def mean_split(splits: Sequence[AnswerSplit]) -> AnswerSplit:
    """Each part's mean over the splits that have it (cross, same and bias@1 separately); ``n`` summed."""
    biases = [s.bias1 for s in splits if s.bias1 is not None]
    return AnswerSplit(average([s.cross for s in splits if s.n_cross]), average([s.same for s in splits if s.n_same]),
                       sum(s.n_cross for s in splits), sum(s.n_same for s in splits),
                       math.fsum(biases) / len(biases) if biases else None)


def summarise(pools: Sequence[PoolAnswers]) -> MixedAnswerSummary:
    """Split each seed's answers per query language, then average as the module docstring says."""
    langs = list(dict.fromkeys(p.query_lang for pool in pools for p in pool.pairs))
    splits = {(pool.seed, lang): split_answers(chosen) for pool in pools for lang in langs
              if (chosen := [p for p in pool.pairs if p.query_lang == lang])}
    per_seed = {pool.seed: mean_split([s for (seed, _), s in splits.items() if seed == pool.seed]) for pool in pools}
    per_lang = {lang: mean_split([s for (_, q), s in splits.items() if q == lang]) for lang in langs}
    return MixedAnswerSummary(per_seed, per_lang, mean_split(list(per_seed.values())))


# --- running ----------------------------------------------------------------------------------------


def answer_pool(rosetta: Rosetta, dataset: Dataset, gold: Gold, query_langs: Sequence[str],
                pool: Sequence[Document], collection: str, limit: int | None, k: int | None,
                progress: Progress = lambda message: None) -> tuple[PairAnswers, ...]:
    """Ask each query language's cases over ``collection`` (``pool`` ingested), grouped by assigned doc language."""
    pairs = []
    for query_lang in query_langs:
        found = mixed_cases(dataset, gold, query_lang, pool, limit)
        for doc_lang in sorted({case.doc_lang for case in found}):
            chosen = [case for case in found if case.doc_lang == doc_lang]
            pairs.append(answer_pair(rosetta, (query_lang, doc_lang), chosen, collection, k))
        progress(f"{query_lang} over {collection}: {len(found)} questions")
    return tuple(pairs)


def evaluate(rosetta: Rosetta, dataset: Dataset, gold: Gold, langs: tuple[Sequence[str], Sequence[str]],
             seeds: Sequence[int], limit: int | None, k: int | None, progress: Progress = lambda message: None
             ) -> MixedAnswerReport:
    """Ingest each seed's pool, then ask and judge every query language's questions over it."""
    query_langs, doc_langs = langs
    started = time.perf_counter()
    chosen = {seed: assign(dataset.documents, doc_langs, seed) for seed in seeds}
    collections = {seed: ingest_documents(rosetta, pool_name(dataset, doc_langs, seed), pool, progress)
                   for seed, pool in chosen.items()}
    pools = tuple(PoolAnswers(seed, name, answer_pool(rosetta, dataset, gold, query_langs, chosen[seed], name,
                                                      limit, k, progress))
                  for seed, name in collections.items())
    assigned: dict[str, JsonValue] = {
        str(seed): dict(sorted(Counter(d.language or UNDETERMINED for d in pool).items()))
        for seed, pool in chosen.items()}
    config = run_config(rosetta, dataset, langs, {str(s): name for s, name in collections.items()}, limit, k, started)
    return MixedAnswerReport(pools, {**config, "pool": Pool.MIXED.value, "seeds": list[JsonValue](seeds),
                                     "assigned": assigned})


def run(kind: DatasetKind, data: Path, config: Config, out: Path, query_langs: Sequence[str],
        doc_langs: Sequence[str], seeds: Sequence[int], limit: int | None = None, k: int | None = None,
        generator: GeneratorKind | str = GeneratorKind.EXTRACTIVE, progress: Progress = lambda message: None,
        encoder: Encoder | None = None, translating: TranslatorKind = TranslatorKind.NONE) -> MixedAnswerReport:
    """Load XQuAD with its answers, evaluate its mixed pools on a Rosetta opened with ``config`` (its
    generator set to ``generator``; search translates questions as ``translating`` says, evals.translation),
    and write answers.json and cases.jsonl under ``out``."""
    if not seeds:
        raise ConfigError("--pool mixed needs at least one seed, e.g. --seeds 0,1,2")
    dataset, gold = load(kind, data, query_langs, doc_langs, limit)
    config = replace(config, generation=replace(config.generation, generator=generator))
    with Rosetta.open(config, encoder=encoder, translator=translator(translating, dataset)) as rosetta:
        report = evaluate(rosetta, dataset, gold, (tuple(query_langs), tuple(doc_langs)), seeds, limit, k, progress)
    report = replace(report, config={**report.config, "data": str(data), "translator": translating.value})
    write(report, out)
    return report


# --- outputs ----------------------------------------------------------------------------------------


def _split_json(split: AnswerSplit) -> dict[str, JsonValue]:
    return {"cross": {**_rounded(split.cross), "n": split.n_cross}, "same": {**_rounded(split.same), "n": split.n_same},
            "bias@1": None if split.bias1 is None else round(split.bias1, 4)}


def to_json(report: MixedAnswerReport) -> dict[str, JsonValue]:
    """The answers.json document of a mixed run (see the module docstring)."""
    summary = summarise(report.pools)
    per_seed: dict[str, JsonValue] = {
        str(pool.seed): {**_split_json(summary.per_seed[pool.seed]), "pairs": [pair_record(p) for p in pool.pairs]}
        for pool in report.pools}
    mixed: dict[str, JsonValue] = {
        "seeds": [pool.seed for pool in report.pools], "per_seed": per_seed,
        "per_query_lang": {lang: _split_json(split) for lang, split in summary.per_query_lang.items()},
        "mean": _split_json(summary.mean)}
    return {"pairs": [], "summary": {}, "mixed": mixed, "config": dict(report.config)}


def write(report: MixedAnswerReport, out: Path) -> tuple[Path, Path]:
    """Write ``out``/answers.json and cases.jsonl; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    answers, cases_path = out / "answers.json", out / "cases.jsonl"
    answers.write_text(json.dumps(to_json(report), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    lines = [json.dumps({"seed": pool.seed, **case_record(p, j), "cross": p.cross_lingual,
                         "cited_language": j.cited_language}, ensure_ascii=False)
             for pool in report.pools for p in pool.pairs for j in p.judged]
    cases_path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return answers, cases_path
