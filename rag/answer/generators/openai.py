"""Generation through any OpenAI-compatible chat-completions API: OpenAI, Ollama, llama.cpp, vLLM, LM Studio.

The SDK retries 408, 409, 429 and 5xx replies, timeouts and failed connections itself, ``max_retries``
times after the first attempt. It waits as ``retry-after-ms`` or ``Retry-After`` says when that is over 0
and at most 2 minutes (a longer wait is not retried at all), else 0.5 s, 1 s, 2 s ... up to 8 s, less up
to 25 % jitter. A stream is retried only until its response starts. Its errors (``APIStatusError`` and
subclasses, ``APITimeoutError``, ``APIConnectionError``, ``APIResponseValidationError``, and
``json.JSONDecodeError`` for a body that is not JSON) become GenerationError in ``_openai_errors``.
The API key lives only inside the SDK client, never in repr, logs or messages. openai is imported inside
the methods that use it, never at import.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rag.answer.dialogue import GenerationRequest, Reply
from rag.answer.generators.openai_wire import StreamedReply, completion_reply, wire_messages, wire_tools
from rag.answer.generators.status import (
    Server,
    connection_message,
    detail,
    status_message,
    timed_out,
    unreadable,
)
from rag.errors import ConfigError, GenerationError

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_URL = "https://api.openai.com/v1"
# Local servers ignore the key, but the SDK refuses to start without one.
PLACEHOLDER_KEY = "no-key"


@dataclass(frozen=True, slots=True)
class OpenAIGenerator:
    """Writes replies with a chat model behind an OpenAI-compatible URL; streams, and calls tools."""

    DEFAULT_MODEL: ClassVar[str] = DEFAULT_MODEL

    client: Any = field(repr=False)  # openai.OpenAI, which holds the API key
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
    ) -> OpenAIGenerator:
        """Build a client with the key from ``environ[api_key_env]`` (default: the process environment).

        Without a key, a ``base_url`` (a local server) gets a placeholder key; with neither, ConfigError.
        """
        if timeout <= 0 or max_retries < 0:
            raise ValueError(f"timeout must be > 0 and max_retries >= 0, got {timeout} and {max_retries}")
        key = (os.environ if environ is None else environ).get(api_key_env, "").strip()
        if not key and not base_url:
            raise ConfigError(f"set {api_key_env} to use the OpenAI generator (or configure a base URL for a "
                              "local OpenAI-compatible server), or choose another generator")
        try:
            import openai
        except ImportError as exc:
            raise ConfigError(f"the OpenAI generator needs the openai package ({exc}); pip install openai, "
                              "or choose another generator") from exc
        url = base_url or DEFAULT_URL
        client = openai.OpenAI(api_key=key or PLACEHOLDER_KEY, base_url=url, timeout=timeout,
                               max_retries=max_retries)
        return cls(client, model, api_key_env, url, max_retries, key)

    @property
    def name(self) -> str:
        """``openai:<model>``."""
        return f"openai:{self.model}"

    @property
    def supports_tools(self) -> bool:
        """True: the model may ask for searches."""
        return True

    @property
    def is_llm(self) -> bool:
        """True."""
        return True

    @property
    def native_documents(self) -> bool:
        """False: the passages travel inside the messages."""
        return False

    def generate(self, request: GenerationRequest) -> Reply:
        """One complete reply, with tool calls parsed; raises GenerationError naming the cause and the fix."""
        started = time.perf_counter()
        with _openai_errors(self._server):
            completion = self._create(request, stream=False)
        return completion_reply(completion, self.model, time.perf_counter() - started, self._server)

    def stream(self, request: GenerationRequest) -> Iterator[str | Reply]:
        """Text deltas as they arrive, then the Reply; a stream cut before its finish is a GenerationError."""
        started = time.perf_counter()
        folded = StreamedReply(self._server)
        with _openai_errors(self._server), self._create(request, stream=True) as chunks:
            for chunk in chunks:
                text = folded.add(chunk)
                if text:
                    yield text
        yield folded.finish(self.model, time.perf_counter() - started)

    def _create(self, request: GenerationRequest, stream: bool) -> Any:
        from openai import omit

        return self.client.chat.completions.create(
            model=self.model,
            messages=wire_messages(request.messages),
            tools=wire_tools(request.tools) if request.tools else omit,
            temperature=request.temperature,
            max_tokens=request.max_tokens,
            stream=True if stream else omit,
            stream_options={"include_usage": True} if stream else omit,
        )

    @property
    def _server(self) -> Server:
        return Server(f"OpenAI-compatible server at {self.base_url}", self.api_key_env, self.model,
                      self.max_retries, self.secret)


@contextmanager
def _openai_errors(server: Server) -> Iterator[None]:
    """Turn the SDK's errors into GenerationError, chained, with what to do next."""
    import openai

    try:
        yield
    except openai.APIStatusError as exc:
        # Not chained: the SDK's exception quotes the server's body, which may echo the key (OpenAI's 401
        # does), and --debug prints chained exceptions. Our message keeps the useful part, scrubbed.
        raise GenerationError(status_message(server, exc.status_code, detail(exc.body))) from None
    except openai.APITimeoutError as exc:
        raise GenerationError(timed_out(server)) from exc
    except openai.APIConnectionError as exc:
        raise GenerationError(connection_message(server, exc.__cause__)) from exc
    except openai.APIResponseValidationError as exc:
        raise GenerationError(unreadable(server, f"not a chat completion: {detail(exc.body)}")) from exc
    except json.JSONDecodeError as exc:
        raise GenerationError(unreadable(server, f"malformed JSON: {exc.msg} at character {exc.pos}")) from exc
    except openai.APIError as exc:  # an error event inside a stream
        said = server.scrub(detail(exc.body) or exc.message)
        raise GenerationError(f"{server.what} reported an error ({said}); retry") from None
