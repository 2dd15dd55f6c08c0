"""How results look: rich tables and progress for people, plain dicts for ``--json``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import unquote

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from rag.ingest import FileReport, IngestReport, IngestStatus
from rag.rosetta import Status
from rag.types import Hit

_STATUS_STYLE = {
    IngestStatus.ADDED: "green", IngestStatus.UPDATED: "cyan", IngestStatus.UNCHANGED: "dim",
    IngestStatus.FAILED: "bold red", IngestStatus.PRUNED: "yellow",
}


class IngestBar:
    """A progress bar over sources with a running chunk count and rate (satisfies IngestProgress)."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("[bold]ingest"), BarColumn(), MofNCompleteColumn(), TextColumn("files"),
            TextColumn("{task.fields[chunks]} chunks"), TextColumn("{task.fields[rate]:.1f} chunks/s"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
        )
        self._task: TaskID | None = None
        self._chunks = 0
        self._started = time.perf_counter()

    def __enter__(self) -> Self:
        self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self._progress.stop()

    def sources_found(self, count: int) -> None:
        """Start the bar with the number of sources."""
        self._started = time.perf_counter()
        self._task = self._progress.add_task("ingest", total=count, chunks=0, rate=0.0)

    def source_done(self, reports: Sequence[FileReport]) -> None:
        """Advance by one source and add its chunks."""
        if self._task is None:
            return
        self._chunks += sum(r.chunks for r in reports if r.status in (IngestStatus.ADDED, IngestStatus.UPDATED))
        rate = self._chunks / max(time.perf_counter() - self._started, 1e-9)
        self._progress.update(self._task, advance=1, chunks=self._chunks, rate=rate)


def _short(uri: str) -> str:
    """A file URI as a path, relative to the working directory when it is below it."""
    if not uri.startswith("file://"):
        return uri
    path = Path(unquote(uri.removeprefix("file://")))
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def ingest_table(report: IngestReport) -> Table:
    """One row per document: status, language, chunks, or the error."""
    table = Table(title=f"ingest into {report.collection!r} with {report.encoder}", expand=False)
    for column in ("source", "status", "language", "chunks", "error"):
        table.add_column(column, overflow="fold", justify="right" if column == "chunks" else "left")
    for row in report.files:
        style = _STATUS_STYLE[row.status]
        table.add_row(escape(_short(row.uri)), f"[{style}]{row.status.value}[/]", row.language or "",
                      str(row.chunks) if row.chunks else "", escape(row.error or ""))
    counts = {s: sum(f.status is s for f in report.files) for s in IngestStatus}
    summary = ", ".join(f"{n} {s.value}" for s, n in counts.items() if n)
    table.caption = f"{summary or 'nothing to do'}; {report.chunks} chunks in {report.seconds:.1f} s"
    return table


def ingest_json(report: IngestReport) -> dict[str, Any]:
    """The ingest report as JSON-ready data."""
    return {
        "collection": report.collection, "encoder": report.encoder, "seconds": round(report.seconds, 3),
        "chunks": report.chunks, "failed": report.failed,
        "files": [{"uri": f.uri, "status": f.status.value, "language": f.language, "chunks": f.chunks,
                   "error": f.error} for f in report.files],
    }


def status_table(status: Status) -> Table:
    """Collections with documents, chunks per language and encoder; the database in the caption."""
    table = Table(title="Rosetta collections")
    for column in ("collection", "documents", "chunks", "languages (chunks)", "encoder", "storage"):
        table.add_column(column, justify="right" if column in ("documents", "chunks") else "left")
    for c in status.collections:
        languages = " ".join(f"{code}:{n}" for code, n in c.languages.items())
        table.add_row(c.name, str(c.documents), str(c.chunks), languages, f"{c.encoder} ({c.dim}-d)",
                      c.storage.value)
    db = status.database
    kind = "embedded" if db.embedded else "external"
    table.caption = (f"{kind} Postgres {db.server_version}, pgvector {db.pgvector_version}, "
                     f"{db.size_bytes / 1e6:.1f} MB — {db.url}")
    return table


def status_json(status: Status) -> dict[str, Any]:
    """The status as JSON-ready data (shape documented in the README)."""
    db = status.database
    return {
        "collections": [
            {"name": c.name, "documents": c.documents, "chunks": c.chunks, "languages": dict(c.languages),
             "document_languages": dict(c.document_languages), "encoder": c.encoder, "dim": c.dim,
             "storage": c.storage.value}
            for c in status.collections
        ],
        "database": {"url": db.url, "embedded": db.embedded, "server_version": db.server_version,
                     "pgvector_version": db.pgvector_version, "size_bytes": db.size_bytes},
    }


def _where(hit: Hit) -> str:
    parts = [_short(hit.chunk.document_uri)]
    if hit.chunk.page is not None:
        parts.append(f"p. {hit.chunk.page}")
    if hit.chunk.heading:
        parts.append(" › ".join(hit.chunk.heading))
    return "\n".join(parts)


def search_table(query: str, hits: Sequence[Hit]) -> Table:
    """One row per hit: fused score, each leg's rank, language, where it is, and the passage."""
    table = Table(title=f"{len(hits)} hits for {query!r}", show_lines=True)
    for column in ("#", "score", "legs", "lang", "source", "passage"):
        table.add_column(column, overflow="fold", justify="right" if column in ("#", "score") else "left")
    for rank, hit in enumerate(hits, start=1):
        legs = " ".join(f"{leg.leg}#{leg.rank}" for leg in hit.legs)
        text = hit.chunk.text if len(hit.chunk.text) <= 300 else hit.chunk.text[:297] + "…"
        table.add_row(str(rank), f"{hit.score:.4f}", legs, hit.chunk.language, escape(_where(hit)), escape(text))
    return table


def search_json(query: str, collection: str, hits: Sequence[Hit]) -> dict[str, Any]:
    """Hits as JSON-ready data, with every leg's rank and score."""
    return {
        "query": query, "collection": collection,
        "hits": [
            {"rank": rank, "score": hit.score, "chunk_id": hit.chunk.id, "uri": hit.chunk.document_uri,
             "title": hit.title, "page": hit.chunk.page, "heading": list(hit.chunk.heading),
             "language": hit.chunk.language, "start": hit.chunk.start, "end": hit.chunk.end,
             "text": hit.chunk.text, "legs": [{"leg": l.leg, "rank": l.rank, "score": l.score} for l in hit.legs]}
            for rank, hit in enumerate(hits, start=1)
        ],
    }
