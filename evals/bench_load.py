"""Load benchmark: N concurrent clients searching a 100k-chunk collection while an ingest runs.

    python -m evals.bench_load [--clients 1,4,16] [--seconds 20] [--warmup 5] [--chunks 100000]
                               [--data-dir .rosetta/bench-load] [--rebuild] [--workers threads|processes]
                               [--out DIR]

The base collection is built once, through the real pipeline (``Rosetta.ingest``: language detection,
chunking, the encoding cache, the store's COPY and both HNSW indexes), from synthetic documents in
five languages (en, de, es, ja, zh) whose words are drawn with a Zipf law from the demo manuals'
vocabulary, extended with pseudo-words made of those words' pieces. It is kept in ``--data-dir``
(an embedded Postgres) and reused when its counts match; ingest is idempotent, so a killed build
resumes where it stopped. Exactly ``--chunks`` chunks: the last document is cut where its chunk ends.

Encoding uses ``rag.encoders.hashing.HashingEncoder``, a model-free deterministic encoder (lexical BM25
weights, folded into 384 dense dimensions), for ingest and queries alike: a real model's query encoding (e5-small,
9-13 ms per query on CPU) is NOT in these numbers, which measure the database and fusion path.

Each N run starts from the base alone (earlier runs' documents are deleted), warms every client up,
then for ``--seconds`` every client calls ``search(query, k=10)`` (hybrid: dense + lexical legs,
RRF, no reranker; every query is new, so each one misses and then fills the encoding cache) while
one writer ingests new documents with unique URIs in batches. Afterwards the collection's documents
and chunks are counted in SQL and must equal the base plus what the writer added (counted again by
chunking the same documents).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import psycopg
import regex
from psycopg import sql

from rag.chunk import chunk_document
from rag.config import Config, DbConfig, IngestConfig
from rag.encoders.hashing import HashingEncoder
from rag.errors import RagError
from rag.ingest import IngestStatus, Target, run_ingest
from rag.rosetta import Rosetta
from rag.store.schema import collection_index_names, create_collection_indexes
from rag.types import Collection, Document

DEMO = Path(__file__).resolve().parent.parent / "demo" / "manuals"
LANGUAGES = ("en", "de", "es", "ja", "zh")
COLLECTION = "bench-load"
BASE_PREFIX = "bench-load://base/"
LIVE_PREFIX = "bench-load://live/"
K = 10
# Words per language: the demo's few hundred real words, then pseudo-words; CJK characters likewise.
SPACED_WORDS, UNSPACED_CHARS = 8000, 3000
# Zipf-Mandelbrot ranks: p(r) ~ 1 / (r + 2.7), roughly natural text's frequency curve.
ZIPF_SHIFT = 2.7
# Terms per document: 1 to ~12 chunks of 256 tokens, about 6 on average.
MIN_TERMS, MAX_TERMS = 150, 3000

_SPACED = regex.compile(r"\p{L}[\p{L}\p{M}]+")
_TAG = regex.compile(r"<[^>]*>")
_UNSPACED = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}ー]")
_COUNTS = """
    SELECT (SELECT count(*) FROM {schema}.documents WHERE collection_id = c.id),
           (SELECT count(*) FROM {schema}.chunks WHERE collection_id = c.id),
           (SELECT count(*) FROM {schema}.documents WHERE collection_id = c.id AND uri LIKE %(live)s),
           (SELECT count(*) FROM {schema}.chunks k JOIN {schema}.documents d ON d.id = k.document_id
             WHERE k.collection_id = c.id AND d.uri LIKE %(live)s)
    FROM {schema}.collections c WHERE c.name = %(name)s
"""
_DELETE_LIVE = """
    DELETE FROM {schema}.documents
    WHERE collection_id = (SELECT id FROM {schema}.collections WHERE name = %(name)s) AND uri LIKE %(live)s
