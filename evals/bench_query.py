"""Query benchmark: HNSW storage variants at scale, then Rosetta's search latency end to end.

    python -m evals.bench_query [--sizes 10000,100000] [--dim 384] [--queries 200] [--ef-search 40]
                                [--bq-candidates 40] [--out DIR] [--data demo/manuals]
                                [--neutral-sizes 10000,100000] [--storage-sizes 10000,100000]
                                [--no-pipeline]

Part 1 (ANN storage) loads N synthetic embeddings (a seeded mixture of clusters around one shared
direction, see ``synthetic``) into one ``vector(dim)`` column of a fresh embedded Postgres and builds,
in turn, three HNSW indexes (m=16, ef_construction=64, cosine): ``vector``, ``halfvec`` (expression
index over ``embedding::halfvec(dim)``) and binary quantization (expression index over
``binary_quantize(embedding)::bit(dim)``, Hamming distance; the best ``--bq-candidates`` (4k = 40) are
re-ranked exactly by ``embedding <=> q``, with ``hnsw.ef_search`` raised to that pool if below it).
Each reports recall@10 against an exact sequential scan, p50/p95 client wall time per query (one
connection, after warm-up queries), index build seconds and bytes per chunk.

``bytes_per_chunk`` = (sum of ``pg_column_size(embedding)`` over the table + ``pg_relation_size`` of that
variant's index) / N. All three variants need the full-precision column: Rosetta stores an untyped
``vector`` column and indexes casts of it, and the binary variant re-ranks with it. So the differences
are in the index; ``index_bytes_per_chunk`` is the index alone and ``value_bytes`` the average
``pg_column_size`` of the value that index stores (vector, halfvec or bit). Heap tuple headers, the id
column, TOAST and free space are not counted.

Part 2 (pipeline) ingests DATA with e5-small and times ``Rosetta.search(q, k=10, mode=...)`` (encode +
SQL + RRF, no reranker, no LLM) over multilingual questions: a cold pass, with the questions' cached
query encodings deleted first so each is encoded, and a warm pass served from that cache.

Part 3 (language-neutral search, bench_query_neutral.py) loads N synthetic embeddings shifted by
per-language offsets (five languages, shares 40/25/20/10/5 %) into Rosetta's own tables and scores
``PgStore.neutral_dense_search`` (per-language legs, k=10, ``--ef-search``) against the same scoring
computed exactly in numpy over all chunks: recall@10 and latency, through HNSW only and with small
languages scanned exactly, beside the plain HNSW leg.

Part 4 (dense storage options, bench_query_storage.py) loads N synthetic embeddings into Rosetta's own
tables once and, for each storage option (``vector``, ``halfvec``, ``bit+rescore``), rebuilds the
collection's dense indexes (timed) and runs ``PgStore.dense_search`` over a sweep of ef_search
(vector, halfvec) or rescoring factors (bit+rescore): recall@10 against exact, p50/p95, bytes per chunk;
``tuned`` picks per option the fastest setting reaching recall@10 0.97.

Part 1 lives in bench_query_ann.py, part 2 in bench_query_pipeline.py, part 3 in bench_query_neutral.py,
part 4 in bench_query_storage.py; this module runs them and reports (``--sizes ''``, ``--neutral-sizes ''``,
``--storage-sizes ''`` and ``--no-pipeline`` skip parts).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evals.bench_query_ann import ANN_SCHEMA, AnnRun, K, measure_size
from evals.bench_query_neutral import NeutralRun
from evals.bench_query_neutral import measure as measure_neutral
from evals.bench_query_pipeline import measure_pipeline
from evals.bench_query_storage import StorageRun, tuned
from evals.bench_query_storage import measure as measure_storage
from evals.report import publish_bench
from rag.config import Config, DbConfig, EncoderKind, ModelConfig
from rag.store.database import start_embedded


def as_json(runs: Sequence[AnnRun], pipeline: dict[str, Any] | None,
            neutral: Sequence[NeutralRun] = (), storage: Sequence[StorageRun] = ()) -> dict[str, Any]:
    """The benchmark's JSON object: ``{"runs": [...], "pipeline": {...}, "neutral": [...], "storage": [...],
    "tuned": [...]}``."""
    return {"runs": [run.as_json() for run in runs], "pipeline": pipeline,
            "neutral": [run.as_json() for run in neutral], "storage": [run.as_json() for run in storage],
            "tuned": tuned(list(storage))}


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Rows of equal keys as an aligned text table."""
    keys = list(rows[0])
    lines = [keys, *(["-" if row[key] is None else str(row[key]) for key in keys] for row in rows)]
    widths = [max(len(line[column]) for line in lines) for column in range(len(keys))]
    return "\n".join("  ".join(cell.rjust(width) for cell, width in zip(line, widths)) for line in lines)


