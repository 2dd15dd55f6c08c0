"""Reranking through Cohere's rerank API (v2) with the official SDK.

The SDK retries 429, 408, 409 and 5xx replies and refused connections itself (``max_retries`` on the client),
waiting as ``Retry-After``/``retry-after-ms`` says, else 1 s, 2 s, ... with jitter; we only bound the count.
Its errors (``ApiError`` and subclasses such as ``TooManyRequestsError``, ``ParsingError``, httpx's for the
connection) become GenerationError here. The API key lives only inside the SDK client, never in repr,
logs or messages. cohere and httpx are imported inside the methods that use them, never at import.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rag.errors import ConfigError, GenerationError
from rag.search.rerankers.ranking import check_k, ranked
from rag.types import Hit

DEFAULT_MODEL = "rerank-v3.5"
DEFAULT_KEY_ENV = "COHERE_API_KEY"
DEFAULT_URL = "https://api.cohere.com"
# Retries after the first attempt, so a request is tried at most 3 times (the SDK's own default).
MAX_RETRIES = 2


@dataclass(frozen=True, slots=True)
class CohereReranker:
    """Reranks hits with a Cohere rerank model; scores are Cohere's relevance scores in [0, 1]."""

    DEFAULT_MODEL: ClassVar[str] = DEFAULT_MODEL

    client: Any = field(repr=False)  # cohere.ClientV2, which holds the API key
    model: str = DEFAULT_MODEL
    api_key_env: str = DEFAULT_KEY_ENV  # named in messages about the key; the key itself is not kept
    base_url: str = DEFAULT_URL

    @classmethod
    def load(
        cls,
        model: str = DEFAULT_MODEL,
        api_key_env: str = DEFAULT_KEY_ENV,
        base_url: str | None = None,
        timeout: float = 30.0,
        environ: Mapping[str, str] | None = None,
    ) -> CohereReranker:
        """Build a client with the key from ``environ[api_key_env]`` (default: the process environment)."""
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        key = _api_key(api_key_env, os.environ if environ is None else environ)
        try:
            import cohere
        except ImportError as exc:
            raise ConfigError(
                f"the cohere reranker needs the cohere package ({exc}); pip install cohere, "
                "or choose another reranker"
            ) from exc
        url = base_url or DEFAULT_URL
        client = cohere.ClientV2(api_key=key, base_url=url, timeout=timeout, max_retries=MAX_RETRIES)
        return cls(client, model, api_key_env, url)

    def rerank(self, question: str, hits: Sequence[Hit], k: int) -> list[Hit]:
        """Return the best ``k`` hits by Cohere relevance, best first, with a ``rerank`` leg added."""
        check_k(k)
        if not hits:
            return []
        documents = [hit.chunk.text for hit in hits]
        with _cohere_errors(self.api_key_env, self.base_url, self.model):
            response = self.client.rerank(
                model=self.model, query=question, documents=documents, top_n=min(k, len(hits))
            )
        scored = [(hits[_checked(result.index, len(hits))], float(result.relevance_score))
                  for result in response.results]
        return ranked(scored, k)


def _api_key(api_key_env: str, environ: Mapping[str, str]) -> str:
    key = environ.get(api_key_env, "").strip()
    if not key:
        raise ConfigError(f"set {api_key_env} to use the cohere reranker, or choose another reranker")
    return key


def _checked(index: int, count: int) -> int:
    if not 0 <= index < count:
        raise GenerationError(f"Cohere rerank returned document index {index} for {count} documents; retry later")
    return index


@contextmanager
def _cohere_errors(api_key_env: str, url: str, model: str) -> Iterator[None]:
    """Turn the SDK's and httpx's errors into GenerationError, chained, with what to do next."""
    import httpx
    from cohere.core.api_error import ApiError
    from cohere.core.parse_error import ParsingError

    try:
        yield
    except (ApiError, ParsingError) as exc:
        raise GenerationError(_status_message(exc.status_code, _detail(exc.body), api_key_env, model)) from exc
    except httpx.TimeoutException as exc:
        raise GenerationError(
            f"Cohere rerank at {url} timed out ({type(exc).__name__}); retry later or raise the timeout"
        ) from exc
    except httpx.HTTPError as exc:
        raise GenerationError(
            f"could not reach Cohere at {url}: {exc or type(exc).__name__}; "
            "check the network, proxy settings and base_url"
        ) from exc


def _status_message(status: int | None, detail: str, api_key_env: str, model: str) -> str:
    said = f"HTTP {status}: {detail}" if detail else f"HTTP {status}"
    if status in (401, 498):
        return f"Cohere rejected the API key ({said}); check the key in ${api_key_env}"
    if status == 403:
        return f"Cohere refused the request ({said}); check that the key in ${api_key_env} may use {model}"
    if status == 429:
        return f"Cohere rate-limited the rerank request ({said}) after {MAX_RETRIES} retries; retry later"
    if status is not None and status >= 500:
        return f"Cohere failed to rerank ({said}) after {MAX_RETRIES} retries; retry later"
    if status is not None and status < 300:
        return f"Cohere's rerank reply could not be read ({said}); retry later or update the cohere package"
    return f"Cohere refused the rerank request ({said}); check the model name {model!r} and the request"


def _detail(body: Any) -> str:
    # Cohere's error bodies are {"message": "..."}; anything else is shown shortened.
    message = body.get("message") if isinstance(body, dict) else body
    text = "" if message is None else " ".join(str(message).split())
    return text if len(text) <= 200 else f"{text[:200]}..."

