"""Idempotent ingest: load sources, chunk, encode, and store each document in its own transaction.

A document is identified by (collection, source URI). An unchanged content hash is skipped, a changed
one is replaced atomically, so a run killed at any point and run again ends with the same rows as one
clean run. Bad sources are reported and never stop the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Protocol, cast

from rag.chunk import chunk_text, encoded_text
from rag.encoders.cache import encodings_version
from rag.errors import ConnectorError, EncoderError
from rag.reference import reference_sums
from rag.store import PgStore
from rag.types import (
    Chunk,
    Collection,
    Connector,
    Document,
    Encoder,
    LatentEncoder,
    SentenceVector,
    latent_dim,
)

log = logging.getLogger(__name__)

# Part of every content hash: bump it when chunking or chunk labelling changes, so re-ingest rebuilds the chunks.
PIPELINE_VERSION = "chunk-v4"
_DETECT_CHARS = 4000


class IngestStatus(Enum):
    """What happened to one document or source."""

    ADDED = "added"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    PRUNED = "pruned"


@dataclass(frozen=True, slots=True)
class FileReport:
    """The outcome for one document (or a source that failed before yielding any)."""

    uri: str
    status: IngestStatus
    language: str | None = None
    chunks: int = 0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class IngestReport:
    """The outcome of one ingest run."""

    collection: str
    encoder: str
    files: tuple[FileReport, ...]
    seconds: float

    @property
    def chunks(self) -> int:
        """Chunks written in this run."""
        return sum(f.chunks for f in self.files if f.status in (IngestStatus.ADDED, IngestStatus.UPDATED))

    @property
    def failed(self) -> int:
        """How many documents or sources failed."""
        return sum(f.status is IngestStatus.FAILED for f in self.files)


class IngestProgress(Protocol):
    """Receives progress while ingest runs (the CLI draws a progress bar from it)."""

    def sources_found(self, count: int) -> None:
        """The total number of sources is known."""

    def source_done(self, reports: Sequence[FileReport]) -> None:
        """One source was processed."""


@dataclass(frozen=True, slots=True)
class Target:
    """One path or URL the user named, with its connector and the URI prefix it owns (None: never pruned)."""

    name: str
    connector: Connector
    scope: str | None


@dataclass(frozen=True, slots=True)
class _Unlistable:
    """Stands in for a target whose connector could not be built, so the run reports it and goes on."""

    error: ConnectorError

    def sources(self) -> Iterator[str]:
        raise self.error

    def load(self, uri: str) -> list[Document]:
        raise self.error


def _scope(target: str) -> str:
    """The URI prefix a target owns: a directory's contents, a file itself, or a sitemap's site."""
    if target.startswith(("http://", "https://")):
        return target.rsplit("/", 1)[0] + "/" if target.endswith(".xml") else target
    path = Path(target).expanduser().resolve()
    return path.as_uri() + "/" if path.is_dir() else path.as_uri()


def ingest_target(path: str | Path | Connector, glob: str | None, max_bytes: int) -> Target:
    """A Connector object as given, or the connector for a path or URL with the URI prefix it owns (for
    prune); a path whose connector cannot be built becomes a target that the run reports, not an error."""
    from connectors import connector_for

    if not isinstance(path, (str, Path)):
        return Target(type(path).__name__, path, None)
    try:
        connector: Connector = connector_for(str(path), glob=glob, max_bytes=max_bytes)
    except ConnectorError as exc:
        connector = _Unlistable(exc)
    return Target(str(path), connector, _scope(str(path)))


def plugin_target(path: str | Path, connector: Callable[[str], Connector]) -> Target:
    """The target a connector plugin's factory makes of ``path`` (never pruned: the plugin owns its URIs); a
    factory that raises ConnectorError becomes a target the run reports."""
    try:
        return Target(str(path), connector(str(path)), None)
    except ConnectorError as exc:
        return Target(str(path), _Unlistable(exc), None)


@dataclass(frozen=True, slots=True)
class Pipeline:
    """The parts ingest needs, each given only what it uses."""

    store: PgStore
    collection: Collection
    encoder: Encoder
    chunk: Callable[[Document], list[Chunk]]
    detect: Callable[[str], str | None]
    sparse_max_terms: int = 1000
    max_tokens: int = 256
    progress: IngestProgress | None = field(default=None)
    # Splits a chunk into sentences for sentence vectors (rag.chunk.split_prose); None stores none.
    split: Callable[[str], Sequence[tuple[int, int]]] | None = None
    # Encode each chunk under its heading path (rag.chunk.encoded_text).
    heading_context: bool = False
    # Give each language with at least this many chunks its own HNSW index after the run (None: never).
    language_index_min: int | None = None
    # Store each chunk's latent terms (the encoder's encode_latent), when the encoder has them.
    latent: bool = False


def content_hash(document: Document, pipeline_key: str) -> str:
    """Hash of everything that decides a document's chunks: text, structure, metadata and pipeline."""
    payload = {
        "text": document.text, "title": document.title, "type": document.content_type,
        "sections": [[s.start, s.end, s.page, list(s.heading)] for s in document.sections],
        "metadata": document.metadata, "pipeline": pipeline_key,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _with_language(document: Document, detect: Callable[[str], str | None]) -> Document:
    language = detect(document.text[:_DETECT_CHARS]) or document.language or "und"
    return Document(document.uri, document.text, document.title, document.sections, document.metadata,
                    document.content_type, language)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A changed document ready to encode: its language set, its content hash, the hash stored before (None:
    new), its chunks and the (chunk id, ordinal, text) of their sentences. A Ray task makes it, an actor
    writes it."""

    document: Document
    digest: str
    previous: str | None
    chunks: tuple[Chunk, ...]
    sentences: tuple[tuple[str, int, str], ...]


def _failed(document: Document, exc: EncoderError) -> FileReport:
    return FileReport(document.uri, IngestStatus.FAILED, document.language, 0, str(exc))


def prepare_document(p: Pipeline, document: Document, previous: str | None) -> Prepared | FileReport:
    """The document chunked for writing, or its report when it is unchanged (skipped before any encoding),
    empty, or failed."""
    key = (f"{PIPELINE_VERSION}:{p.max_tokens}:{p.encoder.name}{encodings_version(p.encoder)}"
           + (":sentences" if p.split else "") + (":headings" if p.heading_context else "")
           + (":latent" if _latent(p) else ""))
    digest = content_hash(document, key)
    if previous == digest:
        return FileReport(document.uri, IngestStatus.UNCHANGED, None)
    try:
        document = _with_language(document, p.detect)
        chunks = p.chunk(document)
    except EncoderError as exc:
        return _failed(document, exc)
    if not chunks:
        return FileReport(document.uri, IngestStatus.FAILED, document.language, 0, "no text to index")
    return Prepared(document, digest, previous, tuple(chunks), tuple(_sentences(p, chunks)))


def write_document(p: Pipeline, prepared: Prepared) -> FileReport:
    """Encode a prepared document and replace its rows in one transaction; an encoder failure is its report."""
    document, chunks, sentences = prepared.document, prepared.chunks, prepared.sentences
    try:
        texts = [(encoded_text if p.heading_context else chunk_text)(c) for c in chunks]
        encodings = p.encoder.encode_passages(texts)
        if _latent(p):
            latents = cast(LatentEncoder, p.encoder).encode_latent(texts)
            encodings = [replace(e, latent=latent) for e, latent in zip(encodings, latents, strict=True)]
        vectors = [e.dense for e in p.encoder.encode_passages([text for _, _, text in sentences])] if sentences else []
    except EncoderError as exc:
        return _failed(document, exc)
    rows = [SentenceVector(chunk_id, ordinal, vector) for (chunk_id, ordinal, _), vector in zip(sentences, vectors)]
    count = p.store.replace_document(p.collection, document, prepared.digest, chunks, encodings,
                                     p.sparse_max_terms, rows)
    status = IngestStatus.ADDED if prepared.previous is None else IngestStatus.UPDATED
    return FileReport(document.uri, status, document.language, count)


def _latent(p: Pipeline) -> bool:
    """Whether this pipeline stores latent terms: asked for, and the encoder has them."""
    return p.latent and latent_dim(p.encoder) > 0


def _store_document(p: Pipeline, document: Document, known: dict[str, str]) -> FileReport:
    prepared = prepare_document(p, document, known.get(document.uri))
    if isinstance(prepared, FileReport):
        return prepared
    report = write_document(p, prepared)
    if report.status is not IngestStatus.FAILED:
        known[document.uri] = prepared.digest
    return report


def _sentences(p: Pipeline, chunks: Sequence[Chunk]) -> list[tuple[str, int, str]]:
    """(chunk id, ordinal, text) of each sentence of the chunks that hold more than one."""
    if p.split is None:
        return []
    found = []
    for chunk in chunks:
        spans = list(p.split(chunk.text))
        if len(spans) > 1:
            found += [(chunk.id, ordinal, chunk.text[start:end]) for ordinal, (start, end) in enumerate(spans)]
    return found


def load_source(connector: Connector, uri: str) -> list[Document] | FileReport:
    """The documents of one source, or the report of why it could not be loaded."""
    try:
        documents = connector.load(uri)
    except ConnectorError as exc:
        return FileReport(uri, IngestStatus.FAILED, error=str(exc))
    return documents or FileReport(uri, IngestStatus.FAILED, error="the source held no documents")


def _ingest_source(p: Pipeline, connector: Connector, uri: str, known: dict[str, str]) -> list[FileReport]:
    documents = load_source(connector, uri)
    if isinstance(documents, FileReport):
        return [documents]
    reports = []
    for document in documents:
        started = time.perf_counter()
        reports.append(_store_document(p, document, known))
        _log_document(reports[-1], time.perf_counter() - started)
    return reports


def _in_process(p: Pipeline, sources: Sequence[tuple[Target, str]], known: dict[str, str]
                ) -> Iterator[list[FileReport]]:
    """Each source loaded, chunked, encoded and written in this process, one after the other."""
    for target, uri in sources:
        yield _ingest_source(p, target.connector, uri, known)


# Runs the sources of one ingest and yields each source's reports as it finishes (in any order):
# ``_in_process`` by default, rag.ray_ingest.RayExecutor on a Ray cluster. ``known`` is {uri: content hash}.
SourceRunner = Callable[[Pipeline, Sequence[tuple[Target, str]], dict[str, str]], Iterator[list[FileReport]]]


def _log_document(report: FileReport, seconds: float) -> None:
    """One line per document: what happened, its chunks and the seconds it took (with the error if it failed)."""
    error = f" ({report.error})" if report.error else ""
    log.info("ingest %s %s: %d chunks, %.3f s%s", report.status.value, report.uri, report.chunks, seconds, error)


def _enumerate(targets: Sequence[Target]) -> tuple[list[tuple[Target, str]], list[FileReport]]:
    found: list[tuple[Target, str]] = []
    failures: list[FileReport] = []
    for target in targets:
        try:
            found.extend((target, uri) for uri in target.connector.sources())
        except ConnectorError as exc:
            failures.append(FileReport(target.name, IngestStatus.FAILED, error=str(exc)))
    return found, failures


def _owns(scope: str, uri: str) -> bool:
    """A directory's or site's scope (ending in ``/``) owns what is under it; a file's or page's only itself."""
    return uri.startswith(scope) if scope.endswith("/") else uri == scope


def _prune(p: Pipeline, targets: Sequence[Target], stored: set[str], known: dict[str, str]) -> list[FileReport]:
    """Delete the documents under the targets that this run did not store and that are proved gone (the file
    does not exist, the URL answers 404/410): a glob, a listing error or a failed load is never proof."""
    from connectors import source_gone

    scopes = [t.scope for t in targets if t.scope is not None]
    candidates = sorted(uri for uri in known if uri not in stored and any(_owns(s, uri) for s in scopes))
    gone = [uri for uri in candidates if source_gone(uri)]
    if gone:
        p.store.delete_documents(p.collection, gone)
    return [FileReport(uri, IngestStatus.PRUNED) for uri in gone]


def run_ingest(p: Pipeline, targets: Sequence[Target], prune: bool = False,
               runner: SourceRunner | None = None) -> IngestReport:
    """Ingest every source of ``targets`` (in this process, or through ``runner``); with ``prune``, delete
    stored documents under them whose source is proved gone."""
    started = time.perf_counter()
    sources, unlisted = _enumerate(targets)
    reports = list(unlisted)
    if p.progress:
        p.progress.sources_found(len(sources))
    known = p.store.document_hashes(p.collection)
    stored: set[str] = set()
    for done in (runner or _in_process)(p, sources, known):
        stored.update(r.uri for r in done if r.status is not IngestStatus.FAILED)
        reports.extend(done)
        if p.progress:
            p.progress.source_done(done)
    # A root that could not be listed must not look like a deleted one.
    if prune and not unlisted:
        reports.extend(_prune(p, targets, stored, known))
    if p.language_index_min is not None:
        p.store.ensure_language_indexes(p.collection, p.language_index_min)
    # A new language's reference text, read by this encoder: its offset for language-neutral search.
    p.store.ensure_language_references(p.collection, lambda codes: reference_sums(p.encoder, codes))
    report = IngestReport(p.collection.name, p.encoder.name, tuple(reports), time.perf_counter() - started)
    log.info("ingest into %s done: %d sources, %d chunks written, %d failed, %.2f s", report.collection,
             len(sources), report.chunks, report.failed, report.seconds)
    return report