"""
_DROP_COLLECTION = "DELETE FROM {schema}.collections WHERE name = %(name)s"
_VACUUM = "VACUUM (ANALYZE) {schema}.chunks, {schema}.documents"
_DROP_INDEX = "DROP INDEX IF EXISTS {schema}.{index}"
# The HNSW graphs of 100k chunks are built in memory (a few hundred MB each), with one worker beside the
# leader: 2 cores.
_BUILD_SETTINGS = "SET maintenance_work_mem = '1GB'; SET max_parallel_maintenance_workers = 1"


@dataclass(frozen=True, slots=True, eq=False)
class Vocabulary:
    """One language's words (or CJK characters), most frequent first, with Zipf sampling."""

    language: str
    words: tuple[str, ...]
    spaced: bool
    cdf: np.ndarray

    @classmethod
    def from_demo(cls, language: str, corpus: Path = DEMO) -> Vocabulary:
        """Words ranked by frequency in ``corpus/language``, extended with pseudo-words of their pieces."""
        files = sorted((corpus / language).iterdir())
        text = _TAG.sub(" ", "\n".join(path.read_text(encoding="utf-8") for path in files))
        spaced = language not in ("ja", "zh")
        found = Counter((_SPACED if spaced else _UNSPACED).findall(text))
        real = [word for word, _ in found.most_common()]
        words = _pseudo_words(real, SPACED_WORDS) if spaced else _more_han(real, UNSPACED_CHARS)
        weights = 1.0 / (np.arange(len(words)) + ZIPF_SHIFT)
        return cls(language, tuple(words), spaced, np.cumsum(weights / weights.sum()))

    def draw(self, rng: np.random.Generator, n: int) -> list[str]:
        """``n`` words drawn by frequency."""
        return [self.words[i] for i in np.searchsorted(self.cdf, rng.random(n), side="right").clip(max=len(self.words) - 1)]

    def sentence(self, rng: np.random.Generator, n: int) -> str:
        """A sentence of ``n`` words (capitalized, so the chunker sees a sentence start) or characters."""
        words = self.draw(rng, n)
        if not self.spaced:
            return "".join(words) + "。"
        return " ".join([words[0][:1].upper() + words[0][1:], *words[1:]]) + "."

    def text(self, rng: np.random.Generator, n_terms: int) -> str:
        """Paragraphs of 3-6 sentences with about ``n_terms`` terms in all."""
        joiner = " " if self.spaced else ""
        low, high = (5, 18) if self.spaced else (10, 40)
        paragraphs, used = [], 0
        while used < n_terms:
            lengths = rng.integers(low, high, size=int(rng.integers(3, 7)))
            paragraphs.append(joiner.join(self.sentence(rng, int(n)) for n in lengths))
            used += int(lengths.sum())
        return "\n\n".join(paragraphs)

    def query(self, rng: np.random.Generator) -> str:
        """A short question: 3-7 words, or 6-15 characters."""
        if self.spaced:
            return " ".join(self.draw(rng, int(rng.integers(3, 8)))).capitalize() + "?"
        return "".join(self.draw(rng, int(rng.integers(6, 16)))) + "？"


def _pseudo_words(real: Sequence[str], size: int, seed: int = 0) -> list[str]:
    """``real`` then lower-case blends (a prefix of one word, a suffix of another) up to ``size`` words."""
    rng = np.random.default_rng(seed)
    long = [w.lower() for w in real if len(w) >= 4]
    words, seen = list(real), set(real)
    while len(words) < size:
        a, b = (long[int(i)] for i in rng.integers(len(long), size=2))
        word = a[: int(rng.integers(2, len(a)))] + b[int(rng.integers(1, len(b) - 1)):]
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def _more_han(real: Sequence[str], size: int, seed: int = 0) -> list[str]:
    """``real`` then CJK Unified Ideographs (U+4E00-U+9FA5) it lacks, up to ``size`` characters."""
    rng = np.random.default_rng(seed)
    extra = [chr(c) for c in rng.permutation(np.arange(0x4E00, 0x9FA6)) if chr(c) not in set(real)]
    return [*real, *extra[: max(0, size - len(real))]]


def vocabularies(corpus: Path = DEMO) -> tuple[Vocabulary, ...]:
    """One Vocabulary per benchmark language."""
    return tuple(Vocabulary.from_demo(language, corpus) for language in LANGUAGES)


