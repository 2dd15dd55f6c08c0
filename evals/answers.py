"""The answer evaluation: XQuAD questions asked in each query language over each document language.

Every pair (query language q, document language d) asks the same seeded sample of ``limit`` question
ids, in q, over d's collection, with the extractive generator unless told otherwise. The gold span for
d is d's answer text of that question id, kept only where d's paragraph holds it. Per pair:

- ``answer_hit``: the share of answers citing a passage that holds the gold span (case and whitespace aside);
- ``retrieval_hit@k``: the share whose passages (all that were given) hold it, which separates citing from
  retrieving;
- ``citation_precision``: the share of citations whose passage holds the gold span (micro, over citations;
  null without any): what ``answer_hit`` cannot see, the citations that point away from the answer;
- ``citations_verified``: the share of citations verified (micro, over citations; null without any), and
  ``all_verified``: the share of answers that cite and have every citation verified;
- ``language_ok``: the share whose detected language is the question's; ``ok``: the share without problems;
- ``seconds``: the mean wall time per answer.

Each document language is ingested once into ``eval-xquad-{lang}`` (the collections ``evals.retrieval``
uses); re-runs find the documents unchanged and the encodings cached. Outputs::

    answers.json  {"pairs": [{"query_lang", "doc_lang", <metrics>, "n", "citations", "problems": {kind: n}}],
                   "summary": {"all" | "cross_lingual" | "monolingual": {<metrics>, "pairs", "n"}},
                   "config": {"encoder", "generator", "k", ...}}
    answers.png   heatmaps of answer_hit and retrieval_hit@k (query language x document language)
    cases.jsonl   one line per answer: ids, flags, problems and the answer text, for reading failures

``evals.answers_mixed`` asks the same questions over mixed-language pools instead (``--pool mixed``).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from evals.datasets import Dataset, Query, Span, _read_json, load_xquad
from evals.retrieval import DatasetKind, ingest_language
from evals.translation import TranslatorKind, translator
from rag.answer.citations import support_threshold
from rag.answer.types import Answer
from rag.config import Config, GeneratorKind
from rag.errors import ConfigError, ConnectorError
from rag.rosetta import Rosetta
from rag.types import Encoder, JsonValue, one_line

METRICS = ("answer_hit", "retrieval_hit@k", "citation_precision", "citations_verified", "all_verified", "language_ok",
           "ok", "seconds")
SEED = 13

Progress = Callable[[str], None]
Gold = Mapping[tuple[str, str], tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Case:
    """One question to answer over one document language, with that language's gold answer texts."""

    query: Query
    doc_lang: str
    gold: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Judged:
    """One answer, reduced to what the metrics count (and its text, for reading failures).

    ``cited_language`` is the language of the first cited passage's chunk (None without citations);
    ``cited_hits`` counts the citations whose passage holds the gold span.
    """

    question_id: str
    answer_hit: bool
    retrieval_hit: bool
    citations: int
    verified: int
    language_ok: bool
    ok: bool
    seconds: float
    problems: tuple[str, ...] = ()
    text: str = ""
    cited_language: str | None = None
    cited_hits: int = 0


@dataclass(frozen=True, slots=True)
class PairAnswers:
    """The judged answers of one (query language, document language) pair."""

    query_lang: str
    doc_lang: str
    judged: tuple[Judged, ...]

    @property
    def cross_lingual(self) -> bool:
        """True when the query and document languages differ."""
        return self.query_lang != self.doc_lang


@dataclass(frozen=True, slots=True)
class AnswerReport:
    """Every pair's judged answers and the settings that produced them."""

    pairs: tuple[PairAnswers, ...]
    config: Mapping[str, JsonValue] = field(default_factory=dict)


# --- metrics (pure) -------------------------------------------------------------------------------


def normalise(text: str) -> str:
    """``text`` case-folded on one line, compared loosely (``rag.types.one_line``: a Chinese or Japanese gold
    span matches across a hard wrap)."""
    return one_line(text, loose=True).casefold()


def holds(text: str, gold: Sequence[str]) -> bool:
    """True when ``text`` contains any non-blank gold span, case and whitespace aside."""
    haystack = normalise(text)
    return any(normalise(span) in haystack for span in gold if span.strip())


def answer_hit(answer: Answer, gold: Sequence[str]) -> bool:
    """True when a cited passage holds the gold span."""
    return any(holds(citation.passage, gold) for citation in answer.citations)


