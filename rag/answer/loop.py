"""Answering: retrieve, let a tool-capable model search more, generate, check citations, repair once.

    search(question) -> numbered passages -> generate (the model may call ``search`` again, bounded by
    max_steps and max_passages) -> [n] markers checked against the passages -> one repair turn when the
    language is wrong or citations are invalid -> Answer (problems listed, never hidden), with the trace.

One loop serves both ``ask`` and ``stream``: it yields text deltas when streaming and returns the Answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Generator as Gen
from dataclasses import dataclass, field, replace
from typing import TypeVar

from rag.answer.citations import REPAIRABLE, Cited, insert_markers, strip_markers
from rag.answer.dialogue import (
    GenerationRequest,
    Generator,
    Message,
    Passage,
    Reply,
    Role,
    ToolCall,
    ToolSpec,
)
from rag.answer.prompts import question_message, repair_message, search_tool, system_message, tool_result
from rag.answer.types import Answer, Problem, ProblemKind, Step
from rag.centering import Centering
from rag.config import GenerationConfig
from rag.errors import ConfigError, StoreError
from rag.types import Filter, Hit

Search = Callable[[str, "Filter | None", "str | None"], list[Hit]]
T = TypeVar("T")
Check = Callable[[str, Sequence[Passage], str], Cited]


@dataclass(frozen=True, slots=True)
class Question:
    """What to answer: the user's words, the standalone form retrieval uses, the answer language, history."""

    text: str
    standalone: str
    language: str
    language_name: str
    where: Filter | None = None
    history: tuple[Message, ...] = ()


@dataclass(slots=True)
class _Passages:
    """Numbers passages in the order they were found; a chunk found twice keeps its first number."""

    limit: int
    items: list[Passage] = field(default_factory=list)

    def add(self, hits: Sequence[Hit]) -> list[Passage]:
        known = {p.hit.key for p in self.items}
        added: list[Passage] = []
        for hit in hits:
            if hit.key in known or len(self.items) >= self.limit:
                continue
            known.add(hit.key)
            added.append(Passage(len(self.items) + 1, hit))
            self.items.append(added[-1])
        return added


@dataclass(slots=True)
class Asker:
    """Runs the answer loop for one question with a generator, a search function and a citation checker.

    ``settings`` bounds the loop (steps, passages, tokens, temperature, repair); ``k`` is the passages a
    tool call's search may add (the per-call override of ``settings.k``).
    """

    generator: Generator
    search: Search
    check: Check
    k: int
    settings: GenerationConfig = field(default_factory=GenerationConfig)
    trace: list[Step] = field(default_factory=list)
    centering: Centering | None = None

    def run(self, question: Question, stream: bool) -> Gen[str, None, Answer]:
        """Yield text deltas (when ``stream``) and return the checked Answer."""
        passages = _Passages(self.settings.max_passages)
        passages.add(self._search(question.standalone, question.where, None))
        messages = self._opening(question, passages.items)
        reply, messages = yield from self._converse(question, messages, passages, stream)
        text = insert_markers(reply.text, reply.citations) if reply.citations else reply.text
        cited = self.check(text, passages.items, question.language)
        repaired = False
        if self.settings.repair and self.generator.is_llm and _repairable(cited):
            text, cited = self._repair(question, messages, reply, text, cited, passages.items)
            repaired = True
        problems = cited.problems + _extra(reply, passages.items, self.settings.max_steps)
        return Answer(question.text, question.standalone, question.language, text, cited.citations,
                      tuple(passages.items), problems, tuple(self.trace), self.generator.name,
                      cited.detected_language, repaired)

    def _opening(self, question: Question, passages: Sequence[Passage]) -> list[Message]:
        shown = () if self.generator.native_documents else passages
        system = system_message(question.language, question.language_name, self.generator.supports_tools)
        return [system, *question.history, question_message(question.standalone, shown, question.language_name)]

    def _converse(self, question: Question, messages: list[Message], passages: _Passages, stream: bool
                  ) -> Gen[str, None, tuple[Reply, list[Message]]]:
        """Generate until the model answers instead of calling tools; the last step offers no tools."""
        tools = (search_tool(),) if self.generator.supports_tools else ()
        for step in range(self.settings.max_steps):
            offered = tools if step < self.settings.max_steps - 1 else ()
            reply = yield from self._generate(self._request(question, messages, passages.items, offered), stream)
            if not reply.tool_calls or not offered:
                return reply, messages
            messages = [*messages, Message(Role.ASSISTANT, reply.text, reply.tool_calls)]
            messages += [Message(Role.TOOL, self._tool(call, question, passages), tool_call_id=call.id)
                         for call in reply.tool_calls]
        raise AssertionError("unreachable: the last step offers no tools")

    def _request(self, question: Question, messages: Sequence[Message], passages: Sequence[Passage],
                 tools: tuple[ToolSpec, ...]) -> GenerationRequest:
        s = self.settings
        return GenerationRequest(tuple(messages), tuple(passages), question.standalone, question.language,
                                 tools, s.max_tokens, s.temperature, self.centering)

    def _generate(self, request: GenerationRequest, stream: bool, kind: str = "generate"
                  ) -> Gen[str, None, Reply]:
        started = time.perf_counter()
        if stream:
            reply = None
            for piece in self.generator.stream(request):
                if isinstance(piece, str):
                    yield piece
                else:
                    reply = piece
            if reply is None:
                raise AssertionError(f"{self.generator.name} streamed no final Reply")
        else:
            reply = self.generator.generate(request)
        self.trace.append(Step(kind, time.perf_counter() - started, prompt_tokens=reply.usage.prompt_tokens,
                               completion_tokens=reply.usage.completion_tokens, detail=reply.model))
        return reply

    def _search(self, query: str, where: Filter | None, collection: str | None) -> list[Hit]:
        started = time.perf_counter()
        hits = self.search(query, where, collection)
        self.trace.append(Step("search", time.perf_counter() - started, query=query, collection=collection or "",
                               where=where, hits=len(hits)))
        return hits

    def _tool(self, call: ToolCall, question: Question, passages: _Passages) -> str:
        """Run one tool call; a bad call is answered with what was wrong, so the model can retry."""
        query, languages, collection, error = _search_arguments(call)
        if error:
            self.trace.append(Step("search", 0.0, detail=error))
            return error
        where = replace(question.where or Filter(), languages=languages) if languages else question.where
        try:
            hits = self._search(query, where, collection)
        except (ConfigError, StoreError) as exc:
            if collection is None:
                raise  # the current collection failing is not the model's to fix
            return f"search in collection {collection!r} failed: {exc}"
        added = passages.add(hits[: self.k])
        self.trace[-1] = replace(self.trace[-1], passages=tuple(p.number for p in added))
        if not added and len(passages.items) >= passages.limit:
            return (f"The passage limit ({passages.limit}) is reached; answer from the passages you have.")
        return tool_result(query, added)

    def _repair(self, question: Question, messages: list[Message], reply: Reply, text: str, cited: Cited,
                passages: Sequence[Passage]) -> tuple[str, Cited]:
        """One more turn listing the problems; its answer is kept and checked again."""
        wrong = [p.message for p in cited.problems if p.kind in REPAIRABLE]
        turn = [*messages, Message(Role.ASSISTANT, text), repair_message(wrong, question.language_name)]
        fixed = drain(self._generate(self._request(question, turn, passages, ()), False, "repair"))
        fixed_text = insert_markers(fixed.text, fixed.citations) if fixed.citations else fixed.text
        return fixed_text, self.check(fixed_text, passages, question.language)


