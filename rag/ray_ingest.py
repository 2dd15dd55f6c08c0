"""Ingest on a Ray cluster (``pip install 'rosetta-rag[ray]'``): Ray's tasks and ActorPool, no scheduler of ours.

The driver lists the sources and reads the stored content hashes. Each source is loaded, hashed and
chunked in a Ray task (an unchanged document is skipped there, before any encoding); each changed document
is encoded and written by an actor of an ActorPool, one encoder per actor, the document's rows in one
transaction against the driver's database URL. Every worker builds its parts through ``Rosetta`` from the
driver's Config, so the rows equal an in-process ingest's (``rag/ingest.py`` holds the steps both run).

A worker that dies is Ray's to restart (``max_restarts``) and its call Ray's to retry (``max_task_retries``);
writing a document again is an upsert. A document whose worker is gone for good is reported failed, like any
failed document, and the next run stores it.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from rag.config import Config
from rag.encoders.cache import Wrapping
from rag.errors import ConfigError
from rag.ingest import (
    FileReport,
    IngestStatus,
    Pipeline,
    Prepared,
    SourceRunner,
    Target,
    load_source,
    prepare_document,
    write_document,
)
from rag.rosetta import Rosetta
from rag.types import Collection, Connector, Encoder, Encoding

# Sources whose tasks are in flight at once: bounds the driver's memory on a large corpus, and keeps the
# actors fed while the next window is chunked.
WINDOW = 256
# Loading and chunking is light next to encoding: half a CPU per task, so tasks run beside the actors.
TASK_CPUS = 0.5


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What a Ray worker needs to build the same pipeline as the driver: the Config (with the driver's
    database URL), the collection, and the encoder given to ``Rosetta.open`` (None: the configured one)."""

    config: Config
    collection: Collection
    encoder: Encoder | None
    run: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True, slots=True)
class LengthSorted(Wrapping):
    """An Encoder that hands its texts to ``inner`` shortest first, so each batch holds texts of about one
    length (less padding), and returns the encodings in the order given."""

    inner: Encoder

    def encode_passages(self, texts: Sequence[str]) -> list[Encoding]:
        """Passage encodings, computed by token length."""
        order = sorted(range(len(texts)), key=lambda i: self.inner.count_tokens(texts[i]))
        encoded = self.inner.encode_passages([texts[i] for i in order])
        result: list[Encoding | None] = [None] * len(texts)
        for i, encoding in zip(order, encoded):
            result[i] = encoding
        return [e for e in result if e is not None]

    def encode_queries(self, texts: Sequence[str]) -> list[Encoding]:
        """Query encodings (not reordered: queries come one at a time)."""
        return self.inner.encode_queries(texts)


# One Rosetta per worker process and run: a task worker serves many tasks of the run.
_OPENED: dict[str, tuple[Rosetta, Pipeline]] = {}


def worker_pipeline(spec: WorkerSpec) -> Pipeline:
    """The run's pipeline in this worker process, opened once (closing an earlier run's)."""
    if spec.run not in _OPENED:
        for rosetta, _ in _OPENED.values():
            rosetta.close()
        _OPENED.clear()
        rosetta = Rosetta.open(spec.config, encoder=spec.encoder)
        _OPENED[spec.run] = (rosetta, rosetta.pipeline(spec.collection))
    return _OPENED[spec.run][1]


def prepare_source(spec: WorkerSpec, connector: Connector, uri: str, known: dict[str, str]
                   ) -> list[Prepared | FileReport]:
    """A Ray task: load one source and chunk its changed documents (reports for the rest)."""
    documents = load_source(connector, uri)
    if isinstance(documents, FileReport):
        return [documents]
    p = worker_pipeline(spec)
    return [prepare_document(p, document, known.get(document.uri)) for document in documents]


class IngestActor:
    """A Ray actor: one encoder, one connection pool; encodes and writes prepared documents."""

    def __init__(self, spec: WorkerSpec) -> None:
        p = worker_pipeline(spec)
        self.pipeline = replace(p, encoder=LengthSorted(p.encoder))

    def write(self, prepared: Prepared) -> FileReport:
        """Encode ``prepared`` and write its rows in one transaction."""
        return write_document(self.pipeline, prepared)


