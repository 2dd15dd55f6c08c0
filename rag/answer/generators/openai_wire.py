"""Our messages and tools in OpenAI's chat-completions wire format, and its replies (whole or streamed) as ours.

The SDK builds its response objects without validation (``construct``), so fields a server left out are
None; the readers here check the shape they rely on and call anything else unreadable.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rag.answer.dialogue import Message, Reply, Role, ToolCall, ToolSpec, Usage
from rag.answer.generators.status import Server, cut_stream, unreadable
from rag.errors import GenerationError
from rag.types import JsonValue

WireMessage = dict[str, JsonValue]


def wire_messages(messages: Sequence[Message]) -> list[WireMessage]:
    """The conversation as chat-completions messages (tool calls and tool results included)."""
    return [_wire_message(message) for message in messages]


def _wire_message(message: Message) -> WireMessage:
    if message.role is Role.TOOL:
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    wire: WireMessage = {"role": message.role.value, "content": message.content}
    if message.tool_calls:
        wire["tool_calls"] = [_wire_call(call) for call in message.tool_calls]
    return wire


def _wire_call(call: ToolCall) -> JsonValue:
    arguments = json.dumps(dict(call.arguments), ensure_ascii=False)
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": arguments}}


def wire_tools(tools: Sequence[ToolSpec]) -> list[JsonValue]:
    """The tools as chat-completions function tools."""
    return [{"type": "function", "function": {"name": tool.name, "description": tool.description,
                                              "parameters": dict(tool.parameters)}} for tool in tools]


def tool_call(call_id: str, name: str, arguments: str) -> ToolCall:
    """A tool call with its JSON arguments parsed; malformed or non-object arguments are a GenerationError."""
    try:
        parsed = json.loads(arguments or "{}")
    except json.JSONDecodeError as exc:
        raise GenerationError(_malformed(name, arguments)) from exc
    if not isinstance(parsed, dict):
        raise GenerationError(_malformed(name, arguments))
    return ToolCall(call_id, name, parsed)


def _malformed(name: str, arguments: str) -> str:
    shown = arguments if len(arguments) <= 80 else f"{arguments[:80]}..."
    return (f"the model sent malformed tool arguments for {name!r} (not a JSON object: {shown!r}); retry, "
            "or use a model that supports tool calling")


def usage(wire: Any) -> Usage:
    """Token counts from a usage object (zeros where the server did not count)."""
    if wire is None:
        return Usage()
    return Usage(int(getattr(wire, "prompt_tokens", 0) or 0), int(getattr(wire, "completion_tokens", 0) or 0))


def completion_reply(completion: Any, model: str, seconds: float, server: Server) -> Reply:
    """A whole chat completion as a Reply; one without a first choice and message is unreadable."""
    choices = getattr(completion, "choices", None)
    first: Any = choices[0] if isinstance(choices, list) and choices else None
    message = getattr(first, "message", None)
    if message is None:
        raise GenerationError(unreadable(server, "no choices[0].message in the completion"))
    calls = tuple(tool_call(call.id or "", call.function.name or "", call.function.arguments or "")
                  for call in message.tool_calls or ())
    return Reply(server.scrub(message.content or ""), calls, usage=usage(completion.usage), model=completion.model or model,
                 finish_reason=first.finish_reason or "stop", seconds=seconds)


@dataclass(slots=True)
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class StreamedReply:
    """Folds streamed chunks into a Reply: text deltas, tool-call deltas by index, usage, finish reason."""

    server: Server
    texts: list[str] = field(default_factory=list)
    calls: dict[int, _PendingCall] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    model: str = ""

    def add(self, chunk: Any) -> str:
        """Fold one chunk in; return its text delta ('' when it has none)."""
        self.model = getattr(chunk, "model", None) or self.model
        if getattr(chunk, "usage", None) is not None:
            self.usage = usage(chunk.usage)
        choices = getattr(chunk, "choices", None) or []
        if not choices:
            return ""
        choice = choices[0]
        self.finish_reason = choice.finish_reason or self.finish_reason
        delta = choice.delta
        for call in getattr(delta, "tool_calls", None) or ():
            self._add_call(call)
        text = getattr(delta, "content", None) or ""
        self.texts.append(text)
        return text

    def _add_call(self, call: Any) -> None:
        pending = self.calls.setdefault(call.index or 0, _PendingCall())
        pending.id = call.id or pending.id
        function = call.function
        if function is not None:
            pending.name = function.name or pending.name
            pending.arguments.append(function.arguments or "")

    def finish(self, model: str, seconds: float) -> Reply:
        """The Reply; a stream that ended without a finish reason was cut and is a GenerationError."""
        if self.finish_reason is None:
            raise GenerationError(cut_stream(self.server))
        calls = tuple(tool_call(p.id, p.name, "".join(p.arguments)) for _, p in sorted(self.calls.items()))
        # A server (or a proxy) that echoes the key into the reply: the Answer kept, shown and exported holds
        # "***" instead (the deltas already shown cannot be taken back; the final text replaces them).
        return Reply(self.server.scrub("".join(self.texts)), calls, usage=self.usage, model=self.model or model,
                     finish_reason=self.finish_reason, seconds=seconds)
