"""Generation through Cohere's v2 chat API with the official SDK; passages go as documents, citations come back.

The SDK retries ``chat`` itself on 429, 408, 409 and 5xx replies and refused connections, ``max_retries``
times after the first attempt, waiting as ``retry-after-ms``/``Retry-After`` says (when over 0), else
1 s, 2 s, ... with jitter; it retries neither timeouts nor ``chat_stream`` at all, so the start of a stream
is retried here by the same rules. Its errors (``ApiError`` and subclasses such as ``TooManyRequestsError``,
``ParsingError``, httpx's for the connection) become GenerationError in ``_cohere_errors``. The API key lives
only inside the SDK client, never in repr, logs or messages. cohere and httpx are imported inside the
methods that use them, never at import.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rag.answer.dialogue import GenerationRequest, Reply
from rag.answer.generators.cohere_wire import StreamedChat, chat_reply, wire_documents, wire_messages
from rag.answer.generators.status import Server, connection_message, detail, status_message, timed_out
from rag.errors import ConfigError, GenerationError

DEFAULT_MODEL = "command-a-03-2025"
DEFAULT_KEY_ENV = "COHERE_API_KEY"
DEFAULT_URL = "https://api.cohere.com"
RETRIED_STATUS = (408, 409, 429)
# The SDK's own backoff: 1 s doubling per retry, and no single wait longer than a minute.
FIRST_WAIT_S = 1.0
LONGEST_WAIT_S = 60.0


@dataclass(frozen=True, slots=True)
class CohereGenerator:
    """Writes replies with a Cohere chat model, which cites the passages itself (span citations).

    It offers no tools: one retrieval, one generation. The passages go as documents, not in the prompt.
    """

    DEFAULT_MODEL: ClassVar[str] = DEFAULT_MODEL

    client: Any = field(repr=False)  # cohere.ClientV2, which holds the API key
    model: str = DEFAULT_MODEL
    api_key_env: str = DEFAULT_KEY_ENV  # named in messages about the key
    base_url: str = DEFAULT_URL
    max_retries: int = 3
    # Only to scrub it from server text we show (a server may echo the key); never in repr or messages.
    secret: str = field(default="", repr=False, compare=False)

    @classmethod
    def load(
        cls,
        model: str = DEFAULT_MODEL,
        api_key_env: str = DEFAULT_KEY_ENV,
        base_url: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        environ: Mapping[str, str] | None = None,
    ) -> CohereGenerator:
        """Build a client with the key from ``environ[api_key_env]`` (default: the process environment)."""
        if timeout <= 0 or max_retries < 0:
            raise ValueError(f"timeout must be > 0 and max_retries >= 0, got {timeout} and {max_retries}")
        key = (os.environ if environ is None else environ).get(api_key_env, "").strip()
        if not key:
            raise ConfigError(f"set {api_key_env} to use the Cohere generator, or choose another generator")
        try:
            import cohere
        except ImportError as exc:
            raise ConfigError(f"the Cohere generator needs the cohere package ({exc}); pip install cohere, "
                              "or choose another generator") from exc
        url = base_url or DEFAULT_URL
        client = cohere.ClientV2(api_key=key, base_url=url, timeout=timeout, max_retries=max_retries)
        return cls(client, model, api_key_env, url, max_retries, key)

    @property
    def name(self) -> str:
        """``cohere:<model>``."""
        return f"cohere:{self.model}"

    @property
    def supports_tools(self) -> bool:
        """False: one retrieval, one generation."""
        return False

    @property
    def is_llm(self) -> bool:
        """True."""
        return True

    @property
    def native_documents(self) -> bool:
        """True: the passages go as documents, so the prompt leaves them out."""
        return True

    def generate(self, request: GenerationRequest) -> Reply:
        """One complete reply with span citations; raises GenerationError naming the cause and the fix."""
        started = time.perf_counter()
        messages, documents = wire_messages(request.messages), wire_documents(request.passages)
        with _cohere_errors(self._server):
            response = self.client.chat(model=self.model, messages=messages, documents=documents,
                                        temperature=request.temperature, max_tokens=request.max_tokens)
        return chat_reply(response, request.passages, self.model, time.perf_counter() - started, self._server)

    def stream(self, request: GenerationRequest) -> Iterator[str | Reply]:
        """Text deltas as they arrive, then the Reply; a stream cut before its end is a GenerationError."""
        started = time.perf_counter()
        folded = StreamedChat(self._server, request.passages)
        with _cohere_errors(self._server):
            for event in self._events(request):
                text = folded.add(event)
                if text:
                    yield text
        yield folded.finish(self.model, time.perf_counter() - started)

    def _events(self, request: GenerationRequest) -> Iterator[Any]:
        """The stream's events; its start (up to the first event) is retried as the SDK retries ``chat``."""
        import httpx
        from cohere.core.api_error import ApiError

        messages, documents = wire_messages(request.messages), wire_documents(request.passages)
        for attempt in range(self.max_retries + 1):
            events = iter(self.client.chat_stream(model=self.model, messages=messages, documents=documents,
                                                  temperature=request.temperature, max_tokens=request.max_tokens))
            try:
                first = next(events, None)
            except (ApiError, httpx.ConnectError) as exc:
                wait = _retry_wait(exc, attempt) if attempt < self.max_retries else None
                if wait is None:
                    raise
                time.sleep(wait)
                continue
            if first is not None:
                yield first
                yield from events
            return

    @property
    def _server(self) -> Server:
        return Server(f"Cohere at {self.base_url}", self.api_key_env, self.model, self.max_retries, self.secret)


def _retry_wait(exc: BaseException, attempt: int) -> float | None:
    """Seconds to wait before retrying after ``exc``, or None when the SDK would not retry it."""
    import httpx
    from cohere.core.api_error import ApiError

    if isinstance(exc, ApiError) and (exc.status_code in RETRIED_STATUS or (exc.status_code or 0) >= 500):
        return _retry_after(exc.headers or {}) or min(FIRST_WAIT_S * 2.0**attempt, LONGEST_WAIT_S)
    if isinstance(exc, httpx.ConnectError):
        return min(FIRST_WAIT_S * 2.0**attempt, LONGEST_WAIT_S)
    return None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    lowered = {name.lower(): value for name, value in headers.items()}
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            seconds = float(lowered.get(name, "")) / scale
        except ValueError:
            continue
        if seconds > 0:
            return min(seconds, LONGEST_WAIT_S)
    return None


@contextmanager
def _cohere_errors(server: Server) -> Iterator[None]:
    """Turn the SDK's and httpx's errors into GenerationError, chained, with what to do next."""
    import httpx
    from cohere.core.api_error import ApiError
    from cohere.core.parse_error import ParsingError

    try:
        yield
    except (ApiError, ParsingError) as exc:
        # Not chained: the SDK's exception quotes the server's body, which may echo the key.
        raise GenerationError(status_message(server, exc.status_code, detail(exc.body))) from None
    except httpx.TimeoutException as exc:
        raise GenerationError(timed_out(server)) from exc
    except httpx.TransportError as exc:
        raise GenerationError(connection_message(server, exc)) from exc
