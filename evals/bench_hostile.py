"""Hostile-input benchmark: ``rosetta ingest`` of the hostile corpus with the default encoder, its peak RSS.

    python -m evals.bench_hostile [--keep DIR]    (from the repository root: the corpus builder is tests/hostile.py)

Builds the corpus of tests/hostile.py (60+ broken files, among them zip bombs, a 1 GiB lying zip, a YAML
alias bomb and a 10 MB single-line file, beside good files in seven languages) into a temporary directory,
starts a fresh embedded Postgres there, runs ``rosetta ingest --json`` on it in a subprocess with the
default encoder, and prints JSON: files reported, good (stored) and failed rows, rows that differ from
the corpus's expectations, wall seconds, and the subprocess's peak RSS in MB.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from connectors.files import uri_of
from rag.store.database import start_embedded
from tests.hostile import MAX_BYTES, Corpus, Failed, Measured, build_corpus, run_measured


def _unexpected(corpus: Corpus, rows: dict[str, dict[str, Any]]) -> int:
    """How many corpus entries were not reported as expected (0 when every one was)."""
    wrong = 0
    for entry in corpus.listed:
        row = rows.get(uri_of(corpus.root / entry.path))
        if isinstance(entry, Failed):
            wrong += row is None or row["status"] != "failed" or not re.search(entry.reason, row["error"] or "")
        else:
            wrong += row is None or (row["status"], row["language"]) != ("added", entry.language)
    return wrong + len(set(rows) - {uri_of(corpus.root / entry.path) for entry in corpus.listed})


def _ingest(corpus: Corpus, url: str) -> Measured:
    argv = [sys.executable, "-m", "rag.cli", "--database-url", url, "ingest", str(corpus.root),
            "--collection", "hostile", "--max-bytes", str(MAX_BYTES), "--json"]
    run = run_measured(argv, {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")})
    if run.returncode not in (0, 1):  # 1: some sources failed, which they should
        raise SystemExit(f"rosetta ingest exited with {run.returncode}:\n{run.stderr}")
    return run


def measure(workdir: Path) -> dict[str, Any]:
    """Build the corpus under ``workdir``, ingest it, and return the numbers."""
    corpus = build_corpus(workdir / "corpus", MAX_BYTES)
    url, server = start_embedded(workdir / "data")
    try:
        run = _ingest(corpus, url)
    finally:
        server.cleanup()
    report = json.loads(run.stdout)
    rows = {row["uri"]: row for row in report["files"]}
    return {
        "files": len(rows), "good": sum(row["status"] == "added" for row in rows.values()),
        "failed": report["failed"], "unexpected": _unexpected(corpus, rows), "encoder": report["encoder"],
        "seconds": round(run.seconds, 1), "peak_rss_mb": round(run.peak_rss_mb, 1),
    }


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="build in this (new) directory and keep it")
    args = parser.parse_args()
    if args.keep is not None:
        print(json.dumps(measure(args.keep)))
        return
    with tempfile.TemporaryDirectory(prefix="rosetta-hostile-") as tmp:
        print(json.dumps(measure(Path(tmp))))


if __name__ == "__main__":
    main()
