"""One load run: N clients searching (threads sharing a Rosetta, or processes with their own) while one
writer ingests, then the rows counted against what the writer added.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

import numpy as np
import psutil
import psycopg

from evals.bench_load_base import COLLECTION, LIVE_PREFIX, Counts, count_rows, reset_live
from evals.bench_load_corpus import BasePlan, SyntheticCorpus, Vocabulary, vocabularies
from rag.config import Config
from rag.encoders.hashing import HashingEncoder
from rag.errors import RagError
from rag.ingest import IngestStatus
from rag.rosetta import Rosetta

K = 10


def _server_cpu(rosetta: Rosetta) -> float | None:
    """CPU seconds the embedded Postgres (postmaster, backends, reaped backends) has used; None for a URL."""
    server = rosetta.database.server
    pid = server.get_pid() if server is not None else None
    if pid is None:
        return None
    postmaster = psutil.Process(pid)
    times = postmaster.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in postmaster.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:  # a backend that exited is counted in children_* above
            continue
    return float(total)


@dataclass(frozen=True, slots=True)
class ClientResult:
    """One client's searches during the window: latencies, failures, window and CPU it used."""

    latencies_ms: tuple[float, ...]
    errors: tuple[str, ...]
    started: float
    finished: float
    cpu_s: float


def search_loop(rosetta: Rosetta, vocab: Sequence[Vocabulary], rng: np.random.Generator, warmup: int,
                seconds: float, barrier: Any) -> ClientResult:
    """Warm up, wait for everyone, then search with fresh queries until ``seconds`` have passed."""
    def query() -> str:
        return vocab[int(rng.integers(len(vocab)))].query(rng)

    for _ in range(warmup):
        rosetta.search(query(), collection=COLLECTION, k=K)
    barrier.wait(timeout=600)
    started, cpu = time.perf_counter(), time.thread_time()
    latencies: list[float] = []
    errors: list[str] = []
    while time.perf_counter() < started + seconds:
        text = query()
        before = time.perf_counter()
        try:
            rosetta.search(text, collection=COLLECTION, k=K)
        except (RagError, psycopg.Error) as exc:  # counted, not raised: the run reports every failure
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        latencies.append((time.perf_counter() - before) * 1000)
    return ClientResult(tuple(latencies), tuple(errors), started, time.perf_counter(), time.thread_time() - cpu)


@dataclass(frozen=True, slots=True)
class WriterResult:
    """What the concurrent ingest added: document indices, chunks (as reported), failures, time, CPU."""

    indices: tuple[int, ...]
    chunks: int
    errors: tuple[str, ...]
    seconds: float
    cpu_s: float


LIVE_FIRST_INDEX = 1_000_000  # live documents get other texts than the base's


def ingest_loop(rosetta: Rosetta, prefix: str, vocab: Sequence[Vocabulary], seed: int, batch: int,
                seconds: float, barrier: Any) -> WriterResult:
    """Wait for everyone, then ingest batches of new documents under ``prefix`` until ``seconds`` have passed."""
    barrier.wait(timeout=600)
    started, cpu = time.perf_counter(), time.thread_time()
    added: list[int] = []
    errors: list[str] = []
    chunks, next_index = 0, LIVE_FIRST_INDEX
    while time.perf_counter() < started + seconds:
        corpus = SyntheticCorpus(prefix, range(next_index, next_index + batch), vocab, seed)
        next_index += batch
        try:
            report = rosetta.ingest([corpus], collection=COLLECTION)
        except (RagError, psycopg.Error) as exc:  # counted, not raised, like the searches' failures
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        for file in report.files:
            if file.status is IngestStatus.ADDED:
                added.append(int(file.uri.removeprefix(prefix)))
                chunks += file.chunks
            else:
                errors.append(f"{file.uri}: {file.status.value} {file.error or ''}".strip())
    return WriterResult(tuple(added), chunks, tuple(errors), time.perf_counter() - started,
                        time.thread_time() - cpu)


def _client_process(config: Config, seed_key: list[int], warmup: int, seconds: float, barrier: Any,
                    results: Any) -> None:
    """A client in its own process (``--workers processes``): its own Rosetta and pool on the same server."""
    try:
        with Rosetta.open(config, encoder=HashingEncoder()) as rosetta:
            results.put(search_loop(rosetta, vocabularies(), np.random.default_rng(seed_key), warmup, seconds,
                                    barrier))
    except BaseException:
        barrier.abort()  # the others stop waiting (BrokenBarrierError) instead of hanging until the timeout
        raise


@dataclass(frozen=True, slots=True)
class LoadRun:
    """One N: search throughput and latency under a concurrent ingest, and the rows counted afterwards."""

    clients: int
    workers: str
    seconds: float
    searches: int
    searches_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    ingest_errors: int
    ingested_documents: int
    ingested_chunks: int
    ingest_chunks_per_s: float
    expected_documents: int
    expected_chunks: int
    documents: int
    chunks: int
    counts_ok: bool
    client_cpu: float
    postgres_cpu: float | None
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    pool_wait_ms: int | None
    error_samples: tuple[str, ...] = ()
    reset_s: float = 0.0  # deleting the previous run's documents and VACUUM, before this run


class Workers(Enum):
    """What a client is: a thread sharing one Rosetta (and its pool), or a process with its own."""

    THREADS = "threads"
    PROCESSES = "processes"