def synthetic_document(uri: str, index: int, vocab: Sequence[Vocabulary], seed: int = 0,
                       limit: int | None = None) -> Document:
    """Document ``index``: deterministic in (seed, index), in language ``index mod 5``; cut at ``limit``."""
    rng = np.random.default_rng([seed, index])
    language = vocab[index % len(vocab)]
    text = language.text(rng, int(rng.integers(MIN_TERMS, MAX_TERMS)))
    return Document(uri, text[:limit], title=f"{language.language} manual {index}",
                    metadata={"bench": "load", "index": index})


@dataclass(frozen=True, slots=True)
class SyntheticCorpus:
    """A Connector over generated documents ``prefix + index``; ``limits`` cuts some documents short."""

    prefix: str
    indices: Sequence[int]
    vocab: Sequence[Vocabulary]
    seed: int = 0
    limits: Mapping[int, int] = field(default_factory=dict)

    def sources(self) -> Iterator[str]:
        """One URI per document."""
        return (f"{self.prefix}{index:07d}" for index in self.indices)

    def load(self, uri: str) -> list[Document]:
        """The document behind ``uri``."""
        index = int(uri.removeprefix(self.prefix))
        return [synthetic_document(uri, index, self.vocab, self.seed, self.limits.get(index))]

    def chunk_count(self, encoder: HashingEncoder, max_tokens: int) -> int:
        """How many chunks ingest makes of these documents (chunked here independently of the store)."""
        return sum(len(chunk_document(document, encoder.count_tokens, max_tokens))
                   for uri in self.sources() for document in self.load(uri))


@dataclass(frozen=True, slots=True)
class BasePlan:
    """The base collection: documents 0..documents-1, the last one cut at ``last_limit`` characters."""

    documents: int
    chunks: int
    last_limit: int | None

    def corpus(self, vocab: Sequence[Vocabulary], seed: int) -> SyntheticCorpus:
        """The base documents as a Connector."""
        limits = {self.documents - 1: self.last_limit} if self.last_limit is not None else {}
        return SyntheticCorpus(BASE_PREFIX, range(self.documents), vocab, seed, limits)


def plan_base(chunks: int, vocab: Sequence[Vocabulary], encoder: HashingEncoder, max_tokens: int,
              seed: int = 0) -> BasePlan:
    """How many documents make exactly ``chunks`` chunks, and where the last one must be cut."""
    total, index = 0, 0
    while True:
        document = synthetic_document(f"{BASE_PREFIX}{index:07d}", index, vocab, seed)
        made = chunk_document(document, encoder.count_tokens, max_tokens)
        if total + len(made) >= chunks:
            need = chunks - total
            limit = made[need - 1].end if need < len(made) else None
            cut = replace(document, text=document.text[:limit])
            # Chunking is greedy from the start, so a prefix ending at a chunk's end re-chunks the same.
            assert len(chunk_document(cut, encoder.count_tokens, max_tokens)) == need
            return BasePlan(index + 1, chunks, limit)
        total += len(made)
        index += 1


@dataclass(frozen=True, slots=True)
class Counts:
    """A collection's rows, and how many of them belong to documents under the live prefix."""

    documents: int
    chunks: int
    live_documents: int
    live_chunks: int


def _sql(statement: str, schema: str) -> sql.Composed:
    return sql.SQL(statement).format(schema=sql.Identifier(schema))


def count_rows(rosetta: Rosetta, collection: str = COLLECTION) -> Counts:
    """The collection's documents and chunks, counted in SQL (zeros when it does not exist)."""
    with rosetta.database.pool.connection() as conn:
        row = conn.execute(_sql(_COUNTS, rosetta.store.schema), {"name": collection, "live": LIVE_PREFIX + "%"}
                           ).fetchone()
    return Counts(*(int(value) for value in row)) if row else Counts(0, 0, 0, 0)


def reset_live(rosetta: Rosetta, collection: str = COLLECTION, vacuum: bool = True) -> float:
    """Delete earlier runs' live documents (so each run starts from the base); return the seconds taken."""
    started = time.perf_counter()
    with rosetta.database.pool.connection() as conn:
        deleted = conn.execute(_sql(_DELETE_LIVE, rosetta.store.schema),
                               {"name": collection, "live": LIVE_PREFIX + "%"}).rowcount
    if deleted and vacuum:  # VACUUM cannot run in a transaction; it also prunes the dead HNSW entries
        with psycopg.connect(rosetta.database.url, autocommit=True) as conn:
            conn.execute(_sql(_VACUUM, rosetta.store.schema))
    return time.perf_counter() - started


