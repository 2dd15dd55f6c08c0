"""Ingest jobs: URLs or uploaded files ingested in a background thread, with progress per source.

Jobs run one at a time (ingest is CPU-bound encoding; searches keep their share of the cores) and are
kept in memory for the life of the server. Uploads are written only under ``<data dir>/uploads/<collection>/``
with a sanitised name, so a file name can never point elsewhere; re-uploading a file updates its document.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from rag.errors import RagError
from rag.ingest import FileReport, IngestProgress, IngestReport, IngestStatus
from rag.serve.schemas import FileOut, JobOut

_UNSAFE = re.compile(r"[^\w.\-]+")
_READ = 1 << 16

Ingest = Callable[[Sequence[str], str, bool, IngestProgress], IngestReport]


class UploadRejected(ValueError):
    """An upload of the wrong type or over the size limit (HTTP 415 or 413)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Job:
    """One ingest run and its progress so far."""

    id: str
    collection: str
    sources: list[str]
    state: str = "queued"
    sources_total: int | None = None
    files: list[FileReport] = field(default_factory=list)
    sources_done: int = 0
    error: str | None = None
    started: float = field(default_factory=time.perf_counter)
    seconds: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def sources_found(self, count: int) -> None:
        """IngestProgress: the number of sources is known."""
        with self.lock:
            self.sources_total = count

    def source_done(self, reports: Sequence[FileReport]) -> None:
        """IngestProgress: one source finished."""
        with self.lock:
            self.files.extend(reports)
            self.sources_done += 1

    def view(self) -> JobOut:
        """The job as the API reports it."""
        with self.lock:
            files = [FileOut(uri=f.uri, status=f.status.value, language=f.language, chunks=f.chunks, error=f.error)
                     for f in self.files]
            written = (IngestStatus.ADDED, IngestStatus.UPDATED)
            return JobOut(id=self.id, state=self.state, collection=self.collection,  # type: ignore[arg-type]
                          sources=list(self.sources), sources_total=self.sources_total,
                          sources_done=self.sources_done, files=files,
                          chunks=sum(f.chunks for f in self.files if f.status in written),
                          failed=sum(f.status is IngestStatus.FAILED for f in self.files), error=self.error,
                          seconds=self.seconds)


@dataclass
class Jobs:
    """Runs ingest jobs one at a time and remembers them by id."""

    ingest: Ingest
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "rosetta-ingest"))
    jobs: dict[str, Job] = field(default_factory=dict)

    def submit(self, sources: Sequence[str], collection: str, prune: bool, shown: Sequence[str] = ()) -> Job:
        """Queue an ingest of ``sources``; ``shown`` names them in the job (uploads: the client's names)."""
        job = Job(uuid.uuid4().hex, collection, list(shown or sources))
        self.jobs[job.id] = job
        self.executor.submit(self._run, job, list(sources), prune).add_done_callback(_log_crash)
        return job

    def _run(self, job: Job, sources: list[str], prune: bool) -> None:
        with job.lock:
            job.state = "running"
        try:
            report = self.ingest(sources, job.collection, prune, job)
        except RagError as exc:  # the whole run failed (database, encoder); per-source errors are in files
            with job.lock:
                job.state, job.error = "failed", str(exc)
        else:
            with job.lock:
                job.files = list(report.files)
                job.state = "done"
        finally:
            with job.lock:
                if job.state == "running":  # a bug, not a bad source: never leave the job "running" forever
                    job.state, job.error = "failed", "ingest stopped on an unexpected error; see the server log"
                job.seconds = round(time.perf_counter() - job.started, 3)

    def get(self, job_id: str) -> Job | None:
        """The job with this id, if any."""
        return self.jobs.get(job_id)

    def close(self) -> None:
        """Wait for the running job; drop queued ones."""
        self.executor.shutdown(wait=True, cancel_futures=True)


def _log_crash(future: Future[None]) -> None:
    if (error := future.exception()) is not None:
        logging.getLogger(__name__).error("ingest job crashed", exc_info=error)


def safe_name(filename: str, allowed: Sequence[str]) -> str:
    """A file name with no directory part and only word characters, dots and dashes; UploadRejected
    (415) when its extension is not one of ``allowed``."""
    base = _UNSAFE.sub("_", Path(filename.replace("\\", "/")).name).lstrip(".") or "upload"
    suffix = Path(base).suffix.lower()
    if suffix not in allowed:
        raise UploadRejected(f"{filename!r}: files of type {suffix or '(none)'!r} are not accepted; "
                             f"upload one of {', '.join(allowed)}", 415)
    return base


def save_upload(source: BinaryIO, filename: str, folder: Path, allowed: Sequence[str], limit: int) -> Path:
    """Copy an upload into ``folder`` (created) under its safe name, at most ``limit`` bytes, atomically;
    UploadRejected when it is too large or of the wrong type (nothing is left behind)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / safe_name(filename, allowed)
    if target.resolve().parent != folder.resolve():
        raise UploadRejected(f"{filename!r}: not a plain file name", 400)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".upload-")
    try:
        with os.fdopen(handle, "wb") as out:
            written = 0
            while block := source.read(_READ):
                written += len(block)
                if written > limit:
                    raise UploadRejected(f"{filename!r} is larger than the upload limit of {limit} bytes "
                                         "(serve.max_upload_bytes); split it or raise the limit", 413)
                out.write(block)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
