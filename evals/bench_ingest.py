"""Ingest throughput benchmark: the whole pipeline against the raw encoder on the same chunks.

    python -m evals.bench_ingest --data ../shared/data/manuals [--json] [--raw-sample 256] [--no-sentences]
                                 [--no-latent]
                                 [--ray N] [--out DIR]

Ingests DATA with e5-small into a fresh embedded Postgres (so the encoding cache starts empty) and
prints chunks, chunks/s, the raw encoder's passages/s on a sample of the same chunks, their ratio,
peak RSS of this process and of the Postgres server, and database bytes per chunk (documents, chunks and
their sentence vectors). ``--no-sentences`` turns sentence vectors off and ``--no-latent`` the latent terms,
to measure what each costs.

``--ray N`` adds, in the same run, ingests through a local Ray (rag/ray_ingest.py) with 1..N encoder actors,
each into a fresh schema (an empty encoding cache), beside an in-process ingest: once with e5-small (the
per-actor encoding rate) and once with the model-free hashing encoder (what loading, chunking and the
database writes sustain without a model). Seconds include starting the actors and loading their models;
Ray itself is started before the clock. The numbers and the table go through evals.report.publish_bench
(``--out DIR`` writes DIR/bench_ingest.json).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from evals.report import publish_bench
from rag.config import Config, DbConfig, EncoderKind, IngestConfig, ModelConfig
from rag.encoders.e5 import E5SmallEncoder
from rag.encoders.hashing import HashingEncoder
from rag.ingest import FileReport, IngestStatus
from rag.ray_ingest import RayExecutor
from rag.rosetta import Rosetta
from rag.types import Encoder

_SIZE = """
    SELECT pg_total_relation_size(format('%%I.chunks', %(schema)s::text)::regclass)
         + pg_total_relation_size(format('%%I.documents', %(schema)s::text)::regclass)
         + pg_total_relation_size(format('%%I.sentences', %(schema)s::text)::regclass)
