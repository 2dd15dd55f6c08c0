"""Request and response bodies of the HTTP API; FastAPI turns them into the OpenAPI schema.

Requests ignore unknown fields, as OpenAI clients expect. Responses are the shapes the CLI prints with
``--json`` (search, status, ingest), plus OpenAI's chat completion with the ``rosetta`` extension field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rag.types import Filter

JsonScalar = str | int | float | bool | None


class Lenient(BaseModel):
    """A request body whose unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")


class TextPart(Lenient):
    """One part of a multi-part message; only text parts carry a question."""

    type: str
    text: str | None = None


class ChatMessage(Lenient):
    """One OpenAI chat message."""

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        """The message's text (text parts joined; other parts ignored)."""
        if isinstance(self.content, list):
            return "\n".join(part.text for part in self.content if part.type == "text" and part.text)
        return self.content or ""


class SearchFilter(Lenient):
    """Conditions on the passages: languages, a source glob, document metadata equality, stored dates."""

    languages: list[str] = Field(default_factory=list, max_length=50)
    source: str | None = Field(default=None, max_length=1000)
    metadata: dict[str, JsonScalar] = Field(default_factory=dict)
    after: datetime | None = None
    before: datetime | None = None

    def to_filter(self) -> Filter:
        """Our Filter (ValueError names a bad value)."""
        languages = tuple(x.strip() for x in self.languages if x.strip())
        return Filter(languages, self.source or None, dict(self.metadata), self.after, self.before)


class ChatRequest(Lenient):
    """``POST /v1/chat/completions``: ``model`` is a collection (``rosetta``: the default one).

    ``rosetta`` extras (optional): answer ``language``, passages per search ``k``, and a ``filter``."""

    model: str = Field(min_length=1, max_length=128)
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    stream: bool = False
    language: str | None = Field(default=None, max_length=16)
    k: int | None = Field(default=None, ge=1, le=50)
    filter: SearchFilter | None = None


class SearchRequest(Lenient):
    """``POST /v1/search``: hybrid search in one collection (default: the server's)."""

    query: str = Field(min_length=1)
    collection: str | None = Field(default=None, max_length=128)
    k: int | None = Field(default=None, ge=1, le=100)
    filter: SearchFilter | None = None
    mode: Literal["dense", "sparse", "hybrid"] | None = None
    rerank: bool = True


class IngestRequest(Lenient):
    """``POST /v1/ingest`` as JSON: http(s) URLs (pages or sitemap.xml) into a collection."""

    urls: list[str] = Field(min_length=1, max_length=100)
    collection: str | None = Field(default=None, max_length=128)
    prune: bool = False


class Leg(BaseModel):
    """One retrieval leg's rank and score for a hit."""

    leg: str
    rank: int
    score: float


class SearchHit(BaseModel):
    """A hit as ``rosetta search --json`` prints it."""

    rank: int
    score: float
    chunk_id: str
    uri: str
    title: str
    page: int | None
    heading: list[str]
    language: str
    start: int
    end: int
    text: str
    legs: list[Leg]


class SearchResponse(BaseModel):
    """The hits for a query, best first."""

    query: str
    collection: str
    hits: list[SearchHit]


class CitationOut(BaseModel):
    """Marker ``[n]`` resolved to the original passage: the quote is ``document[quote_start:quote_end]``."""

    marker: int
    verified: bool
    support: float
    quote: str
    quote_start: int
    quote_end: int
    claim: str
    language: str
    uri: str
    title: str
    page: int | None
    heading: list[str]
    chunk_id: str


class ProblemOut(BaseModel):
    """Something the checks found wrong with the answer."""

    kind: str
    message: str


class AnswerExtension(BaseModel):
    """The ``rosetta`` field of a chat completion (of the final chunk when streaming).

    ``text`` is the checked answer; it differs from the streamed text only when a repair turn rewrote it."""

    collection: str
    question: str
    standalone: str
    language: str
    generator: str
    ok: bool
    repaired: bool
    text: str
    citations: list[CitationOut]
    problems: list[ProblemOut]


class AssistantMessage(BaseModel):
    """The answer as an OpenAI assistant message."""

    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    """The one choice of a completion."""

    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]


class Usage(BaseModel):
    """Tokens the language model reported (0 for the extractive generator)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    """An OpenAI chat completion plus ``rosetta`` (citations and checks)."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    rosetta: AnswerExtension


class ModelCard(BaseModel):
    """A collection as an OpenAI model."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "rosetta"


class ModelList(BaseModel):
    """``GET /v1/models``: ``rosetta`` (the default collection) and every collection."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


class FileOut(BaseModel):
    """One document's ingest outcome."""

    uri: str
    status: str
    language: str | None
    chunks: int
    error: str | None


class JobOut(BaseModel):
    """An ingest job: ``state`` is queued, running, done or failed; ``files`` grows as sources finish."""

    id: str
    state: Literal["queued", "running", "done", "failed"]
    collection: str
    sources: list[str]
    sources_total: int | None
    sources_done: int
    files: list[FileOut]
    chunks: int
    failed: int
    error: str | None
    seconds: float | None


class ErrorDetail(BaseModel):
    """What went wrong and what to do."""

    message: str
    type: str
    code: int


class ErrorBody(BaseModel):
    """Every error response (OpenAI's shape, so its clients show the message)."""

    error: ErrorDetail


class Health(BaseModel):
    """``GET /healthz``: the database answered."""

    status: Literal["ok"]
    server_version: str
    pgvector_version: str


class CollectionOut(BaseModel):
    """One collection as ``rosetta status --json`` prints it."""

    name: str
    documents: int
    chunks: int
    languages: dict[str, int]
    document_languages: dict[str, int]
    encoder: str
    dim: int
    storage: str


class DatabaseOut(BaseModel):
    """The database (the password in the URL shown as ``***``)."""

    url: str
    embedded: bool
    server_version: str
    pgvector_version: str
    size_bytes: int


class StatusOut(BaseModel):
    """``GET /v1/collections``: ``rosetta status --json``."""

    collections: list[CollectionOut]
    database: DatabaseOut
