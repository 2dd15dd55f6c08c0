"""Real servers for the serve tests: uvicorn on a free loopback port in a thread, over a real Rosetta."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from rag.config import (
    Config,
    DbConfig,
    EncoderKind,
    GenerationConfig,
    ModelConfig,
    RetrievalConfig,
    ServeConfig,
)
from rag.rosetta import Rosetta
from rag.serve.app import create_app
from rag.serve.guard import Asgi
from rag.serve.shared import Shared
from tests.fakes import HashEncoder

DEMO = Path(__file__).resolve().parent.parent / "demo" / "manuals"
COLLECTION = "manuals"


def serve_config(pg_url: str, data_dir: Path, schema: str | None = None, **generation: object) -> Config:
    """A Config on the session database in its own schema; the hashing encoder's tests retrieve German
    passages for English questions through shared words (plain fusion, as in test_ask.py)."""
    return Config(db=DbConfig(url=pg_url, data_dir=data_dir, schema=schema or f"t_{uuid.uuid4().hex[:12]}"),
                  models=ModelConfig(encoder=EncoderKind.E5_SMALL), collection=COLLECTION,
                  retrieval=RetrievalConfig(language_neutral=False, sparse_weight=1.0),
                  generation=GenerationConfig(**generation))  # type: ignore[arg-type]


def open_demo(config: Config) -> Rosetta:
    """Rosetta with the hashing encoder over the demo manuals (ingested once; a second open reuses them)."""
    rosetta = Rosetta.open(config, encoder=HashEncoder(dim=64))
    if rosetta.store.collection(config.collection) is None:
        rosetta.ingest([DEMO])
    return rosetta


@contextmanager
def running(app: Asgi) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="info", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@contextmanager
def api(rosetta: Rosetta, keys: frozenset[str] = frozenset(), **settings: object) -> Iterator[str]:
    """The HTTP API over ``rosetta`` with ``settings`` (ServeConfig fields), running; yields its URL."""
    serve = dataclasses.replace(ServeConfig(), **settings)  # type: ignore[arg-type]
    shared = Shared(rosetta)
    shared.warm()
    app = create_app(shared, serve, keys, rosetta.config.db.data_dir / "uploads")
    with running(app) as url:
        yield url