"""
_SENTENCES = "SELECT count(*) FROM {}.sentences"
_TEXTS = "SELECT text FROM {}.chunks ORDER BY document_id, ordinal"


def _postgres_rss_mb(rosetta: Rosetta) -> float:
    pid = rosetta.database.server.get_pid() if rosetta.database.server else None
    if pid is None:
        return 0.0
    server = psutil.Process(pid)
    return float(sum(p.memory_info().rss for p in [server, *server.children(recursive=True)])) / 2**20


def measure(data: Path, raw_sample: int = 256, seed: int = 0, sentences: bool = True,
            latent: bool = True) -> dict[str, Any]:
    """Run the benchmark and return its numbers."""
    with tempfile.TemporaryDirectory(prefix="rosetta-bench-") as tmp:
        config = Config(db=DbConfig(data_dir=Path(tmp)), models=ModelConfig(encoder=EncoderKind.E5_SMALL),
                        ingest=IngestConfig(sentence_vectors=sentences, latent_terms=latent), collection="bench")
        with Rosetta.open(config) as rosetta:
            started = time.perf_counter()
            report = rosetta.ingest([data])
            seconds = time.perf_counter() - started
            pg_rss = _postgres_rss_mb(rosetta)
            with rosetta.database.pool.connection() as conn:
                size = conn.execute(_SIZE, {"schema": config.db.schema}).fetchone()
                texts = [row[0] for row in conn.execute(_TEXTS.format(config.db.schema))]
                stored = conn.execute(_SENTENCES.format(config.db.schema)).fetchone()
    sample = random.Random(seed).sample(texts, min(raw_sample, len(texts)))
    encoder = E5SmallEncoder.load()
    raw_started = time.perf_counter()
    encoder.encode_passages(sample)
    raw_rate = len(sample) / (time.perf_counter() - raw_started)
    rate = report.chunks / seconds
    return {
        "chunks": report.chunks, "sentence_vectors": int(stored[0]) if stored else 0, "documents": sum(f.chunks > 0 for f in report.files), "failed": report.failed,
        "seconds": round(seconds, 2), "chunks_per_s": round(rate, 2),
        "encoder_passages_per_s": round(raw_rate, 2), "ratio": round(rate / raw_rate, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "postgres_rss_mb": round(pg_rss, 1),
        "bytes_per_chunk": round(int(size[0]) / max(report.chunks, 1)) if size else None,
        "raw_sample": len(sample),
    }


class _Clock:
    """Progress that notes when each source is done and how many chunks it wrote."""

    def __init__(self) -> None:
        self.done: list[tuple[float, int]] = []

    def sources_found(self, count: int) -> None:
        """Nothing to note."""

    def source_done(self, reports: Sequence[FileReport]) -> None:
        """Note the time and the chunks written."""
        written = sum(r.chunks for r in reports if r.status in (IngestStatus.ADDED, IngestStatus.UPDATED))
        self.done.append((time.perf_counter(), written))

    def steady_rate(self) -> float | None:
        """Chunks/s from the first source done to the last (start-up, e.g. the actors' model loading, left out)."""
        if len(self.done) < 2 or self.done[-1][0] <= self.done[0][0]:
            return None
        return sum(n for _, n in self.done[1:]) / (self.done[-1][0] - self.done[0][0])


def _timed_ingest(config: Config, data: Path, encoder: Encoder | None, executor: RayExecutor | None
                  ) -> dict[str, Any]:
    clock = _Clock()
    with Rosetta.open(config, encoder=encoder) as rosetta:
        started = time.perf_counter()
        report = rosetta.ingest([data], executor=executor, progress=clock)
        seconds = time.perf_counter() - started
    steady = clock.steady_rate()
    return {"actors": executor.actors if executor else 0, "chunks": report.chunks, "failed": report.failed,
            "seconds": round(seconds, 2), "chunks_per_s": round(report.chunks / seconds, 2),
            "first_source_s": round(clock.done[0][0] - started, 2) if clock.done else None,
            "steady_chunks_per_s": round(steady, 2) if steady is not None else None}


def measure_ray(data: Path, actors: int, sentences: bool = True) -> dict[str, Any]:
    """Chunks/s in process and through Ray with 1..``actors`` actors, with e5-small and the hashing encoder."""
    import ray

    cpus = actors + 1  # logical: one per actor, and one for the loading-and-chunking tasks
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    runs: dict[str, list[dict[str, Any]]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="rosetta-bench-ray-") as tmp:
            for label, encoder, kind in (("e5-small", None, EncoderKind.E5_SMALL),
                                         ("hashing", HashingEncoder(), EncoderKind.E5_SMALL)):
                runs[label] = []
                for n in range(actors + 1):
                    config = Config(db=DbConfig(data_dir=Path(tmp), schema=f"bench_{label[:2]}_{n}"),
                                    models=ModelConfig(encoder=kind), ingest=IngestConfig(sentence_vectors=sentences),
                                    collection="bench")
                    executor = RayExecutor(actors=n) if n else None
                    runs[label].append(_timed_ingest(config, data, encoder, executor))
    finally:
        ray.shutdown()
    return {"ray_cpus": cpus, "machine_cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
            "runs": runs}


def _ray_table(numbers: dict[str, Any]) -> str:
    lines = ["encoder    actors   chunks  seconds  chunks/s  first source s  steady chunks/s",
             "---------  -------  ------  -------  --------  --------------  ---------------"]
    for label, runs in numbers["runs"].items():
        lines += [f"{label:<9}  {('in-proc' if r['actors'] == 0 else str(r['actors'])):>7}  {r['chunks']:>6}  "
                  f"{r['seconds']:>7}  {r['chunks_per_s']:>8}  {r['first_source_s']!s:>14}  "
                  f"{r['steady_chunks_per_s']!s:>15}" for r in runs]
    return "\n".join(lines)


def run(data: Path, as_json: bool = False, raw_sample: int = 256, sentences: bool = True, ray: int = 0,
        out: Path | None = None, latent: bool = True) -> dict[str, Any]:
    """Measure and print (a table, or JSON with ``as_json``); with ``ray``, the Ray runs too (publish_bench)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    numbers = measure(data, raw_sample, sentences=sentences, latent=latent)
    if ray:
        numbers["ray"] = measure_ray(data, ray, sentences)
        publish_bench(_ray_table(numbers["ray"]), numbers, out, "bench_ingest")
        return numbers
    if as_json:
        print(json.dumps(numbers))
    else:
        width = max(map(len, numbers))
        for key, value in numbers.items():
            print(f"{key:<{width}}  {value}")
    return numbers


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/manuals"))
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    parser.add_argument("--raw-sample", type=int, default=256, help="chunks re-encoded by the raw encoder")
    parser.add_argument("--no-sentences", action="store_true", help="store no sentence vectors")
    parser.add_argument("--no-latent", action="store_true", help="store no latent terms")
    parser.add_argument("--ray", type=int, default=0, metavar="N",
                        help="also ingest through a local Ray with 1..N actors (needs rosetta-rag[ray])")
    parser.add_argument("--out", type=Path, help="with --ray, also write OUT/bench_ingest.json")
    args = parser.parse_args()
    run(args.data, as_json=args.json, raw_sample=args.raw_sample, sentences=not args.no_sentences, ray=args.ray,
        out=args.out, latent=not args.no_latent)


if __name__ == "__main__":
    main()
