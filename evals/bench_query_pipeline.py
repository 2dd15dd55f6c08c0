"""Part 2 of the query benchmark: ``Rosetta.search`` latency end to end (encode + SQL + RRF) per mode, with
the query encodings uncached (cold) and cached (warm), and with RRF inside Postgres (``fuse_in_sql``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from psycopg import sql

from evals.bench_query_ann import K, percentiles
from rag.config import Config
from rag.encoders.cache import CachedEncoder, text_hash
from rag.rosetta import Rosetta
from rag.types import Encoder, SearchMode

_FORGET_QUERIES = "DELETE FROM {schema}.encoding_cache WHERE text_hash = ANY(%(hashes)s)"

# Questions about the demo corpus's home battery in five languages (filter, error codes, warranty,
# firmware, installation), so every leg sees scripts with and without spaces.
QUESTIONS: tuple[str, ...] = (
    "How often should the air filter be cleaned?", "What does error code E22 mean?",
    "How long is the warranty on the battery?", "How do I update the firmware?",
    "How far from the wall must the battery be installed?", "What is the part number of the replacement filter?",
    "Wie oft muss der Luftfilter gewechselt werden?", "Was bedeutet der Fehlercode E17?",
    "Welche Schäden deckt die Garantie nicht ab?", "Wo finde ich neue Firmware in der App?",
    "Wie viel wiegt der Speicher bei der Installation?", "Was tun bei einem Isolationsfehler?",
    "エアフィルターはどのくらいの頻度で掃除しますか？", "エラーコード E17 は何を意味しますか？",
    "保証期間は何年ですか？", "最新のファームウェアで何が変わりましたか？",
    "設置場所の条件を教えてください。", "省電力モードを有効にする方法は？",
    "¿Cada cuánto hay que limpiar el filtro de aire?", "¿Qué significa el código de error E31?",
    "¿Qué cubre la garantía de la batería?", "¿Cómo actualizo el firmware del equipo?",
    "¿Dónde debo instalar la batería?", "¿Cómo presento una reclamación de garantía?",
    "空气过滤器多久清洁一次？", "错误代码E22是什么意思？", "电池的保修期是多久？",
    "如何升级固件？", "设备应该安装在什么位置？", "首次启动需要哪些步骤？",
)


@dataclass(frozen=True, slots=True)
class PipelineRun:
    """Search latency of one mode in one cache state."""

    mode: str
    cache: str
    p50_ms: float
    p95_ms: float


def _forget(rosetta: Rosetta, questions: Sequence[str]) -> None:
    hashes = [text_hash("query", question) for question in questions]
    with rosetta.database.pool.connection() as conn:
        conn.execute(sql.SQL(_FORGET_QUERIES).format(schema=sql.Identifier(rosetta.store.schema)), {"hashes": hashes})


def _time_searches(rosetta: Rosetta, questions: Sequence[str], mode: SearchMode) -> list[float]:
    times = []
    for question in questions:
        started = time.perf_counter()
        rosetta.search(question, k=K, mode=mode)
        times.append((time.perf_counter() - started) * 1000)
    return times


def _encode_times(encoder: Encoder, questions: Sequence[str]) -> list[float]:
    inner = encoder.inner if isinstance(encoder, CachedEncoder) else encoder
    times = []
    for question in questions:
        started = time.perf_counter()
        inner.encode_queries([question])
        times.append((time.perf_counter() - started) * 1000)
    return times


def measure_pipeline(config: Config, data: Path, questions: Sequence[str] = QUESTIONS,
                     encoder: Encoder | None = None) -> dict[str, Any]:
    """Part 2: ingest ``data``, then per mode a cold pass (query encodings uncached) and a warm pass."""
    with Rosetta.open(config, encoder=encoder) as rosetta:
        report = rosetta.ingest([data])
        for mode in SearchMode:  # loads the detector and the retriever, warms the model and the pool
            rosetta.search("warm-up question", k=K, mode=mode)
        runs = []
        for mode in SearchMode:
            _forget(rosetta, questions)
            runs.append(PipelineRun(mode.value, "cold", *percentiles(_time_searches(rosetta, questions, mode))))
            runs.append(PipelineRun(mode.value, "warm", *percentiles(_time_searches(rosetta, questions, mode))))
        # The plain (not language-neutral) hybrid search, with RRF in Python and in one SQL statement
        # (RetrievalConfig.fuse_in_sql, which only runs the plain fusion).
        retriever = rosetta.retriever()
        neutral = retriever.settings
        retriever.settings = replace(neutral, language_neutral=False)
        runs.append(PipelineRun("hybrid-plain", "warm", *percentiles(_time_searches(rosetta, questions,
                                                                                    SearchMode.HYBRID))))
        retriever.settings = replace(neutral, language_neutral=False, fuse_in_sql=True)
        hybrid_sql = percentiles(_time_searches(rosetta, questions, SearchMode.HYBRID))
        runs.append(PipelineRun("hybrid-plain-in-sql", "warm", *hybrid_sql))
        retriever.settings = neutral
        query_encoder = rosetta.encoder()
        encode_p50, encode_p95 = percentiles(_encode_times(query_encoder, questions))
    return {"chunks": report.chunks, "questions": len(questions), "k": K, "encoder": query_encoder.name,
            "encode_p50_ms": encode_p50, "encode_p95_ms": encode_p95,
            "runs": [{"mode": r.mode, "cache": r.cache, "p50_ms": r.p50_ms, "p95_ms": r.p95_ms} for r in runs]}