@dataclass(frozen=True, slots=True)
class Settings:
    """What every N run does."""

    seconds: float = 20.0
    warmup: int = 5
    batch: int = 4
    workers: Workers = Workers.THREADS
    seed: int = 0

    def as_json(self) -> dict[str, Any]:
        """The settings as a JSON object."""
        return {"seconds": self.seconds, "warmup": self.warmup, "batch": self.batch,
                "workers": self.workers.value, "seed": self.seed}


def _start_clients(rosetta: Rosetta, n: int, vocab: Sequence[Vocabulary], s: Settings, token: int,
                   barrier: Any) -> Callable[[], list[ClientResult]]:
    """Start N clients (threads, or processes each with its own Rosetta) waiting on ``barrier``; return a
    function that waits for their results."""
    keys = [[s.seed, token, n, i] for i in range(n)]
    if s.workers is Workers.THREADS:
        executor = ThreadPoolExecutor(max_workers=n, thread_name_prefix="client")
        futures = [executor.submit(search_loop, rosetta, vocab, np.random.default_rng(key), s.warmup, s.seconds,
                                   barrier) for key in keys]
        executor.shutdown(wait=False)
        return lambda: [future.result() for future in futures]
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    config = replace(rosetta.config, db=replace(rosetta.config.db, url=rosetta.database.url, pool_min=1,
                                                pool_max=2))
    for key in keys:
        context.Process(target=_client_process, args=(config, key, s.warmup, s.seconds, barrier, queue),
                        daemon=True).start()
    return lambda: [queue.get(timeout=900) for _ in keys]


def run_clients(rosetta: Rosetta, n: int, vocab: Sequence[Vocabulary], s: Settings, base: BasePlan) -> LoadRun:
    """One N run from the base alone: warm-up, the measured window with the writer, then the counts."""
    reset_s = reset_live(rosetta)
    if (count := count_rows(rosetta)) != Counts(base.documents, base.chunks, 0, 0):
        raise RuntimeError(f"before the N={n} run the collection holds {count}, not the base")
    token = uuid.uuid4().int % 2**32
    prefix = f"{LIVE_PREFIX}{token:08x}/n{n}/"
    load_before = os.getloadavg()
    barrier: Any = (threading.Barrier(n + 2) if s.workers is Workers.THREADS
                    else multiprocessing.get_context("spawn").Barrier(n + 2))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="writer") as executor:
        writer = executor.submit(ingest_loop, rosetta, prefix, vocab, s.seed, s.batch, s.seconds, barrier)
        collect = _start_clients(rosetta, n, vocab, s, token, barrier)
        rosetta.database.pool.pop_stats()
        barrier.wait(timeout=600)
        pg_before, started = _server_cpu(rosetta), time.perf_counter()
        results = collect()
        written = writer.result()
    elapsed = time.perf_counter() - started
    pg_after, load_after = _server_cpu(rosetta), os.getloadavg()
    measured = _summarize(rosetta, n, s, base, results, written, prefix, vocab, elapsed,
                          None if pg_before is None or pg_after is None else (pg_after - pg_before) / elapsed,
                          (load_before, load_after))
    return replace(measured, reset_s=round(reset_s, 1))


def _summarize(rosetta: Rosetta, n: int, s: Settings, base: BasePlan, results: Sequence[ClientResult],
               written: WriterResult, prefix: str, vocab: Sequence[Vocabulary], elapsed: float,
               postgres_cpu: float | None, loads: tuple[tuple[float, ...], tuple[float, ...]]) -> LoadRun:
    latencies = [ms for r in results for ms in r.latencies_ms]
    window = max(r.finished for r in results) - min(r.started for r in results)
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99]) if latencies else (0.0, 0.0, 0.0)
    encoder = HashingEncoder()
    added_chunks = SyntheticCorpus(prefix, written.indices, vocab, s.seed).chunk_count(
        encoder, rosetta.config.ingest.max_tokens)
    expected = Counts(base.documents + len(written.indices), base.chunks + added_chunks,
                      len(written.indices), added_chunks)
    found = count_rows(rosetta)
    errors = [e for r in results for e in r.errors]
    waited = rosetta.database.pool.get_stats().get("requests_wait_ms") if s.workers is Workers.THREADS else None
    return LoadRun(
        clients=n, workers=s.workers.value, seconds=round(window, 2), searches=len(latencies),
        searches_per_s=round(len(latencies) / window, 1), p50_ms=round(float(p50), 1),
        p95_ms=round(float(p95), 1), p99_ms=round(float(p99), 1), max_ms=round(max(latencies, default=0.0), 1),
        errors=len(errors), ingest_errors=len(written.errors), ingested_documents=len(written.indices),
        ingested_chunks=added_chunks, ingest_chunks_per_s=round(added_chunks / written.seconds, 1),
        expected_documents=expected.documents, expected_chunks=expected.chunks, documents=found.documents,
        chunks=found.chunks, counts_ok=found == expected and written.chunks == added_chunks,
        client_cpu=round((sum(r.cpu_s for r in results) + written.cpu_s) / elapsed, 2),
        postgres_cpu=None if postgres_cpu is None else round(postgres_cpu, 2),
        load_before=load_average(loads[0]), load_after=load_average(loads[1]), pool_wait_ms=waited,
        error_samples=tuple((errors + list(written.errors))[:5]))


def load_average(values: Sequence[float]) -> tuple[float, float, float]:
    """Load averages (1, 5, 15 minutes), rounded for the report."""
    one, five, fifteen = (round(v, 2) for v in values)
    return one, five, fifteen
