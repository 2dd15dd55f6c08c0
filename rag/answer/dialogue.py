"""The vocabulary of talking to a generator: messages, tools, numbered passages, replies, and the Protocol.

A generator sees the conversation as ``Message``s plus the numbered ``Passage``s retrieved so far (Cohere
takes them as documents, the extractive generator quotes them, OpenAI-compatible models read them from
the messages). This module imports only ``rag.types``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from rag.centering import Centering
from rag.types import Hit, JsonValue


class Role(Enum):
    """Who wrote a message."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A model's request to run a tool; ``arguments`` are the parsed JSON object it sent."""

    id: str
    name: str
    arguments: Mapping[str, JsonValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool offered to the model: name, description, and a JSON Schema for its arguments."""

    name: str
    description: str
    parameters: Mapping[str, JsonValue]


@dataclass(frozen=True, slots=True)
class Message:
    """One turn of the conversation; a tool result carries the id of the call it answers."""

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    def __post_init__(self) -> None:
        if self.role is Role.TOOL and not self.tool_call_id:
            raise ValueError("a tool message needs the tool_call_id it answers")
        if self.tool_calls and self.role is not Role.ASSISTANT:
            raise ValueError(f"only assistant messages carry tool calls, got role {self.role.value}")


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved hit as the generator sees it: numbered from 1, cited as ``[number]``."""

    number: int
    hit: Hit

    def __post_init__(self) -> None:
        if self.number < 1:
            raise ValueError(f"passage numbers start at 1, got {self.number}")


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """Everything one generation call needs.

    ``messages`` already hold the rendered prompt (rules, passages, question); ``passages`` are the same
    passages as values, for generators that take documents natively (Cohere) or quote them (extractive).
    ``question`` is the user's standalone question and ``language`` the answer language (ISO 639-1).
    """

    messages: tuple[Message, ...]
    passages: tuple[Passage, ...]
    question: str
    language: str
    tools: tuple[ToolSpec, ...] = ()
    max_tokens: int = 1024
    temperature: float = 0.0
    # The collection's language means, for generators that compare the question with passage text
    # themselves (extractive): language-neutral scores, as search uses. None: plain cosine.
    centering: Centering | None = None

    def __post_init__(self) -> None:
        if not self.messages:
            raise ValueError("a generation request needs at least one message")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        numbers = [p.number for p in self.passages]
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"passage numbers must be unique, got {numbers}")


@dataclass(frozen=True, slots=True)
class SpanCitation:
    """A generator's own citation (Cohere's): characters ``[start, end)`` of the reply supported by passages."""

    start: int
    end: int
    passages: tuple[int, ...]

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ValueError(f"SpanCitation needs 0 <= start <= end, got {self.start}, {self.end}")


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens a call consumed, as the server counted them (0 when it did not say)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Reply:
    """A finished generation: text (may be empty when the model only calls tools), tool calls, span citations."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    citations: tuple[SpanCitation, ...] = ()
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    finish_reason: str = "stop"
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.seconds) or self.seconds < 0:
            raise ValueError(f"Reply.seconds must be finite and >= 0, got {self.seconds}")


class Generator(Protocol):
    """Writes replies from messages and passages.

    >>> reply = generator.generate(request)
    >>> for piece in generator.stream(request):  # str deltas, then the finished Reply
    ...     print(piece if isinstance(piece, str) else "", end="")
    """

    @property
    def name(self) -> str:
        """Shown to the user, e.g. ``openai:gpt-4o-mini`` or ``extractive``."""
        ...

    @property
    def supports_tools(self) -> bool:
        """True when ``request.tools`` may be used (the model can ask for searches)."""
        ...

    @property
    def is_llm(self) -> bool:
        """True for a language model (it can translate, rewrite and repair); False for extractive."""
        ...

    @property
    def native_documents(self) -> bool:
        """True when it takes ``request.passages`` as documents (Cohere), so the prompt leaves them out."""
        ...

    def generate(self, request: GenerationRequest) -> Reply:
        """One complete reply; raises GenerationError naming the cause and the fix."""
        ...

    def stream(self, request: GenerationRequest) -> Iterator[str | Reply]:
        """Text deltas as they arrive, then the finished Reply (whose text is the deltas joined)."""
        ...
