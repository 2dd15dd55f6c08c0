"""Retrieval datasets as one shape: documents and queries per language, and gold spans per (query, doc language).

XQuAD (parallel SQuAD paragraphs in 12 languages) and BEIR folders load here; the OpenTelemetry manuals
load in ``evals.manuals``. Readers raise ConnectorError naming the file and what is wrong with it.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path

from rag.errors import ConnectorError
from rag.types import Document, JsonValue

# BEIR records without a language field, in Rosetta's code for "undetermined".
UNDETERMINED = "und"


class Relevance(Enum):
    """What a relevant unit is: a whole document (XQuAD, BEIR) or a section of one (manuals)."""

    DOCUMENT = "document"
    SECTION = "section"


@dataclass(frozen=True, slots=True)
class Span:
    """A relevant character range ``[start, end)`` of a document; ``end=None`` means to its end."""

    uri: str
    start: int = 0
    end: int | None = None

    def __post_init__(self) -> None:
        if self.start < 0 or (self.end is not None and self.end < self.start):
            raise ValueError(f"Span needs 0 <= start <= end, got start={self.start} end={self.end}")

    @property
    def key(self) -> str:
        """The unit id metrics count: the URI, plus the range for a section."""
        return self.uri if self.start == 0 and self.end is None else f"{self.uri}#{self.start}-{self.end}"

    def holds(self, uri: str, start: int, end: int) -> bool:
        """True when the passage ``uri[start:end]`` lies within this span."""
        return uri == self.uri and self.start <= start and (self.end is None or end <= self.end)


@dataclass(frozen=True, slots=True)
class Passage:
    """Where a retrieved chunk lies: its document and character range, and the chunk's language where the
    searcher knows it (Rosetta's does; the peer's does not)."""

    uri: str
    start: int
    end: int
    language: str | None = None


@dataclass(frozen=True, slots=True)
class Query:
    """A question in one language; parallel queries share ``id`` across languages."""

    id: str
    text: str
    language: str


@dataclass(frozen=True, slots=True)
class Dataset:
    """Documents and queries by language, and the gold spans of query ``id`` in doc language ``lang``.

    A query is evaluated against a doc language only when ``gold`` has an entry for that pair.
    """

    name: str
    relevance: Relevance
    documents: Mapping[str, tuple[Document, ...]]
    queries: Mapping[str, tuple[Query, ...]]
    gold: Mapping[tuple[str, str], frozenset[Span]]
    notes: Mapping[str, JsonValue] = field(default_factory=dict)

    def judged(self, query_lang: str, doc_lang: str) -> list[tuple[Query, frozenset[Span]]]:
        """The queries in ``query_lang`` that have gold in ``doc_lang``, with that gold."""
        pairs = ((q, self.gold.get((q.id, doc_lang))) for q in self.queries.get(query_lang, ()))
        return [(query, spans) for query, spans in pairs if spans]

    def languages(self) -> tuple[str, ...]:
        """Every language with documents or queries, sorted."""
        return tuple(sorted(set(self.documents) | set(self.queries)))


def limit_queries(dataset: Dataset, limit: int | None) -> Dataset:
    """The dataset with only the first ``limit`` queries of each language (the corpus is unchanged)."""
    if limit is None:
        return dataset
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    return replace(dataset, queries={lang: qs[:limit] for lang, qs in dataset.queries.items()})


@dataclass(frozen=True, slots=True)
class DocumentsConnector:
    """A Connector over Documents already in memory: one source per document, keyed by its URI."""

    by_uri: Mapping[str, Document]

    @classmethod
    def of(cls, documents: Sequence[Document]) -> DocumentsConnector:
        """A connector over ``documents`` (their URIs must be unique)."""
        by_uri = {document.uri: document for document in documents}
        if len(by_uri) != len(documents):
            raise ValueError(f"document URIs must be unique; {len(documents) - len(by_uri)} repeat")
        return cls(by_uri)

    def sources(self) -> Iterator[str]:
        """Each document's URI, in order."""
        return iter(self.by_uri)

    def load(self, uri: str) -> list[Document]:
        """The document with this URI."""
        if uri not in self.by_uri:
            raise ConnectorError(f"{uri}: not among this connector's documents")
        return [self.by_uri[uri]]


def _read_json(path: Path) -> JsonValue:
    try:
        return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    except FileNotFoundError:
        raise ConnectorError(f"{path}: no such file; check --data and the language codes") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConnectorError(f"{path}: cannot read it as UTF-8 JSON ({exc})") from exc


