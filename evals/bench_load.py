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

The pieces: bench_load_corpus.py (the synthetic documents and the base plan), bench_load_base.py (the base
collection in the database), bench_load_clients.py (one N run: clients, writer, counts); this module runs
every N and reports.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import psutil

from evals.bench_load_base import COLLECTION, drop_base, ensure_base
from evals.bench_load_clients import K, Settings, Workers, load_average, run_clients
from evals.bench_load_corpus import LANGUAGES, BasePlan, Vocabulary, plan_base, vocabularies
from rag.config import Config, DbConfig, IngestConfig
from rag.encoders.hashing import HashingEncoder
from rag.rosetta import Rosetta

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
            drop_base(rosetta)
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
                                "embedded": info.embedded, "loadavg_start": load_average(load_start),
                                "loadavg_end": load_average(os.getloadavg())},
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
