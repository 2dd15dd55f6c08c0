"""Language detection benchmark: the screened detector against lingua with every model loaded.

    python -m evals.bench_lang --data ../shared/data/xquad [--manuals ../shared/data/manuals] [--out DIR]

Rosetta's detector (rag/lang.py) screens a text with lingua's small trigram models and lets the accurate
models decide among the screen's best ``candidates`` languages, so a one-shot command loads a few models
instead of all of them. The reference is what Rosetta did before, ``LanguageDetector.load(candidates=None)``:
lingua's accurate detector over all default languages, every model preloaded, unsure below a relative
distance of 0.05, after the same script shortcuts. On XQuAD's questions, our short product questions
(``evals/short_questions.tsv``: a few words and a code, the hardest case) and XQuAD's paragraphs (the first 400
characters, chunk-sized), this prints for each
``candidates`` setting the accuracy against the file's language, the agreement with the reference and the
undetermined count; and the seconds and resident memory each detector needed to load (measured in this
process, so the reference's load is measured last). With ``--manuals``, also every chunk of the manuals
(cut by a word budget), labelled as ingest labels it (the default detector, the document's language as the
prior) and by the reference, both scored against the language folder the chunk sits in, with the accurate
models the labelling loaded (each ~25 MB for the rest of an ingest).
"""

from __future__ import annotations

import argparse
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.datasets import load_xquad
from evals.report import publish_bench
from rag.lang import LanguageDetector, normalize_language

XQUAD_LANGUAGES = ("en", "es", "de", "el", "ru", "tr", "ar", "vi", "th", "zh", "hi")  # ro is not a default
PARAGRAPH_CHARS = 400
DOCUMENT_CHARS = 4000  # rag/ingest.py detects a document's language on its start
SHORT_QUESTIONS = Path(__file__).with_name("short_questions.tsv")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _texts(data: Path, languages: tuple[str, ...], short: Path | None) -> dict[str, list[tuple[str, str]]]:
    dataset = load_xquad(data, languages)
    questions = [(q.language, q.text) for lang in languages for q in dataset.queries[lang]]
    paragraphs = [(lang, d.text[:PARAGRAPH_CHARS]) for lang in languages for d in dataset.documents[lang]]
    texts = {"questions": questions}
    if short is not None:
        texts["short questions"] = _short_questions(short)
    return texts | {"paragraphs": paragraphs}


