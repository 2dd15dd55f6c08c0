"""What each dense storage's index key keeps of real embeddings: sign bits, centred sign bits and halfvec.

    python -m evals.bench_storage_real --data-dir DIR [--collections a,b] [--queries 400] [--out DIR]

The storage sweep of ``evals/bench_query.py`` runs on synthetic vectors, which cannot show one property of
real encoders: their embeddings share a large common direction (e5-small's chunks have a mean pairwise cosine
of ~0.77), so for many dimensions the sign is the same in every vector and a sign bit carries nothing. This
reads the dense vectors a Rosetta database already holds (e.g. the data directory of ``rosetta eval``),
holds ``--queries`` of them out as queries, and measures, with exact arithmetic in numpy and no index, how
many of each query's exact top 10 (cosine) are still found when the candidates come from:

- ``bits``: the ``factor x 10`` nearest by Hamming distance between sign bits (``binary_quantize``, what the
  ``bit+rescore`` index holds), rescored by the exact cosine;
- ``centred bits``: the same after subtracting the pool's mean vector (not shipped: what centring would buy);
- ``halfvec``: the top 10 by cosine between vectors rounded to 16-bit floats.

The pool is a few thousand chunks, so ``factor x 10`` candidates are a larger share of it than at 100k
chunks: the bit rows are an upper bound of what the index finds at scale.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from evals.report import publish_bench

FACTORS = (2, 4, 8, 16)
K = 10


def recall_tables(vectors: np.ndarray, n_queries: int, seed: int = 0,
                  factors: tuple[int, ...] = FACTORS) -> dict[str, Any]:
    """Recall@10 of each index key against exact cosine, ``n_queries`` rows of ``vectors`` held out as queries."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    order = np.random.default_rng(seed).permutation(len(unit))
    queries, pool = unit[order[:n_queries]], unit[order[n_queries:]]
    if len(pool) < K * max(factors):
        raise ValueError(f"{len(unit)} vectors leave {len(pool)} in the pool; need at least {K * max(factors)} "
                         f"besides the {n_queries} queries")
    exact = np.argsort(-(queries @ pool.T), axis=1)[:, :K]
    mean = pool.mean(axis=0)

    def found(top: np.ndarray) -> float:
        return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(top.tolist(), exact.tolist())]))

    def by_bits(offset: np.ndarray, factor: int) -> float:
        q_bits, p_bits = (queries - offset) > 0, (pool - offset) > 0
        hamming = (q_bits[:, None, :] != p_bits[None, :, :]).sum(axis=2)
        candidates = np.argsort(hamming, axis=1, kind="stable")[:, :factor * K]
        rescored = np.take_along_axis(candidates, np.argsort(
            -np.einsum("qd,qcd->qc", queries, pool[candidates]), axis=1)[:, :K], axis=1)
        return found(rescored)

    half_q, half_p = queries.astype(np.float16).astype(np.float32), pool.astype(np.float16).astype(np.float32)
    return {
        "vectors": len(unit), "queries": n_queries, "pool": len(pool), "dim": int(unit.shape[1]),
        "mean_pairwise_cosine": float((pool[:500] @ pool[:500].T).mean()),
        "halfvec": found(np.argsort(-(half_q @ half_p.T), axis=1)[:, :K]),
        "bits": {factor: by_bits(np.zeros_like(mean), factor) for factor in factors},
        "centred_bits": {factor: by_bits(mean, factor) for factor in factors},
    }


def read_vectors(data_dir: Path | None, url: str | None, collections: list[str] | None) -> np.ndarray:
    """Every distinct dense vector of ``collections`` (None: all) in a Rosetta database."""
    from rag.store.database import Database

    database = Database.open(url, data_dir or Path("."))
    try:
        with database.pool.connection() as conn:
            rows = conn.execute(
                "SELECT c.dense FROM rosetta.chunks c JOIN rosetta.collections k ON k.id = c.collection_id "
                "WHERE %(names)s::text[] IS NULL OR k.name = ANY(%(names)s)", {"names": collections}).fetchall()
    finally:
        database.close()
        if database.server is not None:
            database.server.cleanup()
    if not rows:
        raise SystemExit("no chunks found: ingest or run `rosetta eval retrieval` into that database first")
    return np.unique(np.array([np.asarray(row[0].to_list(), dtype=np.float32) for row in rows]), axis=0)


def _table(report: dict[str, Any]) -> str:
    factors = list(report["bits"])
    lines = [(f"{report['vectors']} vectors ({report['dim']}-d, mean pairwise cosine "
              f"{report['mean_pairwise_cosine']:.2f}), {report['queries']} held out as queries; recall@10"),
             "| index key | " + " | ".join(f"{f} x k candidates" for f in factors) + " |",
             "|---|" + "---|" * len(factors)]
    for key in ("bits", "centred_bits"):
        lines.append(f"| {key.replace('_', ' ')} | " + " | ".join(f"{report[key][f]:.3f}" for f in factors) + " |")
    lines.append(f"| halfvec (exact top 10) | {report['halfvec']:.3f} |" + " |" * (len(factors) - 1))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, help="a Rosetta data directory (embedded Postgres)")
    parser.add_argument("--database-url", help="or a Postgres URL")
    parser.add_argument("--collections", help="comma-separated collection names (default: all)")
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--out", type=Path, help="directory for bench_storage_real.json")
    args = parser.parse_args(argv)
    if (args.data_dir is None) == (args.database_url is None):
        parser.error("give one of --data-dir and --database-url")
    names = [n.strip() for n in args.collections.split(",")] if args.collections else None
    report = recall_tables(read_vectors(args.data_dir, args.database_url, names), args.queries)
    publish_bench(_table(report), report, args.out, "bench_storage_real")


if __name__ == "__main__":
    main()