def _died(uri: str, language: str | None, exc: Exception) -> FileReport:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return FileReport(uri, IngestStatus.FAILED, language, 0,
                      f"the Ray worker processing it died ({reason}); run the ingest again to store it")


@dataclass(frozen=True, slots=True)
class RayExecutor:
    """Runs an ingest's sources on Ray: ``Rosetta.ingest(paths, executor=RayExecutor("auto"))``.

    ``address``: None or ``"local"`` starts a Ray on this machine for the run (or uses the one this process
    already joined); ``"auto"`` joins the running cluster; else a ``ray://host:10001`` or ``host:6379``
    address. ``actors`` encoders run at once, each reserving ``cpus_per_actor`` CPUs (None: one, or a share
    when the cluster has fewer, half a CPU always left to the tasks) and ``gpus_per_actor`` GPUs (None: one
    each when the cluster has that many, a share when it has fewer, none without).
    """

    address: str | None = None
    actors: int = 2
    cpus_per_actor: float | None = None
    gpus_per_actor: float | None = None
    max_restarts: int = 2

    def __post_init__(self) -> None:
        if self.actors < 1:
            raise ValueError(f"RayExecutor needs at least one actor, got actors={self.actors}")
        if (self.cpus_per_actor or 0) < 0 or (self.gpus_per_actor or 0) < 0:
            raise ValueError(f"cpus_per_actor and gpus_per_actor must not be negative, got "
                             f"{self.cpus_per_actor} and {self.gpus_per_actor}")

    def runner(self, config: Config, collection: Collection, encoder: Encoder | None) -> SourceRunner:
        """The SourceRunner that ``run_ingest`` drives: sources in Ray tasks, documents through the actors
        (``config`` names the database all workers write to; ``encoder``, if given, is sent to each)."""
        spec = WorkerSpec(config, collection, encoder)
        ray = _ray()  # before anything runs: a missing extra is a ConfigError naming the install

        def run(p: Pipeline, sources: Sequence[tuple[Target, str]], known: dict[str, str]
                ) -> Iterator[list[FileReport]]:
            self._connect(ray)
            return _Run(ray, spec, self, known).reports(sources)

        return run

    def _connect(self, ray: Any) -> None:
        if ray.is_initialized():
            return
        address = None if self.address in (None, "local") else self.address
        ray.init(address=address, include_dashboard=False, configure_logging=False, log_to_driver=False)

    def cpus(self, cluster_cpus: float) -> float:
        """CPUs each actor reserves: ``cpus_per_actor``, or (None) one each while the cluster has them, leaving
        TASK_CPUS for the loading-and-chunking tasks; ConfigError when the actors would leave the tasks none
        (Ray would then wait for a CPU forever)."""
        cpus = self.cpus_per_actor
        if cpus is None:
            cpus = min(1.0, (cluster_cpus - TASK_CPUS) / self.actors)
        if cpus <= 0 or self.actors * cpus + TASK_CPUS > cluster_cpus:
            raise ConfigError(
                f"{self.actors} Ray actors of {cpus:g} CPUs leave no CPU for the loading-and-chunking tasks "
                f"({TASK_CPUS:g} each) on a cluster of {cluster_cpus:g} CPUs; use fewer actors (--ray-actors) "
                "or fewer CPUs per actor")
        return cpus

    def gpus(self, ray: Any) -> float:
        """GPUs each actor reserves."""
        if self.gpus_per_actor is not None:
            return self.gpus_per_actor
        available = float(ray.cluster_resources().get("GPU", 0))
        return min(1.0, available / self.actors)


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("ingest on Ray needs the ray extra: pip install 'rosetta-rag[ray]'") from exc
    return ray


