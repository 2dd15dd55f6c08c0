"""Killing ingest midway (SIGKILL, a real subprocess) and rerunning ends with the rows of one clean run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

ROW_QUERY = """
    SELECT d.uri, d.content_hash, c.id, c.ordinal, c.text, c.language, c.start_char, c.end_char
    FROM {s}.documents d JOIN {s}.chunks c ON c.document_id = d.id ORDER BY d.uri, c.ordinal
"""
LANGUAGE_LINES = [
    "Der Luftfilter wird alle sechs Monate gereinigt und nach zwei Jahren ersetzt.",
    "ファームウェアの更新中は電源を切らないでください。",
    "La garantía cubre una pérdida de capacidad superior al treinta por ciento.",
    "设备与墙面之间至少保留二十厘米的距离。",
    "The fans produce about thirty-five decibels at full charging power.",
]


def _corpus(root: Path, files: int) -> Path:
    root.mkdir()
    for i in range(files):
        line = LANGUAGE_LINES[i % len(LANGUAGE_LINES)]
        (root / f"doc{i:03d}.txt").write_text(f"{line}\n\nNr. {i}: {line}\n")
    return root


def _ingest(pg_url: str, schema: str, corpus: Path, data_dir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ROSETTA_DATABASE_URL": pg_url, "ROSETTA_SCHEMA": schema,
           "ROSETTA_ENCODER": "e5-small", "ROSETTA_DATA_DIR": str(data_dir), "NO_COLOR": "1"}
    return subprocess.Popen([sys.executable, "-m", "rag.cli", "ingest", str(corpus), "--collection", "crash"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _documents(pg_url: str, schema: str) -> int:
    try:
        with psycopg.connect(pg_url) as conn:
            row = conn.execute(f"SELECT count(*) FROM {schema}.documents").fetchone()
            return int(row[0]) if row else 0
    except psycopg.errors.UndefinedTable:
        return 0


def _rows(pg_url: str, schema: str) -> list[tuple[object, ...]]:
    with psycopg.connect(pg_url) as conn:
        return conn.execute(ROW_QUERY.format(s=schema)).fetchall()


def _kill_after(process: subprocess.Popen[bytes], pg_url: str, schema: str, documents: int) -> int:
    deadline = time.monotonic() + 120
    while _documents(pg_url, schema) < documents and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    return _documents(pg_url, schema)


def test_sigkill_midway_then_rerun_equals_one_clean_run(pg_url: str, tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "corpus", 24)
    clean = _ingest(pg_url, "crash_clean", corpus, tmp_path / "d0")
    assert clean.wait(timeout=300) == 0, clean.stderr.read().decode() if clean.stderr else ""
    rng = random.Random(7)
    stops = sorted(rng.sample(range(1, 23), 3))
    seen = []
    for stop in stops:
        seen.append(_kill_after(_ingest(pg_url, "crash_killed", corpus, tmp_path / "d1"), pg_url, "crash_killed", stop))
    assert any(0 < n < 24 for n in seen), f"no kill landed midway: {seen}"
    final = _ingest(pg_url, "crash_killed", corpus, tmp_path / "d1")
    assert final.wait(timeout=300) == 0, final.stderr.read().decode() if final.stderr else ""
    expected = _rows(pg_url, "crash_clean")
    assert len({row[0] for row in expected}) == 24
    assert _rows(pg_url, "crash_killed") == expected


@pytest.mark.parametrize("schema", ["crash_orphans"])
def test_a_killed_run_leaves_no_document_without_its_chunks(pg_url: str, tmp_path: Path, schema: str) -> None:
    corpus = _corpus(tmp_path / "corpus", 10)
    stored = _kill_after(_ingest(pg_url, schema, corpus, tmp_path / "d"), pg_url, schema, 4)
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            f"SELECT count(*) FROM {schema}.documents d WHERE NOT EXISTS "
            f"(SELECT 1 FROM {schema}.chunks c WHERE c.document_id = d.id)").fetchone()
    assert stored >= 4
    assert row == (0,)
