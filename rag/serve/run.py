"""Starts the servers on one process: the facade opened once, uvicorn serving the app (``rosetta serve``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import uvicorn

from rag.config import Config, api_keys
from rag.rosetta import Rosetta
from rag.serve.app import create_app
from rag.serve.guard import check_exposure
from rag.serve.shared import Shared


def uploads_dir(config: Config) -> Path:
    """Where uploaded files are written: ``<data dir>/uploads`` (one folder per collection below it)."""
    return config.db.data_dir / "uploads"


def serve_http(config: Config, host: str, port: int, notice: Callable[[str], None]) -> None:
    """Serve the HTTP API until interrupted; ConfigError (before anything starts) when ``host`` is not
    loopback and no API keys are set."""
    keys = api_keys(config.serve)
    check_exposure(host, keys, config.serve.api_keys_env)
    with Rosetta.open(config, notice=notice) as rosetta:
        shared = Shared(rosetta)
        shared.warm()
        app = create_app(shared, config.serve, keys, uploads_dir(config))
        notice(f"serving collection {config.collection!r} on http://{host}:{port} "
               f"({'API keys required' if keys else 'no API keys: loopback only'}); OpenAPI at /openapi.json")
        # uvicorn's access log shows method, path and status, never headers, so keys stay out of it.
        uvicorn.run(app, host=host, port=port, log_level="info",
                    timeout_graceful_shutdown=5)