def report_table(result: dict[str, Any], heading: str) -> str:
    """The parts' tables as text, part 1's under ``heading``."""
    lines: list[str] = []
    if result["runs"]:
        lines += [heading, format_table(result["runs"])]
    pipeline = result["pipeline"]
    if pipeline is not None:
        lines += [(f"\nPipeline ({pipeline['chunks']} chunks, {pipeline['questions']} questions, encoder "
                   f"{pipeline['encoder']}; raw query encoding p50 {pipeline['encode_p50_ms']} ms, "
                   f"p95 {pipeline['encode_p95_ms']} ms)"), format_table(pipeline["runs"])]
    if result["neutral"]:
        lines += ["\nLanguage-neutral dense leg (5 languages, k 10; recall@10 against exact neutral scoring)",
                  format_table(result["neutral"])]
    if result.get("storage"):
        lines += ["\nDense storage options through PgStore.dense_search (k 10; recall@10 against exact)",
                  format_table(result["storage"]),
                  "\nFastest setting per option reaching recall@10 0.97",
                  format_table([{"chunks": t["chunks"], "dim": t["dim"], "storage": t["storage"],
                                 **{key: (t["run"] or {}).get(key) for key in
                                    ("ef_search", "rescore_factor", "recall@10", "p50_ms", "p95_ms",
                                     "bytes_per_chunk", "build_s")}} for t in result["tuned"]])]
    return "\n".join(lines)


def run(sizes: Sequence[int], dim: int, n_queries: int, ef_search: int, candidates: int, data: Path | None,
        out: Path | None = None, neutral_sizes: Sequence[int] = (), storage_sizes: Sequence[int] = ()
        ) -> dict[str, Any]:
    """The parts in a fresh embedded Postgres (the pipeline unless ``data`` is None); print the tables and the
    JSON, and with ``out`` write OUT/bench_query.json."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with tempfile.TemporaryDirectory(prefix="rosetta-bench-query-") as tmp:
        url, server = start_embedded(Path(tmp))
        try:
            runs = [r for n in sizes for r in measure_size(url, ANN_SCHEMA, n, dim, n_queries, ef_search, candidates)]
            config = Config(db=DbConfig(data_dir=Path(tmp)), models=ModelConfig(encoder=EncoderKind.E5_SMALL),
                            collection="bench")
            pipeline = measure_pipeline(config, data) if data is not None else None
            neutral = [r for n in neutral_sizes for r in measure_neutral(url, n, n_queries, dim, ef_search)]
            storage = [r for n in storage_sizes for r in measure_storage(url, n, n_queries, dim)]
        finally:
            server.cleanup()
    result = as_json(runs, pipeline, neutral, storage)
    heading = (f"ANN storage (dim {dim}, {n_queries} queries, ef_search {ef_search}, k {K}, "
               f"binary re-ranks {candidates} candidates)")
    publish_bench(report_table(result, heading), result, out, "bench_query")
    return result


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated chunk counts")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ef-search", type=int, default=40, help="hnsw.ef_search (pgvector's default: 40)")
    parser.add_argument("--bq-candidates", type=int, default=4 * K,
                        help="Hamming candidates the binary variant re-ranks exactly (default 4k = 40)")
    parser.add_argument("--data", type=Path, default=Path("demo/manuals"), help="corpus for the pipeline part")
    parser.add_argument("--out", type=Path, help="also write OUT/bench_query.json")
    parser.add_argument("--neutral-sizes", default="10000,100000",
                        help="chunk counts for the language-neutral part ('' skips it)")
    parser.add_argument("--storage-sizes", default="10000,100000",
                        help="chunk counts for the dense storage options part ('' skips it)")
    parser.add_argument("--pipeline", action=argparse.BooleanOptionalAction, default=True,
                        help="run the pipeline part (--no-pipeline skips it)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    neutral = [int(size) for size in args.neutral_sizes.split(",") if size.strip()]
    storage = [int(size) for size in args.storage_sizes.split(",") if size.strip()]
    run(sizes, args.dim, args.queries, args.ef_search, args.bq_candidates, args.data if args.pipeline else None,
        args.out, neutral, storage)


if __name__ == "__main__":
    main()
