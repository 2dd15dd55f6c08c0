"""Ingest throughput benchmark: the whole pipeline against the raw encoder on the same chunks.

    python -m evals.bench_ingest --data ../shared/data/manuals [--json] [--raw-sample 256] [--no-sentences]

Ingests DATA with e5-small into a fresh embedded Postgres (so the encoding cache starts empty) and
prints chunks, chunks/s, the raw encoder's passages/s on a sample of the same chunks, their ratio,
peak RSS of this process and of the Postgres server, and database bytes per chunk (documents, chunks and
their sentence vectors). ``--no-sentences`` turns sentence vectors off, to measure what they cost.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from rag.config import Config, DbConfig, EncoderKind, IngestConfig, ModelConfig
from rag.encoders.e5 import E5SmallEncoder
from rag.rosetta import Rosetta

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


def measure(data: Path, raw_sample: int = 256, seed: int = 0, sentences: bool = True) -> dict[str, Any]:
    """Run the benchmark and return its numbers."""
    with tempfile.TemporaryDirectory(prefix="rosetta-bench-") as tmp:
        config = Config(db=DbConfig(data_dir=Path(tmp)), models=ModelConfig(encoder=EncoderKind.E5_SMALL),
                        ingest=IngestConfig(sentence_vectors=sentences), collection="bench")
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


def run(data: Path, as_json: bool = False, raw_sample: int = 256, sentences: bool = True) -> dict[str, Any]:
    """Measure and print (a table, or JSON with ``as_json``)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    numbers = measure(data, raw_sample, sentences=sentences)
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
    args = parser.parse_args()
    run(args.data, as_json=args.json, raw_sample=args.raw_sample, sentences=not args.no_sentences)


if __name__ == "__main__":
    main()
