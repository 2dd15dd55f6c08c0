"""Questions in context: the answer language, follow-ups made standalone, and multi-turn sessions.

``answer_steps`` wires one question to the answer loop (rag/ask.py) with the facade's parts; a Session
keeps the conversation so each follow-up is rewritten into a standalone question before retrieval.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from collections.abc import Generator as Gen
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from rag.answers import Answer, Step
from rag.ask import Asker, AskSettings, Question, drain, history_messages, streamed
from rag.chunk import split_prose
from rag.cite import cite, strip_markers, support_threshold
from rag.dialogue import GenerationRequest, Generator
from rag.lang import language_name, normalize_language
from rag.prompting import rewrite_message
from rag.types import Filter, Hit, check_text

if TYPE_CHECKING:
    from rag.agent import Rosetta

# Without a language model to rewrite follow-ups, these bound what counts as an elliptical follow-up.
SHORT_FOLLOW_UP_WORDS = 6
SHORT_FOLLOW_UP_CHARS = 48


def answer_language(requested: str | None, question: str, detect: Callable[[str], str | None]) -> str:
    """The requested language (validated), else the question's detected language, else English."""
    if requested:
        return normalize_language(requested)
    return detect(question) or "en"


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


def answer_steps(rosetta: Rosetta, question: str, collection: str, language: str | None, k: int | None,
                 where: Filter | None, history: Sequence[Answer], generator: Generator, stream: bool
                 ) -> Gen[str, None, Answer]:
    """The answer loop for one question over ``collection``, wired to the facade's retriever and encoder."""
    if not question.strip():
        raise ValueError("the question is empty; type a question in any language")
    check_text(question, "question")
    g = rosetta.config.generation
    encoder = rosetta.encoder(collection)
    detect = rosetta.detector().detect
    target = answer_language(language, question, detect)
    standalone, step = rewrite(generator, history, question, target)
    per_search = k or g.k

    def search(query: str, filter_: Filter | None, other: str | None) -> list[Hit]:
        return rosetta.search(query, collection=other or collection, k=per_search, where=filter_)

    threshold = g.support_threshold if g.support_threshold is not None else support_threshold(encoder.name)
    check = partial(cite, encoder=encoder, split=split_prose, detect=detect, threshold=threshold)
    settings = AskSettings(per_search, g.max_steps, g.max_passages, g.max_tokens, g.temperature, g.repair)
    asker = Asker(generator, search, check, settings, [step] if step else [])
    turns = history_messages([(a.question, a.text) for a in history]) if generator.is_llm else ()
    return asker.run(Question(question, standalone, target, language_name(target), where, turns), stream)


@dataclass(slots=True)
class Session:
    """A conversation over one collection; ``answers`` grows with each turn."""

    rosetta: Rosetta
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
        name = self.collection or self.rosetta.config.collection
        self.rosetta.retriever(name)
        return answer_steps(self.rosetta, question, name, self.language, self.k, self.where, self.answers,
                            self.rosetta.generator(name), stream)

    def _keep(self, answer: Answer) -> Answer:
        self.answers.append(answer)
        return answer

    def clear(self) -> None:
        """Forget the conversation."""
        self.answers.clear()
