"""Questions in context: the answer language, follow-ups made standalone, and multi-turn sessions.

``answer_steps`` wires one question to the answer loop (loop.py) with the parts it is handed. A Session
keeps the conversation and asks the facade for each turn through the small ``Answering`` Protocol (so this
module does not import the facade); each follow-up is made standalone before retrieval.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from collections.abc import Generator as Gen
from dataclasses import dataclass, field
from functools import partial
from itertools import chain
from typing import Generic, Protocol, TypeVar

from rag.answer.citations import cite, strip_markers, support_threshold
from rag.answer.dialogue import GenerationRequest, Generator
from rag.answer.loop import Asker, Question, Search, drain, history_messages, streamed
from rag.answer.prompts import rewrite_message
from rag.answer.types import Answer, Step
from rag.centering import Centering
from rag.chunk import split_prose
from rag.config import GenerationConfig
from rag.lang import language_name, normalize_language
from rag.types import Encoder, Filter, check_text

# Without a language model to rewrite follow-ups, these bound what counts as an elliptical follow-up.
SHORT_FOLLOW_UP_WORDS = 6
SHORT_FOLLOW_UP_CHARS = 48


def answer_language(requested: str | None, question: str, detect: Callable[[str], str | None],
                    history: Sequence[Answer] = (), fallback: str = "en") -> str:
    """The requested language (validated), else the question's detected language, else the conversation's (a
    follow-up too short to tell, "HX-F07?": the latest earlier turn's answer language, or its question's
    detected language for a turn a client sent without one), else ``fallback`` (generation.fallback_language)."""
    if requested:
        return normalize_language(requested)
    told = chain([detect(question)], (earlier.language or detect(earlier.question) for earlier in reversed(history)))
    return next((code for code in told if code), fallback)


def rewrite(generator: Generator, history: Sequence[Answer], question: str, language: str
            ) -> tuple[str, Step | None]:
    """A follow-up as a standalone question: rewritten by a language model; without one, a short follow-up
    ("And where is it?") is joined to the previous standalone question so retrieval keeps the topic, and a
    longer one stands alone (it is more likely a new topic than an ellipsis)."""
    if not history:
        return question, None
    if not generator.is_llm:
        short = len(question.split()) <= SHORT_FOLLOW_UP_WORDS and len(question) <= SHORT_FOLLOW_UP_CHARS
        return (f"{history[-1].standalone} {question}" if short else question), None
    turns = [(a.question, strip_markers(a.text)) for a in history[-3:]]
    started = time.perf_counter()
    message = rewrite_message(turns, question, language_name(language))
    reply = generator.generate(GenerationRequest((message,), (), question, language, max_tokens=200))
    standalone = " ".join(reply.text.split()) or question
    return standalone, Step("rewrite", time.perf_counter() - started, query=standalone,
                            prompt_tokens=reply.usage.prompt_tokens, completion_tokens=reply.usage.completion_tokens)


@dataclass(frozen=True, slots=True)
class AnswerParts:
    """What one answer is wired from: the generator, a search over the collection (``k`` passages each),
    the collection's encoder and the language detector (for citation checks), and the answer settings."""

    generator: Generator
    search: Search
    encoder: Encoder
    detect: Callable[[str], str | None]
    settings: GenerationConfig
    k: int
    centering: Centering | None = None


def require_question(question: str) -> None:
    """Raise ValueError for an empty question or one holding text Postgres cannot store."""
    if not question.strip():
        raise ValueError("the question is empty; type a question in any language")
    check_text(question, "question")


def answer_steps(parts: AnswerParts, question: str, language: str | None, where: Filter | None,
                 history: Sequence[Answer], stream: bool) -> Gen[str, None, Answer]:
    """The answer loop for one question (a follow-up is made standalone first), wired to ``parts``."""
    require_question(question)
    g, generator = parts.settings, parts.generator
    target = answer_language(language, question, parts.detect, history, g.fallback_language)
    standalone, step = rewrite(generator, history, question, target)
    threshold = g.support_threshold if g.support_threshold is not None else support_threshold(parts.encoder.name)
    check = partial(cite, encoder=parts.encoder, split=split_prose, detect=parts.detect, threshold=threshold)
    asker = Asker(generator, parts.search, check, parts.k, g, [step] if step else [], parts.centering)
    turns = history_messages([(a.question, a.text) for a in history]) if generator.is_llm else ()
    return asker.run(Question(question, standalone, target, language_name(target), where, turns), stream)


class Answering(Protocol):
    """What a Session asks of the facade (rag/rosetta.py): the answer loop for one question in context."""

    def answer_steps(self, question: str, *, collection: str | None = None, language: str | None = None,
                     k: int | None = None, where: Filter | None = None, history: Sequence[Answer] = (),
                     stream: bool = False) -> Gen[str, None, Answer]: ...


F = TypeVar("F", bound=Answering)


@dataclass(slots=True)
class Session(Generic[F]):
    """A conversation over one collection; ``answers`` grows with each turn."""

    rosetta: F
    collection: str | None = None
    language: str | None = None
    where: Filter | None = None
    k: int | None = None
    answers: list[Answer] = field(default_factory=list)

    def ask(self, question: str) -> Answer:
        """Answer a question or follow-up, and remember it."""
        return self._keep(drain(self._steps(question, stream=False)))

    def stream(self, question: str) -> Gen[str | Answer, None, None]:
        """Like ask(), yielding text deltas first, then the Answer (remembered once it is complete)."""
        for piece in streamed(self._steps(question, stream=True)):
            yield self._keep(piece) if isinstance(piece, Answer) else piece

    def _steps(self, question: str, stream: bool) -> Gen[str, None, Answer]:
        return self.rosetta.answer_steps(question, collection=self.collection, language=self.language, k=self.k,
                                         where=self.where, history=self.answers, stream=stream)

    def _keep(self, answer: Answer) -> Answer:
        self.answers.append(answer)
        return answer

    def clear(self) -> None:
        """Forget the conversation."""
        self.answers.clear()
