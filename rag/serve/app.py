"""The HTTP API: FastAPI routes over the shared facade. Blocking work (encoding, SQL, generation) runs in
worker threads, never on the event loop; errors are JSON ``{"error": {"message", "type", "code"}}``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import anyio
from anyio.to_thread import run_sync
from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from rag.answer.types import Answer
from rag.cli.render import search_json, status_json
from rag.config import ServeConfig, parse_mode
from rag.errors import ConfigError, ConnectorError, EncoderError, GenerationError, RagError, SchemaMismatch
from rag.serve.chat import chunk as sse_chunk
from rag.serve.chat import completion, completion_id, conversation, error_chunk, final_chunks
from rag.serve.guard import BodyLimit, authorized
from rag.serve.jobs import Jobs, UploadRejected, save_upload
from rag.serve.schemas import (
    ChatCompletion,
    ChatRequest,
    ErrorBody,
    Health,
    IngestRequest,
    JobOut,
    ModelCard,
    ModelList,
    SearchRequest,
    SearchResponse,
    StatusOut,
)
from rag.serve.shared import DEFAULT_MODEL, Shared, UnknownCollection

UPLOAD_PATH = "/v1/ingest/files"
ERRORS: dict[int | str, dict[str, object]] = {code: {"model": ErrorBody} for code in (400, 401, 404, 413, 422)}
_END = object()


def _error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status)


def status_of(exc: Exception) -> int:
    """The HTTP status for a library error: the client's fault 4xx, the server's dependencies 5xx."""
    if isinstance(exc, UnknownCollection):
        return 404
    if isinstance(exc, UploadRejected):
        return exc.status
    if isinstance(exc, SchemaMismatch):
        return 409
    if isinstance(exc, GenerationError):
        return 502
    if isinstance(exc, EncoderError) or (isinstance(exc, RagError) and not isinstance(exc, (ConfigError,
                                                                                                ConnectorError))):
        return 503
    return 400


def _validation_message(exc: RequestValidationError) -> str:
    problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()[:5]]
    return "invalid request: " + "; ".join(problems) + " (see /openapi.json)"


def _install_errors(app: FastAPI) -> None:
    async def library(request: Request, exc: Exception) -> JSONResponse:
        status = status_of(exc)
        return _error(status, str(exc), "server_error" if status >= 500 else "invalid_request_error")

    async def validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return _error(422, _validation_message(exc))

    async def http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, str(exc.detail))

    for kind in (RagError, ValueError):
        app.add_exception_handler(kind, library)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(HTTPException, http)


def _auth(keys: frozenset[str]) -> object:
    async def check(request: Request) -> None:
        if not authorized(request.headers.get("authorization"), keys):
            raise HTTPException(401, "missing or wrong API key: send 'Authorization: Bearer <key>' with one of "
                                     "the keys in the server's ROSETTA_API_KEYS")
    return Depends(check)


async def _stream(steps: Iterator[str | Answer], model: str, collection: str) -> AsyncIterator[str]:
    """SSE frames of a streamed answer. A client that goes away cancels this task; the answer loop is then
    closed, which closes the LLM's stream, so the generation stops."""
    cid, streamed = completion_id(), []
    try:
        yield sse_chunk(cid, model, {"role": "assistant", "content": ""})
        while (piece := await run_sync(next, steps, _END)) is not _END:
            if isinstance(piece, str):
                streamed.append(piece)
                yield sse_chunk(cid, model, {"content": piece})
            elif isinstance(piece, Answer):
                for frame in final_chunks(cid, model, piece, "".join(streamed), collection):
                    yield frame
    except (RagError, ValueError) as exc:
        yield error_chunk(str(exc), "server_error" if status_of(exc) >= 500 else "invalid_request_error",
                          status_of(exc))
    finally:
        with anyio.CancelScope(shield=True):
            await run_sync(steps.close)  # type: ignore[attr-defined]


def _health(app: FastAPI, shared: Shared) -> None:
    @app.get("/healthz", response_model=Health, tags=["server"], responses={503: {"model": ErrorBody}})
    async def healthz() -> Health:
        """Checks the database (no key needed; it reveals only the versions): 200 when it answers."""
        info = await run_sync(shared.rosetta.database.info)
        return Health(status="ok", server_version=info.server_version, pgvector_version=info.pgvector_version)


