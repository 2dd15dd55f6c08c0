"""OpenAI chat completions over the answer loop: messages in, a completion (or SSE chunks) out.

The last user message is the question; earlier user/assistant pairs are the conversation, so a follow-up
is rewritten into a standalone question exactly as in ``rosetta chat``. System messages are ignored:
Rosetta writes its own prompt (rules, passages, answer language).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence

from rag.answer.types import Answer, Citation
from rag.serve.schemas import (
    AnswerExtension,
    AssistantMessage,
    ChatCompletion,
    ChatMessage,
    Choice,
    CitationOut,
    ProblemOut,
    Usage,
)

# Marks an earlier turn rebuilt from the client's messages (it has no passages or checks of its own).
CLIENT_TURN = "client"


def conversation(messages: Sequence[ChatMessage], max_chars: int) -> tuple[str, list[Answer]]:
    """(question, earlier turns): the last message must be the user's question of at most ``max_chars``."""
    turns = [m for m in messages if m.role in ("user", "assistant")]
    if not turns or turns[-1].role != "user":
        raise ValueError("the last message must be the user's question (role 'user')")
    question = turns[-1].text()
    if not question.strip():
        raise ValueError("the question is empty; send the question as the last user message's text")
    if len(question) > max_chars:
        raise ValueError(f"the question has {len(question)} characters; the limit is {max_chars} "
                         "(serve.max_question_chars): shorten it")
    history: list[Answer] = []
    asked: str | None = None
    for message in turns[:-1]:
        if message.role == "user":
            asked = message.text()
        elif asked is not None:
            history.append(Answer(asked, asked, "", message.text(), (), (), (), (), CLIENT_TURN))
            asked = None
    return question, history


def _citation(c: Citation) -> CitationOut:
    return CitationOut(marker=c.marker, verified=c.verified, support=round(c.support, 4), quote=c.quote,
                       quote_start=c.quote_start, quote_end=c.quote_end, claim=c.claim, language=c.language,
                       uri=c.uri, title=c.title, page=c.page, heading=list(c.heading), chunk_id=c.chunk_id)


def extension(answer: Answer, collection: str) -> AnswerExtension:
    """The ``rosetta`` field: the checked text, citations (quotes with offsets), problems."""
    return AnswerExtension(
        collection=collection, question=answer.question, standalone=answer.standalone, language=answer.language,
        generator=answer.generator, ok=answer.ok, repaired=answer.repaired, text=answer.text,
        citations=[_citation(c) for c in answer.citations],
        problems=[ProblemOut(kind=p.kind.value, message=p.message) for p in answer.problems])


def _usage(answer: Answer) -> Usage:
    prompt = sum(step.prompt_tokens for step in answer.trace)
    completion = sum(step.completion_tokens for step in answer.trace)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


def _finish(answer: Answer) -> str:
    return "length" if any(p.kind.value == "truncated" for p in answer.problems) else "stop"


def completion_id() -> str:
    """A fresh OpenAI-style completion id."""
    return f"chatcmpl-{uuid.uuid4().hex}"


def completion(answer: Answer, model: str, collection: str) -> ChatCompletion:
    """The Answer as a chat completion."""
    choice = Choice(message=AssistantMessage(content=answer.text), finish_reason=_finish(answer))  # type: ignore[arg-type]
    return ChatCompletion(id=completion_id(), created=int(time.time()), model=model, choices=[choice],
                          usage=_usage(answer), rosetta=extension(answer, collection))


def chunk(cid: str, model: str, delta: dict[str, str], finish: str | None = None,
          answer: Answer | None = None, collection: str = "") -> str:
    """One SSE frame of a streamed completion; the last one carries ``usage`` and the ``rosetta`` field."""
    body: dict[str, object] = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()),
                               "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if answer is not None:
        body["usage"] = _usage(answer).model_dump()
        body["rosetta"] = extension(answer, collection).model_dump()
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def final_chunks(cid: str, model: str, answer: Answer, streamed: str, collection: str) -> list[str]:
    """The frames after the deltas: the repaired answer when checks made the model rewrite the streamed
    draft (after a rule, so a chat UI shows it), then the finish with citations, then ``[DONE]``."""
    frames = []
    if streamed != answer.text:
        frames.append(chunk(cid, model, {"content": f"\n\n---\n\n{answer.text}"}))
    frames.append(chunk(cid, model, {}, _finish(answer), answer, collection))
    return [*frames, "data: [DONE]\n\n"]


def error_chunk(message: str, kind: str, code: int) -> str:
    """An error after the stream began (the status line is already sent): OpenAI clients raise it."""
    return f"data: {json.dumps({'error': {'message': message, 'type': kind, 'code': code}}, ensure_ascii=False)}\n\n"