def _xquad_language(root: Path, lang: str) -> tuple[list[Document], list[Query], dict[str, str]]:
    path = root / f"xquad.{lang}.json"
    data = _read_json(path)
    documents: list[Document] = []
    queries: list[Query] = []
    gold: dict[str, str] = {}
    try:
        for a, article in enumerate(data["data"]):  # type: ignore[index, arg-type, call-overload]
            for p, paragraph in enumerate(article["paragraphs"]):
                uri = f"xquad://{lang}/{a}/{p}"
                documents.append(Document(uri, paragraph["context"], article.get("title", ""), language=lang))
                for qa in paragraph["qas"]:
                    queries.append(Query(qa["id"], qa["question"], lang))
                    gold[qa["id"]] = uri
    except (KeyError, TypeError) as exc:
        raise ConnectorError(f"{path}: not in SQuAD format (data[].paragraphs[].context/qas[]): {exc!r}") from exc
    return documents, queries, gold


def load_xquad(root: Path, languages: Sequence[str]) -> Dataset:
    """XQuAD files ``xquad.{lang}.json``: one document per paragraph; a question's gold is its paragraph."""
    documents: dict[str, tuple[Document, ...]] = {}
    queries: dict[str, tuple[Query, ...]] = {}
    gold: dict[tuple[str, str], frozenset[Span]] = {}
    for lang in dict.fromkeys(languages):
        docs, qs, where = _xquad_language(root, lang)
        documents[lang], queries[lang] = tuple(docs), tuple(qs)
        gold.update({(qid, lang): frozenset({Span(uri)}) for qid, uri in where.items()})
    return Dataset("xquad", Relevance.DOCUMENT, documents, queries, gold)


def _jsonl(path: Path) -> Iterator[dict[str, JsonValue]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConnectorError(f"{path}: no such file; a BEIR folder holds corpus.jsonl, queries.jsonl, "
                             "qrels/test.tsv") from None
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConnectorError(f"{path}:{number}: invalid JSON ({exc})") from exc


def _field(record: Mapping[str, JsonValue], name: str, path: Path) -> str:
    value = record.get(name)
    if value is None:
        if name == "language":
            return UNDETERMINED
        raise ConnectorError(f"{path}: a record lacks {name!r}: {dict(record)!r}")
    return str(value)


def _qrels(path: Path) -> dict[str, set[str]]:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle, delimiter="\t"))
    except FileNotFoundError:
        raise ConnectorError(f"{path}: no such file; BEIR keeps judgements in qrels/test.tsv") from None
    relevant: dict[str, set[str]] = defaultdict(set)
    for number, row in enumerate(rows[1:], 2):  # the first line is the header
        if len(row) < 3 or not row[2].strip().lstrip("-").isdigit():
            raise ConnectorError(f"{path}:{number}: expected query-id<TAB>corpus-id<TAB>score, got {row!r}")
        if int(row[2]) > 0:
            relevant[row[0]].add(row[1])
    return relevant


def load_beir(root: Path) -> Dataset:
    """A BEIR folder; documents are ``beir://{_id}`` with the title on the first line of the text."""
    documents: dict[str, list[Document]] = defaultdict(list)
    language_of: dict[str, str] = {}
    corpus = root / "corpus.jsonl"
    for record in _jsonl(corpus):
        doc_id, lang = _field(record, "_id", corpus), _field(record, "language", corpus)
        title, text = str(record.get("title") or ""), _field(record, "text", corpus)
        documents[lang].append(Document(f"beir://{doc_id}", f"{title}\n\n{text}" if title else text, title,
                                        language=lang))
        language_of[doc_id] = lang
    queries: dict[str, list[Query]] = defaultdict(list)
    for record in _jsonl(root / "queries.jsonl"):
        path = root / "queries.jsonl"
        queries[_field(record, "language", path)].append(Query(_field(record, "_id", path),
                                                               _field(record, "text", path),
                                                               _field(record, "language", path)))
    gold: dict[tuple[str, str], set[Span]] = defaultdict(set)
    for qid, doc_ids in _qrels(root / "qrels" / "test.tsv").items():
        for doc_id in doc_ids & language_of.keys():
            gold[(qid, language_of[doc_id])].add(Span(f"beir://{doc_id}"))
    return Dataset(f"beir-{root.resolve().name}", Relevance.DOCUMENT,
                   {lang: tuple(docs) for lang, docs in documents.items()},
                   {lang: tuple(qs) for lang, qs in queries.items()},
                   {key: frozenset(spans) for key, spans in gold.items()})