def _openai_routes(app: APIRouter, shared: Shared, settings: ServeConfig) -> None:
    @app.get("/v1/models", response_model=ModelList, tags=["openai"], responses=ERRORS)
    async def models() -> ModelList:
        """The collections as OpenAI models; ``rosetta`` is the server's default collection."""
        names = [c.name for c in await run_sync(shared.rosetta.store.collections)]
        now = int(time.time())
        return ModelList(data=[ModelCard(id=name, created=now) for name in [DEFAULT_MODEL, *names]])

    @app.post("/v1/chat/completions", response_model=ChatCompletion, tags=["openai"], responses=ERRORS)
    async def chat(body: ChatRequest) -> ChatCompletion | StreamingResponse:
        """An answer with ``[n]`` citations; ``rosetta`` holds the citations (the final chunk's, streaming)."""
        question, history = conversation(body.messages, settings.max_question_chars)
        where = body.filter.to_filter() if body.filter else None
        if body.stream:
            name = await run_sync(shared.ready, body.model, True)
            steps = await run_sync(lambda: shared.stream(question, name, history, body.language, body.k, where))
            return StreamingResponse(_stream(steps, body.model, name), media_type="text/event-stream")
        name = shared.resolve(body.model)
        answer = await run_sync(lambda: shared.ask(question, name, history, body.language, body.k, where))
        return completion(answer, body.model, name)


def _rosetta_routes(app: APIRouter, shared: Shared, settings: ServeConfig, jobs: Jobs, uploads: Path) -> None:
    @app.post("/v1/search", response_model=SearchResponse, tags=["rosetta"], responses=ERRORS)
    async def search(body: SearchRequest) -> SearchResponse:
        """Hybrid search: the hits with each leg's rank, as ``rosetta search --json`` prints them."""
        if len(body.query) > settings.max_question_chars:
            raise ValueError(f"the query has {len(body.query)} characters; the limit is "
                             f"{settings.max_question_chars} (serve.max_question_chars): shorten it")
        where = body.filter.to_filter() if body.filter else None
        mode = parse_mode(body.mode) if body.mode else None
        name, hits = await run_sync(lambda: shared.search(body.query, body.collection, body.k, where, mode,
                                                          body.rerank))
        return SearchResponse.model_validate(search_json(body.query, name, hits))

    @app.get("/v1/collections", response_model=StatusOut, tags=["rosetta"], responses=ERRORS)
    async def collections() -> StatusOut:
        """Every collection's counts per language, and the database (``rosetta status --json``)."""
        return StatusOut.model_validate(status_json(await run_sync(shared.status)))

    @app.post("/v1/ingest", response_model=JobOut, status_code=202, tags=["rosetta"], responses=ERRORS)
    async def ingest_urls(body: IngestRequest) -> JobOut:
        """Ingest http(s) URLs (pages, sitemap.xml) in the background; poll ``GET /v1/ingest/{id}``."""
        bad = [url for url in body.urls if not url.lower().startswith(("http://", "https://"))]
        if bad:
            raise ValueError(f"only http(s) URLs can be ingested over the API, not {bad[0]!r}; upload files "
                             f"with POST {UPLOAD_PATH}")
        return jobs.submit(body.urls, shared.resolve(body.collection), body.prune).view()

    @app.post(UPLOAD_PATH, response_model=JobOut, status_code=202, tags=["rosetta"], responses=ERRORS)
    async def ingest_files(files: Annotated[list[UploadFile], File(description="Documents to ingest")],
                           collection: Annotated[str | None, Form()] = None) -> JobOut:
        """Upload documents (txt, md, html, pdf, docx) and ingest them in the background."""
        name = shared.resolve(collection)
        saved = [await run_sync(save_upload, f.file, f.filename or "upload", uploads / name,
                                settings.upload_types, settings.max_upload_bytes) for f in files]
        return jobs.submit([str(path) for path in saved], name, False, [f.filename or "" for f in files]).view()

    @app.get("/v1/ingest/{job_id}", response_model=JobOut, tags=["rosetta"], responses=ERRORS)
    async def ingest_job(job_id: str) -> JobOut:
        """An ingest job's state, progress and per-document report."""
        job = jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"no ingest job {job_id!r} on this server (jobs live until it restarts)")
        return job.view()


def create_app(shared: Shared, settings: ServeConfig, keys: frozenset[str], uploads: Path) -> BodyLimit:
    """The ASGI application: the routes behind the body limit, keys required when ``keys`` is not empty."""
    jobs = Jobs(lambda sources, name, prune, progress: shared.ingest(sources, name, prune, progress))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await run_sync(jobs.close)

    app = FastAPI(title="Rosetta", version="1", docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="Cross-lingual RAG: OpenAI-compatible chat completions with checked citations, "
                              "hybrid search, collections and ingest jobs. Send 'Authorization: Bearer <key>' "
                              "when the server has API keys.")
    _install_errors(app)
    _health(app, shared)
    v1 = APIRouter(dependencies=[_auth(keys)])  # type: ignore[list-item]
    _openai_routes(v1, shared, settings)
    _rosetta_routes(v1, shared, settings, jobs, uploads)
    app.include_router(v1)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["authorization", "content-type"])
    return BodyLimit(app, settings.max_body_bytes, settings.max_upload_bytes, UPLOAD_PATH)