def _short_questions(path: Path) -> list[tuple[str, str]]:
    """(language, question) rows of a file of tab-separated lines; lines starting with # are comments."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        language, tab, question = line.partition("\t")
        if not tab or not question.strip():
            raise ValueError(f"{path}:{number}: expected a language code, a tab and a question, got {line!r}")
        rows.append((normalize_language(language), question.strip()))
    return rows


@dataclass(frozen=True, slots=True)
class _ManualChunk:
    folder: str | None  # the language folder it sits in (en, ja, zh, pt), the gold label
    document: str  # the start of its document, which ingest detects for the document's language
    text: str


def _manual_chunks(root: Path) -> list[_ManualChunk]:
    """Every chunk of the manuals, with its folder's language and its document's opening."""
    from connectors.files import FileConnector
    from rag.chunk import chunk_document

    connector = FileConnector(root)
    found = []
    for uri in connector.sources():
        folder = next((part for part in Path(uri.removeprefix("file://")).relative_to(root.resolve()).parts[:1]
                       if len(part) == 2), None)
        for document in connector.load(uri):
            head = document.text[:DOCUMENT_CHARS]
            found += [_ManualChunk(folder, head, c.text)
                      for c in chunk_document(document, lambda t: len(t.split()) + 2, 200)]
    return found


def _manuals(root: Path, screened: LanguageDetector, exhaustive: LanguageDetector) -> dict[str, Any]:
    """The chunks labelled as ingest labels them (the document's language as the prior) by the screened
    detector, and without a prior by the reference; both scored against the folders' languages."""
    chunks = _manual_chunks(root)
    priors = {c.document: screened.detect(c.document) for c in chunks}
    labels = [screened.detect(c.text, prior=priors[c.document]) or priors[c.document] for c in chunks]
    # Ingest gives a chunk nobody could label its document's language, so the reference does too.
    reference_priors = {head: exhaustive.detect(head) for head in priors}
    reference = [exhaustive.detect(c.text) or reference_priors[c.document] for c in chunks]
    gold = [(c.folder, a, r) for c, a, r in zip(chunks, labels, reference, strict=True) if c.folder]
    return {"chunks": len(chunks), "agreement": round(sum(a == r for a, r in zip(labels, reference, strict=True))
                                                      / len(chunks), 4),
            "folder_accuracy": round(sum(f == a for f, a, _ in gold) / len(gold), 4),
            "reference_folder_accuracy": round(sum(f == r for f, _, r in gold) / len(gold), 4),
            "accurate_models": list(screened.accurate_languages),
            "differ (reference, screened, text)": [(r, a, c.text[:80]) for c, a, r
                                                   in zip(chunks, labels, reference, strict=True) if a != r]}


def _score(answers: list[str | None], reference: list[str | None], gold: list[str]) -> dict[str, Any]:
    n = len(gold)
    return {
        "accuracy": round(sum(a == g for a, g in zip(answers, gold, strict=True)) / n, 4),
        "agreement": round(sum(a == r for a, r in zip(answers, reference, strict=True)) / n, 4),
        "undetermined": sum(a is None for a in answers),
    }


def measure(data: Path, languages: tuple[str, ...], settings: tuple[int, ...],
            manuals: Path | None = None, short: Path | None = None) -> dict[str, Any]:
    texts = _texts(data, languages, short)
    started, rss = time.perf_counter(), _rss_mb()
    screened = {k: LanguageDetector.load(candidates=k) for k in settings}
    load = {"screen_s": round((time.perf_counter() - started) / len(settings), 3),
            "screen_rss_mb": round(_rss_mb() - rss, 1)}
    started, rss = time.perf_counter(), _rss_mb()
    answers = {k: {kind: [d.detect(t) for _, t in items] for kind, items in texts.items()}
               for k, d in screened.items()}
    load["detect_all_s"] = round(time.perf_counter() - started, 2)
    load["accurate_models_rss_mb"] = round(_rss_mb() - rss, 1)
    started = time.perf_counter()
    exhaustive = LanguageDetector.load(candidates=None)
    load["reference_load_s"] = round(time.perf_counter() - started, 2)
    reference = {kind: [exhaustive.detect(t) for _, t in items] for kind, items in texts.items()}
    results: dict[str, Any] = {}
    for kind, items in texts.items():
        gold = [g for g, _ in items]
        row: dict[str, Any] = {"texts": len(items), "reference": _score(reference[kind], reference[kind], gold)}
        for k in settings:
            row[f"candidates={k}"] = _score(answers[k][kind], reference[kind], gold)
        results[kind] = row
    report = {"languages": list(languages), "load": load, "results": results}
    if manuals is not None:  # a fresh detector, so the accurate models it lists are the manuals' alone
        report["manuals"] = _manuals(manuals, LanguageDetector.load(), exhaustive)
    return report


def _table(report: dict[str, Any]) -> str:
    lines = ["| texts | detector | accuracy | agreement with reference | undetermined |", "|---|---|---|---|---|"]
    for kind, row in report["results"].items():
        for name, score in row.items():
            if name != "texts":
                lines.append(f"| {kind} ({row['texts']}) | {name} | {score['accuracy']:.4f} | "
                             f"{score['agreement']:.4f} | {score['undetermined']} |")
    manuals = report.get("manuals")
    if manuals:
        models = ", ".join(manuals["accurate_models"]) or "none"
        lines += ["", (f"manuals ({manuals['chunks']} chunks): folder language {manuals['folder_accuracy']:.4f} "
                       f"(reference {manuals['reference_folder_accuracy']:.4f}), agreement with the reference "
                       f"{manuals['agreement']:.4f}, accurate models loaded: {models}")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the XQuAD folder (xquad.{lang}.json)")
    parser.add_argument("--languages", default=",".join(XQUAD_LANGUAGES))
    parser.add_argument("--candidates", default="1,2,3,4,5", help="candidate counts to compare")
    parser.add_argument("--manuals", type=Path, help="also label the chunks of these manuals")
    parser.add_argument("--short", default=str(SHORT_QUESTIONS),
                        help="short questions, one 'language<TAB>question' a line ('' for none; default: %(default)s)")
    parser.add_argument("--out", type=Path, help="directory for bench_lang.json")
    args = parser.parse_args(argv)
    settings = tuple(int(k) for k in args.candidates.split(","))
    short = Path(args.short) if args.short else None
    report = measure(args.data, tuple(args.languages.split(",")), settings, args.manuals, short)
    publish_bench(_table(report), report, args.out, "bench_lang")


if __name__ == "__main__":
    main()