def retrieval_hit(answer: Answer, gold: Sequence[str]) -> bool:
    """True when any passage the answer was given holds the gold span."""
    return any(holds(passage.hit.chunk.text, gold) for passage in answer.passages)


def judge(answer: Answer, case: Case, seconds: float) -> Judged:
    """Score one answer against its case."""
    return Judged(case.query.id, answer_hit(answer, case.gold), retrieval_hit(answer, case.gold),
                  len(answer.citations), sum(c.verified for c in answer.citations),
                  answer.detected_language == case.query.language, answer.ok, seconds,
                  tuple(problem.kind.value for problem in answer.problems), answer.text,
                  answer.citations[0].language if answer.citations else None,
                  sum(holds(citation.passage, case.gold) for citation in answer.citations))


def _share(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def pair_metrics(judged: Sequence[Judged]) -> dict[str, float | None]:
    """The metrics of one pair (see the module docstring); None where nothing was counted."""
    citations = sum(j.citations for j in judged)
    return {
        "answer_hit": _share([j.answer_hit for j in judged]),
        "retrieval_hit@k": _share([j.retrieval_hit for j in judged]),
        "citation_precision": sum(j.cited_hits for j in judged) / citations if citations else None,
        "citations_verified": sum(j.verified for j in judged) / citations if citations else None,
        "all_verified": _share([bool(j.citations) and j.verified == j.citations for j in judged]),
        "language_ok": _share([j.language_ok for j in judged]),
        "ok": _share([j.ok for j in judged]),
        "seconds": sum(j.seconds for j in judged) / len(judged) if judged else None,
    }


def mean_metrics(pairs: Sequence[PairAnswers]) -> dict[str, float | None]:
    """Each metric's mean over the pairs that have it (macro: every pair weighs the same)."""
    return average([pair_metrics(p.judged) for p in pairs])


def average(metrics: Sequence[Mapping[str, float | None]]) -> dict[str, float | None]:
    """Each metric's mean over the ``metrics`` that have it; None where none has."""
    values = {name: [v for m in metrics if (v := m[name]) is not None] for name in METRICS}
    return {name: math.fsum(v) / len(v) if v else None for name, v in values.items()}


# --- data -----------------------------------------------------------------------------------------


def load_answer_texts(root: Path, languages: Sequence[str]) -> dict[tuple[str, str], tuple[str, ...]]:
    """XQuAD's answer texts by (question id, language), from ``xquad.{lang}.json``."""
    texts: dict[tuple[str, str], tuple[str, ...]] = {}
    for lang in dict.fromkeys(languages):
        path = root / f"xquad.{lang}.json"
        data: Any = _read_json(path)  # raw SQuAD JSON; its shape errors become ConnectorError below
        try:
            for article in data["data"]:
                for paragraph in article["paragraphs"]:
                    texts.update({(qa["id"], lang): tuple(a["text"] for a in qa["answers"])
                                  for qa in paragraph["qas"]})
        except (KeyError, TypeError) as exc:
            raise ConnectorError(f"{path}: not in SQuAD format (data[].paragraphs[].qas[].answers[].text): "
                                 f"{exc!r}") from exc
    return texts


def cases(dataset: Dataset, gold: Gold, query_lang: str, doc_lang: str, limit: int | None = None,
          seed: int = SEED) -> list[Case]:
    """The pair's questions whose gold span lies in their doc-language paragraph, in dataset order; with a
    ``limit``, the eligible ids first in one seeded order of ids, so every pair samples the same ids."""
    paragraphs = {document.uri: document.text for document in dataset.documents.get(doc_lang, ())}
    found = [case for query, spans in dataset.judged(query_lang, doc_lang)
             if (case := gold_case(query, doc_lang, spans, gold, paragraphs))]
    return sample(found, limit, seed)


def gold_case(query: Query, doc_lang: str, spans: Iterable[Span], gold: Gold, paragraphs: Mapping[str, str]
              ) -> Case | None:
    """``query``'s case over ``doc_lang``: the gold texts that its gold ``spans``' paragraphs hold; None without."""
    text = " ".join(paragraphs.get(span.uri, "") for span in spans)
    kept = tuple(span for span in gold.get((query.id, doc_lang), ()) if holds(text, [span]))
    return Case(query, doc_lang, kept) if kept else None


def sample(found: Sequence[Case], limit: int | None, seed: int = SEED) -> list[Case]:
    """``found`` in order, or with a ``limit`` those first in one seeded order of their question ids."""
    if limit is None or limit >= len(found):
        return list(found)
    picked = set(sorted(range(len(found)), key=lambda i: random.Random(f"{seed}/{found[i].query.id}").random())[:limit])
    return [case for i, case in enumerate(found) if i in picked]


# --- running --------------------------------------------------------------------------------------


def answer_pair(rosetta: Rosetta, langs: tuple[str, str], pair: Sequence[Case], collection: str, k: int | None
                ) -> PairAnswers:
    """Ask every case of the pair ``langs`` (query, doc language) over ``collection`` and judge the answers."""
    if pair:
        rosetta.encoder(collection).encode_queries([case.query.text for case in pair])  # one batch, then cached
    judged = []
    for case in pair:
        started = time.perf_counter()
        answer = rosetta.ask(case.query.text, collection=collection, k=k)
        judged.append(judge(answer, case, time.perf_counter() - started))
    return PairAnswers(*langs, tuple(judged))


def evaluate(rosetta: Rosetta, dataset: Dataset, gold: Gold, langs: tuple[Sequence[str], Sequence[str]],
             limit: int | None, k: int | None, progress: Progress = lambda message: None) -> AnswerReport:
    """Ingest each document language, then ask and judge every (query language, doc language) pair."""
    query_langs, doc_langs = langs
    started = time.perf_counter()
    collections = {lang: ingest_language(rosetta, dataset, lang, progress) for lang in doc_langs}
    pairs = []
    for doc_lang, collection in collections.items():
        for query_lang in query_langs:
            pair = cases(dataset, gold, query_lang, doc_lang, limit)
            pairs.append(answer_pair(rosetta, (query_lang, doc_lang), pair, collection, k))
            progress(f"{query_lang}->{doc_lang}: {_brief(pair_metrics(pairs[-1].judged))}")
    return AnswerReport(tuple(pairs), run_config(rosetta, dataset, langs, collections, limit, k, started))


def run_config(rosetta: Rosetta, dataset: Dataset, langs: tuple[Sequence[str], Sequence[str]],
               collections: Mapping[str, str], limit: int | None, k: int | None, started: float
               ) -> dict[str, JsonValue]:
    """answers.json's ``config``: the models, settings and ``collections`` of a run ``started`` then."""
    first = next(iter(collections.values()))
    encoder, g = rosetta.encoder(first).name, rosetta.config.generation
    return {
        "dataset": dataset.name, "encoder": encoder, "generator": rosetta.generator(first).name, "k": k or g.k,
        "support_threshold": support_threshold(encoder) if g.support_threshold is None else g.support_threshold,
        "extractive": {"sentences": g.extractive_sentences, "passage_weight": g.extractive_passage_weight,
                       "margin": g.extractive_margin},
        "limit": limit, "seed": SEED,
        "query_langs": list(langs[0]), "doc_langs": list(langs[1]), "collections": dict(collections),
        "answer_language": "detected from the question", "seconds": round(time.perf_counter() - started, 1),
    }


def _brief(metrics: Mapping[str, float | None]) -> str:
    return ", ".join(f"{name} {value:.2f}" for name, value in metrics.items() if value is not None)


def run(kind: DatasetKind, data: Path, config: Config, out: Path, query_langs: Sequence[str],
        doc_langs: Sequence[str], limit: int | None = None, k: int | None = None,
        generator: GeneratorKind | str = GeneratorKind.EXTRACTIVE, progress: Progress = lambda message: None,
        encoder: Encoder | None = None, translating: TranslatorKind = TranslatorKind.NONE) -> AnswerReport:
    """Load XQuAD with its answers, evaluate on a Rosetta opened with ``config`` (its generator set to
    ``generator``; search translates questions as ``translating`` says, evals.translation), and write
    answers.json, answers.png and cases.jsonl under ``out``."""
    dataset, gold = load(kind, data, query_langs, doc_langs, limit)
    config = replace(config, generation=replace(config.generation, generator=generator))
    with Rosetta.open(config, encoder=encoder, translator=translator(translating, dataset)) as rosetta:
        report = evaluate(rosetta, dataset, gold, (tuple(query_langs), tuple(doc_langs)), limit, k, progress)
    report = replace(report, config={**report.config, "data": str(data), "translator": translating.value})
    write(report, out)
    return report


def load(kind: DatasetKind, data: Path, query_langs: Sequence[str], doc_langs: Sequence[str], limit: int | None
         ) -> tuple[Dataset, Gold]:
    """Check the options, then load XQuAD and its answer texts in the languages named."""
    if kind is not DatasetKind.XQUAD:
        raise ConfigError(f"answers need gold answer texts, which only xquad has; got {kind.value}")
    if not query_langs or not doc_langs:
        raise ConfigError("give --query-langs and --doc-langs, e.g. --query-langs en,de --doc-langs en,de")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 questions per pair, got {limit}")
    languages = list(dict.fromkeys([*query_langs, *doc_langs]))
    return load_xquad(data, languages), load_answer_texts(data, languages)


# --- outputs --------------------------------------------------------------------------------------


def _rounded(metrics: Mapping[str, float | None]) -> dict[str, JsonValue]:
    return {name: None if value is None else round(value, 4) for name, value in metrics.items()}


def to_json(report: AnswerReport) -> dict[str, JsonValue]:
    """The answers.json document (see the module docstring)."""
    pairs: list[JsonValue] = [pair_record(p) for p in report.pairs]
    scopes = {"all": list(report.pairs), "cross_lingual": [p for p in report.pairs if p.cross_lingual],
              "monolingual": [p for p in report.pairs if not p.cross_lingual]}
    summary: dict[str, JsonValue] = {
        name: {**_rounded(mean_metrics(chosen)), "pairs": len(chosen), "n": sum(len(p.judged) for p in chosen)}
        for name, chosen in scopes.items()
    }
    return {"pairs": pairs, "summary": summary, "config": dict(report.config)}


def pair_record(pair: PairAnswers) -> dict[str, JsonValue]:
    """One entry of answers.json's ``pairs``: the languages, metrics, answers, citations and problems."""
    return {"query_lang": pair.query_lang, "doc_lang": pair.doc_lang, **_rounded(pair_metrics(pair.judged)),
            "n": len(pair.judged), "citations": sum(j.citations for j in pair.judged),
            "problems": dict(sorted(Counter(kind for j in pair.judged for kind in j.problems).items()))}


def write_plot(report: AnswerReport, path: Path) -> None:
    """answers.png: answer_hit and retrieval_hit@k as query language x document language heatmaps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(dict.fromkeys(p.query_lang for p in report.pairs))
    columns = list(dict.fromkeys(p.doc_lang for p in report.pairs))
    metrics = {(p.query_lang, p.doc_lang): pair_metrics(p.judged) for p in report.pairs}
    figure, axes = plt.subplots(1, 2, figsize=(9, 4.2), squeeze=False)
    for ax, name in zip(axes.flat, ("answer_hit", "retrieval_hit@k")):
        grid = [[metrics.get((r, c), {}).get(name) or 0.0 for c in columns] for r in rows]
        image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis")
        ax.set_xticks(range(len(columns)), columns)
        ax.set_yticks(range(len(rows)), rows)
        ax.set_xlabel("document language")
        ax.set_ylabel("question language")
        ax.set_title(name, fontsize=10)
        for i, row in enumerate(grid):
            for j, value in enumerate(row):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8,
                        color="black" if value > 0.6 else "white")
    figure.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(report: AnswerReport, out: Path) -> tuple[Path, Path, Path]:
    """Write ``out``/answers.json, answers.png and cases.jsonl; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    answers, plot, cases_path = out / "answers.json", out / "answers.png", out / "cases.jsonl"
    answers.write_text(json.dumps(to_json(report), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    write_plot(report, plot)
    lines = [json.dumps(case_record(p, j), ensure_ascii=False) for p in report.pairs for j in p.judged]
    cases_path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return answers, plot, cases_path


def case_record(pair: PairAnswers, judged: Judged) -> dict[str, JsonValue]:
    """One cases.jsonl line: the pair's languages, the question id, its flags, problems and answer text."""
    return {"query_lang": pair.query_lang, "doc_lang": pair.doc_lang, "id": judged.question_id,
            "answer_hit": judged.answer_hit, "retrieval_hit": judged.retrieval_hit, "citations": judged.citations,
            "cited_hits": judged.cited_hits, "verified": judged.verified, "language_ok": judged.language_ok,
            "problems": list(judged.problems),
            "seconds": round(judged.seconds, 3), "text": judged.text}
