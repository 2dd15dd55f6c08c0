"""Our messages and passages in Cohere's v2 chat wire format, and its replies (whole or streamed) as ours.

Passages go to Cohere as documents whose ids are our passage numbers, so its native citations (character
spans of the reply with the documents that support them) come back as ``SpanCitation``s on our numbering.
The SDK builds its response objects without validation, so absent fields are None; readers check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rag.answer.dialogue import Message, Passage, Reply, Role, SpanCitation, Usage
from rag.answer.generators.status import Server, cut_stream, unreadable
from rag.answer.prompts import location
from rag.errors import GenerationError
from rag.types import JsonValue

# Cohere's finish reasons in the OpenAI words the caller reads ("length" is flagged as cut short).
FINISH_REASONS = {"COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length", "TOOL_CALL": "tool_calls"}
FAILED = ("ERROR", "TIMEOUT")


def wire_messages(messages: Sequence[Message]) -> list[dict[str, JsonValue]]:
    """System, user and assistant turns; tool turns are a ValueError (this generator offers no tools)."""
    for message in messages:
        if message.role is Role.TOOL or message.tool_calls:
            raise ValueError("the Cohere generator takes no tool calls or tool results (supports_tools is "
                             f"False), got a {message.role.value} message with them")
    return [{"role": message.role.value, "content": message.content} for message in messages]


def wire_documents(passages: Sequence[Passage]) -> list[dict[str, JsonValue]]:
    """The passages as documents, each with its passage number as id."""
    return [{"id": str(passage.number), "data": _data(passage)} for passage in passages]


def _data(passage: Passage) -> dict[str, JsonValue]:
    chunk = passage.hit.chunk
    data: dict[str, JsonValue] = {"title": passage.hit.title, "snippet": chunk.text, "language": chunk.language}
    where = location(passage)
    return {**data, "location": where} if where else data


def _get(value: Any, *names: str) -> Any:
    """``value.a.b.c`` or None where any step is missing."""
    for name in names:
        value = getattr(value, name, None)
    return value


def usage(wire: Any) -> Usage:
    """Tokens counted (``tokens``), else billed (``billed_units``), else zeros."""
    counts = _get(wire, "tokens") or _get(wire, "billed_units")
    if counts is None:
        return Usage()
    return Usage(int(counts.input_tokens or 0), int(counts.output_tokens or 0))


def finish_reason(reason: Any, error: Any, server: Server) -> str:
    """Cohere's finish reason in OpenAI's words; ERROR and TIMEOUT are a GenerationError."""
    if reason in FAILED:
        said = f"{reason}: {error}" if error else str(reason)
        raise GenerationError(f"{server.what} stopped generating ({said}); retry")
    return FINISH_REASONS.get(str(reason), str(reason).lower())


def span_citations(citations: Any, text: str, passages: Sequence[Passage], server: Server
                   ) -> tuple[SpanCitation, ...]:
    """Cohere's citations of reply text as spans on our passage numbers (tool and thinking ones dropped)."""
    numbers = {str(passage.number): passage.number for passage in passages}
    spans = []
    for citation in citations or ():
        if _get(citation, "type") not in (None, "TEXT_CONTENT"):
            continue
        cited = tuple(dict.fromkeys(numbers[i] for i in map(_source_id, citation.sources or ()) if i in numbers))
        if cited:
            spans.append(_span(citation.start, citation.end, text, cited, server))
    return tuple(spans)


def _source_id(source: Any) -> str | None:
    if _get(source, "type") != "document":
        return None
    document = _get(source, "document")
    return _get(source, "id") or (document.get("id") if isinstance(document, dict) else None)


def _span(start: Any, end: Any, text: str, cited: tuple[int, ...], server: Server) -> SpanCitation:
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= len(text)):
        raise GenerationError(unreadable(server, f"a citation spans {start}..{end} of a {len(text)}-character reply"))
    return SpanCitation(start, end, cited)


def chat_reply(response: Any, passages: Sequence[Passage], model: str, seconds: float, server: Server) -> Reply:
    """A whole v2 chat response as a Reply; one without a message is unreadable."""
    message = _get(response, "message")
    if message is None:
        raise GenerationError(unreadable(server, "no message in the chat response"))
    text = "".join(item.text or "" for item in message.content or () if _get(item, "type") in (None, "text"))
    reason = finish_reason(_get(response, "finish_reason") or "COMPLETE", None, server)
    return Reply(text, citations=span_citations(message.citations, text, passages, server),
                 usage=usage(_get(response, "usage")), model=model, finish_reason=reason, seconds=seconds)


@dataclass(slots=True)
class StreamedChat:
    """Folds v2 stream events into a Reply: content deltas, citation starts, and the message end."""

    server: Server
    passages: Sequence[Passage]
    texts: list[str] = field(default_factory=list)
    citations: list[Any] = field(default_factory=list)
    finished: str | None = None
    usage: Usage = field(default_factory=Usage)

    def add(self, event: Any) -> str:
        """Fold one event in; return its text delta ('' when it has none)."""
        kind = _get(event, "type")
        if kind == "content-delta":
            text = _get(event, "delta", "message", "content", "text") or ""
            self.texts.append(text)
            return str(text)
        if kind == "citation-start" and _get(event, "delta", "message", "citations") is not None:
            self.citations.append(event.delta.message.citations)
        elif kind == "message-end":
            delta = _get(event, "delta")
            self.finished = finish_reason(_get(delta, "finish_reason") or "COMPLETE", _get(delta, "error"),
                                          self.server)
            self.usage = usage(_get(delta, "usage"))
        return ""

    def finish(self, model: str, seconds: float) -> Reply:
        """The Reply; a stream without its message-end was cut and is a GenerationError."""
        if self.finished is None:
            raise GenerationError(cut_stream(self.server))
        text = "".join(self.texts)
        return Reply(text, citations=span_citations(self.citations, text, self.passages, self.server),
                     usage=self.usage, model=model, finish_reason=self.finished, seconds=seconds)
