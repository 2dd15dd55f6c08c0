"""Query benchmark: HNSW storage variants at scale, then Rosetta's search latency end to end.

    python -m evals.bench_query [--sizes 10000,100000] [--dim 384] [--queries 200] [--ef-search 40]
                                [--bq-candidates 40] [--json] [--out DIR] [--data demo/manuals]
                                [--neutral-sizes 10000,100000]

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

Part 1 lives in bench_query_ann.py, part 2 in bench_query_pipeline.py, part 3 in bench_query_neutral.py;
this module runs them and reports.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evals.bench_query_ann import ANN_SCHEMA, AnnRun, K, measure_size
from evals.bench_query_neutral import NeutralRun
from evals.bench_query_neutral import measure as measure_neutral
from evals.bench_query_pipeline import measure_pipeline
from rag.config import Config, DbConfig, EncoderKind, ModelConfig
from rag.store.database import start_embedded


def as_json(runs: Sequence[AnnRun], pipeline: dict[str, Any] | None,
            neutral: Sequence[NeutralRun] = ()) -> dict[str, Any]:
    """The benchmark's JSON object: ``{"runs": [...], "pipeline": {...}, "neutral": [...]}``."""
    return {"runs": [run.as_json() for run in runs], "pipeline": pipeline,
            "neutral": [run.as_json() for run in neutral]}


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Rows of equal keys as an aligned text table."""
    keys = list(rows[0])
    lines = [keys, *(["-" if row[key] is None else str(row[key]) for key in keys] for row in rows)]
    widths = [max(len(line[column]) for line in lines) for column in range(len(keys))]
    return "\n".join("  ".join(cell.rjust(width) for cell, width in zip(line, widths)) for line in lines)


def print_report(result: dict[str, Any], heading: str) -> None:
    """Print part 1's table under ``heading``, then part 2's."""
    pipeline = result["pipeline"]
    print(heading)
    print(format_table(result["runs"]))
    print(f"\nPipeline ({pipeline['chunks']} chunks, {pipeline['questions']} questions, encoder "
          f"{pipeline['encoder']}; raw query encoding p50 {pipeline['encode_p50_ms']} ms, "
          f"p95 {pipeline['encode_p95_ms']} ms)")
    print(format_table(pipeline["runs"]))
    if result["neutral"]:
        print("\nLanguage-neutral dense leg (5 languages, k 10; recall@10 against exact neutral scoring)")
        print(format_table(result["neutral"]))


def run(sizes: Sequence[int], dim: int, n_queries: int, ef_search: int, candidates: int, data: Path,
        as_json_output: bool = False, out: Path | None = None, neutral_sizes: Sequence[int] = ()
        ) -> dict[str, Any]:
    """The parts in a fresh embedded Postgres; print tables (or JSON) and optionally write OUT/bench_query.json."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with tempfile.TemporaryDirectory(prefix="rosetta-bench-query-") as tmp:
        url, server = start_embedded(Path(tmp))
        try:
            runs = [r for n in sizes for r in measure_size(url, ANN_SCHEMA, n, dim, n_queries, ef_search, candidates)]
            config = Config(db=DbConfig(data_dir=Path(tmp)), models=ModelConfig(encoder=EncoderKind.E5_SMALL),
                            collection="bench")
            pipeline = measure_pipeline(config, data)
            neutral = [r for n in neutral_sizes for r in measure_neutral(url, n, n_queries, dim, ef_search)]
        finally:
            server.cleanup()
    result = as_json(runs, pipeline, neutral)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench_query.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    if as_json_output:
        print(json.dumps(result))
    else:
        print_report(result, f"ANN storage (dim {dim}, {n_queries} queries, ef_search {ef_search}, k {K}, "
                             f"binary re-ranks {candidates} candidates)")
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
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--out", type=Path, help="also write OUT/bench_query.json")
    parser.add_argument("--neutral-sizes", default="10000,100000",
                        help="chunk counts for the language-neutral part ('' skips it)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    neutral = [int(size) for size in args.neutral_sizes.split(",") if size.strip()]
    run(sizes, args.dim, args.queries, args.ef_search, args.bq_candidates, args.data, args.json, args.out, neutral)


if __name__ == "__main__":
    main()