def _repairable(cited: Cited) -> bool:
    return any(problem.kind in REPAIRABLE for problem in cited.problems)


def _extra(reply: Reply, passages: Sequence[Passage], max_steps: int) -> tuple[Problem, ...]:
    problems: list[Problem] = []
    if not passages:
        problems.append(Problem(ProblemKind.NO_PASSAGES, "no passage matched the question; is the collection "
                                                           "empty, or the filter too narrow?"))
    if reply.finish_reason == "length":
        problems.append(Problem(ProblemKind.TRUNCATED, "the answer was cut at the token limit "
                                                         "(raise generation.max_tokens)"))
    if reply.tool_calls:
        problems.append(Problem(ProblemKind.STEP_LIMIT, f"the model still wanted to search after {max_steps} steps"))
    return tuple(problems)


def _search_arguments(call: ToolCall) -> tuple[str, tuple[str, ...], str | None, str]:
    """(query, languages, collection, error) from a search call; error is '' when the call is valid."""
    if call.name != "search":
        return "", (), None, f"Unknown tool {call.name!r}; the only tool is 'search'."
    args = call.arguments
    query = args.get("query")
    languages = args.get("languages") or []
    collection = args.get("collection")
    if not isinstance(query, str) or not query.strip():
        return "", (), None, "search needs a non-empty 'query' string."
    if not isinstance(languages, list) or not all(isinstance(x, str) and x for x in languages):
        return "", (), None, "'languages' must be a list of ISO 639-1 codes such as [\"de\", \"ja\"]."
    if collection is not None and not isinstance(collection, str):
        return "", (), None, "'collection' must be a string."
    return query.strip(), tuple(str(x) for x in languages), collection, ""


def history_messages(turns: Sequence[tuple[str, str]], limit: int = 3) -> tuple[Message, ...]:
    """The last ``limit`` (question, answer) turns as messages, markers removed (their numbers are stale)."""
    messages: list[Message] = []
    for question, answer in turns[-limit:]:
        messages += [Message(Role.USER, question), Message(Role.ASSISTANT, strip_markers(answer))]
    return tuple(messages)


def drain(steps: Gen[str, None, T]) -> T:
    """Run a loop to its return value, dropping anything it yields."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]


def streamed(steps: Gen[str, None, Answer]) -> Iterator[str | Answer]:
    """The loop as ``ask(stream=True)`` yields it: text deltas, then the Answer."""
    answer = yield from steps
    yield answer