class _Progress:
    """Prints the base build's progress every ``step`` documents."""

    def __init__(self, step: int) -> None:
        self.step, self.done, self.total, self.started = step, 0, 0, time.perf_counter()

    def sources_found(self, count: int) -> None:
        self.total = count

    def source_done(self, reports: Sequence[Any]) -> None:
        self.done += 1
        if self.done % self.step == 0 or self.done == self.total:
            print(f"  base: {self.done}/{self.total} documents, {time.perf_counter() - self.started:.0f} s",
                  flush=True)


def _drop_hnsw(rosetta: Rosetta) -> Collection:
    """Create the collection if needed, drop its two HNSW indexes, and return it."""
    encoder = rosetta.encoder(COLLECTION)
    stored = rosetta.store.ensure_collection(COLLECTION, encoder.name, encoder.dim, encoder.sparse_dim)
    with rosetta.database.pool.connection() as conn:
        for name in collection_index_names(stored.id):
            conn.execute(sql.SQL(_DROP_INDEX).format(schema=sql.Identifier(rosetta.store.schema),
                                                     index=sql.Identifier(name)))
    return stored


def _build_hnsw(rosetta: Rosetta) -> float:
    """Build the collection's HNSW indexes where missing, with rag.store.schema's DDL; return the seconds taken.

    Incremental inserts into a sparsevec HNSW graph cost ~20 ms a chunk at a few thousand rows on this
    machine and grow with the graph, so the base is loaded without the indexes and they are built once,
    as for a bulk load or a restore, with enough memory to build each graph in memory.
    """
    stored = rosetta.store.collection(COLLECTION)
    assert stored is not None
    started = time.perf_counter()
    with psycopg.connect(rosetta.database.url, autocommit=True) as conn:
        conn.execute(_BUILD_SETTINGS)
        create_collection_indexes(conn, rosetta.store.schema, stored.id, stored.dim, stored.sparse_dim)
    return time.perf_counter() - started


def ensure_base(rosetta: Rosetta, plan: BasePlan, vocab: Sequence[Vocabulary], seed: int) -> dict[str, Any]:
    """Ingest the base documents still missing (none when it was built before); check the counts.

    Missing documents go through the real ingest pipeline (content hash, language detection, chunking,
    the encoding cache, COPY, the GIN index) with the HNSW indexes dropped, which are then built once.
    """
    reset_live(rosetta)
    before = count_rows(rosetta)
    ingest_s = 0.0
    if (before.documents, before.chunks) != (plan.documents, plan.chunks):
        stored = _drop_hnsw(rosetta)
        started = time.perf_counter()
        # Not Rosetta.ingest: its ensure_collection would recreate the HNSW indexes dropped above.
        report = run_ingest(rosetta.pipeline(stored, _Progress(max(1, plan.documents // 50))),
                            [Target("base", plan.corpus(vocab, seed), None)])
        ingest_s = time.perf_counter() - started
        if report.failed:
            raise RuntimeError(f"base ingest failed for {report.failed} documents: {report.files[:3]}")
    index_s = _build_hnsw(rosetta)  # also after a build killed while indexing: IF NOT EXISTS
    after = count_rows(rosetta)
    if (after.documents, after.chunks) != (plan.documents, plan.chunks):
        raise RuntimeError(f"collection {COLLECTION!r} holds {after.documents} documents / {after.chunks} chunks, "
                           f"expected {plan.documents} / {plan.chunks}; run again with --rebuild")
    return {"documents": after.documents, "chunks": after.chunks, "reused": before == after,
            "resumed_from_chunks": before.chunks, "ingest_s": round(ingest_s, 1), "index_s": round(index_s, 1)}


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
        load_before=_load(loads[0]), load_after=_load(loads[1]), pool_wait_ms=waited,
        error_samples=tuple((errors + list(written.errors))[:5]))


def _load(values: Sequence[float]) -> tuple[float, float, float]:
    one, five, fifteen = (round(v, 2) for v in values)
    return one, five, fifteen


PLAN_FILE = "bench-load.json"
CORPUS_VERSION = 1  # bump when the generated documents change: the saved plan is then recomputed


def bench_config(config: Config, clients: Sequence[int]) -> Config:
    """``config`` with a pool for N clients + the writer + one spare, and the five languages to detect."""
    db = replace(config.db, pool_max=max(config.db.pool_max, max(clients) + 2))
    return replace(config, db=db, ingest=replace(config.ingest, languages=LANGUAGES), collection=COLLECTION)


def _plan(config: Config, chunks: int, vocab: Sequence[Vocabulary], seed: int) -> tuple[BasePlan, dict[str, Any]]:
    """The base plan, from ``data_dir/bench-load.json`` when it was made for the same settings."""
    encoder = HashingEncoder()
    key = {"corpus": CORPUS_VERSION, "chunks": chunks, "seed": seed, "max_tokens": config.ingest.max_tokens,
           "encoder": encoder.name, "schema": config.db.schema}
    path = config.db.data_dir / PLAN_FILE
    saved = json.loads(path.read_text()) if path.is_file() else {}
    if saved.get("key") == key:
        return BasePlan(**saved["plan"]), saved
    started = time.perf_counter()
    plan = plan_base(chunks, vocab, encoder, config.ingest.max_tokens, seed)
    saved = {"key": key, "plan": asdict(plan), "plan_s": round(time.perf_counter() - started, 1)}
    return plan, saved


def _save_plan(config: Config, saved: dict[str, Any]) -> None:
    path = config.db.data_dir / PLAN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(saved, indent=2) + "\n")


def machine() -> dict[str, Any]:
    """The machine the numbers come from."""
    cpuinfo = Path("/proc/cpuinfo")
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
              if line.startswith("model name")] if cpuinfo.is_file() else []
    return {"nproc": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
            "cpu_model": models[0] if models else None,
            "ram_gb": round(psutil.virtual_memory().total / 2**30, 1)}


