"""One-shot command benchmark: wall time and peak RSS of ``rosetta search``, ``ask`` and ``status``.

    python -m evals.bench_cli [--runs 5] [--manuals ../shared/data/manuals] [--out DIR]

Each command runs as a user runs it, in a fresh process, on a temporary data directory holding the demo
collection (``demo/manuals``, ingested first), twice over: with ``ROSETTA_KEEP_ALIVE=0`` each command starts
and stops the embedded Postgres ("cold"); with the CLI's default keep-alive a keeper holds it between
commands and each command joins it ("kept", rag/store/keeper.py). Every run asks a
different question (in a different language), so no run is served from the encoding cache. The floor,
``python -c "import rag"``, is measured in the same run: on a loaded machine all rows rise together.
Prints a table and JSON (medians over ``--runs``; every run's numbers in the JSON). With ``--manuals``, also
the peak RSS and wall time of ``rosetta ingest`` of that directory into a new collection.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from evals.report import publish_bench
from tests.hostile import Measured, run_measured

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = (
    "How often should the air filter be replaced?",
    "Wie lange gilt die Garantie für den Akku?",
    "¿Cada cuánto tiempo hay que cambiar el filtro de aire?",
    "ファームウェアの更新で何が変わりましたか？",
    "保修期内电池坏了怎么办？",
    "Quelle est la durée de la garantie ?",
    "What does the warranty not cover?",
)


def _rosetta(*args: str) -> list[str]:
    return [sys.executable, "-m", "rag.cli", *args]


def _run(argv: list[str], env: dict[str, str]) -> Measured:
    run = run_measured(argv, env)
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited with {run.returncode}:\n{run.stderr[-2000:]}")
    return run


def _summary(runs: list[Measured]) -> dict[str, Any]:
    return {
        "median_s": round(statistics.median(r.seconds for r in runs), 3),
        "median_rss_mb": round(statistics.median(r.peak_rss_mb for r in runs), 1),
        "max_rss_mb": round(max(r.peak_rss_mb for r in runs), 1),
        "runs": [{"s": round(r.seconds, 3), "rss_mb": round(r.peak_rss_mb, 1)} for r in runs],
    }


def measure(workdir: Path, runs: int, manuals: Path | None) -> dict[str, Any]:
    """Ingest the demo into a data directory under ``workdir``, then time each command ``runs`` times, with
    the embedded Postgres started by every command and then kept running between them."""
    base = {**os.environ, "ROSETTA_DATA_DIR": str(workdir / "data"), "OMP_WAIT_POLICY": "PASSIVE"}
    base.pop("ROSETTA_DATABASE_URL", None)
    cold, kept = base | {"ROSETTA_KEEP_ALIVE": "0"}, base | {"ROSETTA_KEEP_ALIVE": "600"}
    _run(_rosetta("ingest", str(ROOT / "demo" / "manuals"), "--collection", "demo"), cold)
    commands: dict[str, list[list[str]]] = {
        "rosetta status": [_rosetta("status")] * runs,
        "rosetta search": [_rosetta("search", QUESTIONS[i % len(QUESTIONS)], "--collection", "demo")
                           for i in range(runs)],
        "rosetta ask": [_rosetta("ask", QUESTIONS[(i + 3) % len(QUESTIONS)], "--collection", "demo")
                        for i in range(runs)],
    }
    results: dict[str, Any] = {"python -c 'import rag'": _summary(
        [_run([sys.executable, "-c", "import rag"], base) for _ in range(runs)])}
    for name, argvs in commands.items():  # interleaving would be fairer to noise, but warm caches differ
        results[f"{name} (cold)"] = _summary([_run(argv, cold) for argv in argvs])
    try:
        _run(_rosetta("status"), kept)  # starts the keeper
        for name, argvs in commands.items():
            results[f"{name} (kept)"] = _summary([_run(argv, kept) for argv in argvs])
    finally:
        _run(_rosetta("server", "stop"), kept)
    if manuals is not None:
        results["rosetta ingest (manuals)"] = _summary(
            [_run(_rosetta("ingest", str(manuals), "--collection", "manuals"), cold)])
    return {"runs": runs, "cpus": os.cpu_count(), "commands": results}


def _table(report: dict[str, Any]) -> str:
    lines = ["| command | median wall s | median peak RSS MB | max peak RSS MB |", "|---|---|---|---|"]
    for name, row in report["commands"].items():
        lines.append(f"| `{name}` | {row['median_s']:.2f} | {row['median_rss_mb']:.0f} | {row['max_rss_mb']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs per command (median reported)")
    parser.add_argument("--manuals", type=Path, help="also measure `rosetta ingest` of this directory")
    parser.add_argument("--out", type=Path, help="directory for bench_cli.json")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    with tempfile.TemporaryDirectory(prefix="rosetta-bench-cli-") as tmp:
        report = measure(Path(tmp), args.runs, args.manuals)
    publish_bench(_table(report), report, args.out, "bench_cli")


if __name__ == "__main__":
    main()