class _Run:
    """One ingest's Ray objects: the task, the actor pool, and the known hashes in the object store."""

    def __init__(self, ray: Any, spec: WorkerSpec, executor: RayExecutor, known: dict[str, str]) -> None:
        from ray.util import ActorPool

        self.ray = ray
        self.spec = spec
        self.known = ray.put(known)
        self.prepare = ray.remote(num_cpus=TASK_CPUS, max_retries=2)(prepare_source)
        actor = ray.remote(IngestActor)
        options = {"num_cpus": executor.cpus(float(ray.cluster_resources().get("CPU", 0))),
                   "num_gpus": executor.gpus(ray),
                   "max_restarts": executor.max_restarts, "max_task_retries": executor.max_restarts}
        # Named, so an operator (or a test) can find a run's actors: ray.util.list_named_actors().
        self.actors = [actor.options(name=f"rosetta-ingest-{spec.run}-{i}", **options).remote(spec)
                       for i in range(executor.actors)]
        self.pool = ActorPool(self.actors)
        self.alive = len(self.actors)

    def reports(self, sources: Sequence[tuple[Target, str]]) -> Iterator[list[FileReport]]:
        """Each source's reports, a window of sources at a time (the next window chunks while this one
        writes); the actors are released at the end."""
        try:
            windows = iter([list(sources[i:i + WINDOW]) for i in range(0, len(sources), WINDOW)])
            current = self._submit(next(windows, []))
            for window in windows:
                upcoming = self._submit(window)
                yield from self._drain(current)
                current = upcoming
            yield from self._drain(current)
        finally:
            for actor in self.actors:
                self.ray.kill(actor)

    def _submit(self, window: list[tuple[Target, str]]) -> list[tuple[str, Any]]:
        return [(uri, self.prepare.remote(self.spec, target.connector, uri, self.known)) for target, uri in window]

    def _drain(self, window: list[tuple[str, Any]]) -> Iterator[list[FileReport]]:
        """Hand each chunked document to the pool as its source's task finishes, and take the results in the
        order given (ActorPool's get_next), so each result or failure belongs to a known document; a source's
        reports come out once its last document is written."""
        reports: dict[int, list[FileReport]] = {}
        waiting: dict[int, int] = {}
        order: deque[tuple[int, Prepared]] = deque()
        for index, (uri, ref) in enumerate(window):
            items = self._prepared(uri, ref)
            reports[index] = [item for item in items if isinstance(item, FileReport)]
            prepared = [item for item in items if isinstance(item, Prepared)]
            waiting[index] = len(prepared)
            for item in prepared:
                self.pool.submit(lambda actor, value: actor.write.remote(value), item)
                order.append((index, item))
            if not prepared:
                yield reports.pop(index)
            yield from self._collect(order, reports, waiting, block=False)
        yield from self._collect(order, reports, waiting, block=True)

    def _collect(self, order: deque[tuple[int, Prepared]], reports: dict[int, list[FileReport]],
                 waiting: dict[int, int], block: bool) -> Iterator[list[FileReport]]:
        """The written documents' reports, in order, until one is not ready (unless ``block``): each
        get_next also hands the freed actor its next document."""
        while order:
            index, item = order[0]
            report = self._written(item, block)
            if report is None:
                return
            order.popleft()
            reports[index].append(report)
            waiting[index] -= 1
            if waiting[index] == 0:
                yield reports.pop(index)

    def _prepared(self, uri: str, ref: Any) -> list[Prepared | FileReport]:
        try:
            return list(self.ray.get(ref))
        except self.ray.exceptions.WorkerCrashedError as exc:
            return [_died(uri, None, exc)]

    def _written(self, item: Prepared, block: bool) -> FileReport | None:
        """The next document's report; None when it is not written yet and ``block`` is false."""
        if self.alive == 0:  # the pool would wait for an actor forever
            return _died(item.document.uri, item.document.language, RuntimeError("every actor is gone"))
        try:
            report: FileReport = self.pool.get_next(timeout=None if block else 0)
            return report
        except TimeoutError:
            return None
        except self.ray.exceptions.ActorDiedError as exc:  # ActorPool drops the actor
            self.alive -= 1
            return _died(item.document.uri, item.document.language, exc)
        except self.ray.exceptions.RayActorError as exc:
            return _died(item.document.uri, item.document.language, exc)