def run(config: Config, chunks: int, clients: Sequence[int], settings: Settings, rebuild: bool = False,
        out: Path | None = None) -> dict[str, Any]:
    """Build or reuse the base, run every N, print the table; write OUT/load.json (and load.png)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    config = bench_config(config, clients)
    if rebuild and config.db.url is None:
        shutil.rmtree(config.db.data_dir, ignore_errors=True)
    load_start, vocab = os.getloadavg(), vocabularies()
    with Rosetta.open(config, encoder=HashingEncoder()) as rosetta:
        if rebuild:
            with rosetta.database.pool.connection() as conn:
                conn.execute(_sql(_DROP_COLLECTION, rosetta.store.schema), {"name": COLLECTION})
        plan, saved = _plan(config, chunks, vocab, settings.seed)
        base = ensure_base(rosetta, plan, vocab, settings.seed)
        if not base["reused"] or "build" not in saved:
            saved["build"] = {key: base[key] for key in ("ingest_s", "index_s", "resumed_from_chunks")}
            _save_plan(config, saved)
        base |= {"plan_s": saved.get("plan_s"), "first_build": saved["build"]}
        rosetta.search("warm-up", collection=COLLECTION, k=K)  # builds retriever and detector before threads do
        runs = []
        for n in clients:
            runs.append(run_clients(rosetta, n, vocab, settings, plan))
            print(f"  N={n}: {runs[-1].searches_per_s} searches/s, p95 {runs[-1].p95_ms} ms, "
                  f"{runs[-1].errors} errors", flush=True)
        info = rosetta.database.info()
    result = {
        "note": "query encoding by a real model (e5-small ~9-13 ms/query, CPU-bound) is excluded: the encoder "
                "is a deterministic hashing encoder, so the numbers are the database + fusion path",
        "machine": machine() | {"postgres": info.server_version, "pgvector": info.pgvector_version,
                                "embedded": info.embedded, "loadavg_start": _load(load_start),
                                "loadavg_end": _load(os.getloadavg())},
        "settings": settings.as_json() | {"k": K, "mode": config.retrieval.mode.value,
                                        "ef_search": config.retrieval.ef_search, "pool_max": config.db.pool_max,
                                        "encoder": HashingEncoder().name, "languages": list(LANGUAGES)},
        "base": base,
        "runs": [asdict(r) for r in runs],
    }
    print_report(result)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "load.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        plot(result, out / "load.png")
    return result


_COLUMNS = {"N": "clients", "searches": "searches", "search/s": "searches_per_s", "p50 ms": "p50_ms",
            "p95 ms": "p95_ms", "p99 ms": "p99_ms", "max ms": "max_ms", "errors": "errors",
            "+docs": "ingested_documents", "+chunks": "ingested_chunks", "ingest ch/s": "ingest_chunks_per_s"}


def table_rows(result: Mapping[str, Any]) -> list[list[str]]:
    """The header and one row per N: throughput, latency, errors, what the ingest added and the counts."""
    header = [*_COLUMNS, "documents", "chunks", "cpu py/pg", "load 1m"]
    rows = [header]
    for run in result["runs"]:
        check = "ok" if run["counts_ok"] else f"!= {run['expected_documents']}/{run['expected_chunks']}"
        pg = "-" if run["postgres_cpu"] is None else f"{run['postgres_cpu']:.2f}"
        rows.append([str(run[key]) for key in _COLUMNS.values()] + [
            str(run["documents"]), f"{run['chunks']} {check}", f"{run['client_cpu']:.2f}/{pg}",
            f"{run['load_before'][0]:.2f}->{run['load_after'][0]:.2f}"])
    return rows


def print_report(result: Mapping[str, Any]) -> None:
    """Print the heading (machine, base, settings) and the table."""
    m, s, b = result["machine"], result["settings"], result["base"]
    print(f"\nLoad: {b['chunks']} base chunks in {b['documents']} documents; {s['workers']} clients, "
          f"{s['seconds']} s each N after {s['warmup']} warm-up searches per client; search k={s['k']} "
          f"{s['mode']}, one writer ingesting batches of {s['batch']} documents")
    print(f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['ram_gb']} GB RAM, shared; load average "
          f"{m['loadavg_start'][0]} at start, {m['loadavg_end'][0]} at end; Postgres {m['postgres']}, "
          f"pgvector {m['pgvector']}")
    print(f"Note: {result['note']}.")
    rows = table_rows(result)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths)))


def plot(result: Mapping[str, Any], path: Path) -> None:
    """Throughput and latency percentiles against N, as a PNG (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["runs"]
    n = [run["clients"] for run in runs]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(n, [run["searches_per_s"] for run in runs], marker="o")
    left.set(xscale="log", xlabel="concurrent clients", ylabel="searches/s", xticks=n, xticklabels=n)
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        right.plot(n, [run[key] for run in runs], marker="o", label=key.removesuffix("_ms"))
    right.set(xscale="log", xlabel="concurrent clients", ylabel="latency (ms)", xticks=n, xticklabels=n)
    right.legend()
    figure.suptitle(f"search() on {result['base']['chunks']} chunks during ingest ({runs[0]['workers']})")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="1,4,16", help="comma-separated numbers of concurrent clients")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per N")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured searches per client before each N")
    parser.add_argument("--chunks", type=int, default=100_000, help="chunks in the base collection")
    parser.add_argument("--batch", type=int, default=4, help="documents per ingest() call of the writer")
    parser.add_argument("--workers", choices=("threads", "processes"), default="threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=Path(".rosetta/bench-load"),
                        help="embedded Postgres holding the base collection (kept between runs)")
    parser.add_argument("--database-url", help="use this Postgres instead of the embedded one")
    parser.add_argument("--rebuild", action="store_true", help="drop the base collection and build it again")
    parser.add_argument("--out", type=Path, help="write OUT/load.json and OUT/load.png")
    args = parser.parse_args()
    clients = [int(n) for n in args.clients.split(",") if n.strip()]
    config = Config(db=DbConfig(url=args.database_url, data_dir=args.data_dir.resolve()),
                    ingest=IngestConfig(languages=LANGUAGES))
    settings = Settings(args.seconds, args.warmup, args.batch, Workers(args.workers), args.seed)
    run(config, args.chunks, clients, settings, args.rebuild, args.out)


if __name__ == "__main__":
    main()
