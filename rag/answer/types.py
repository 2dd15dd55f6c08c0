"""The vocabulary of answers: citations checked against their passages, problems found, and the trace.

This module imports only ``rag.types`` and ``rag.answer.dialogue``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from rag.answer.dialogue import Passage
from rag.types import Filter


@dataclass(frozen=True, slots=True)
class Citation:
    """Marker ``[n]`` in an answer, resolved to its passage and checked.

    ``quote`` is the passage sentence that best supports the cited claim, exactly as stored
    (``document text[quote_start:quote_end]``); ``support`` is how well it does (1.0 for a verbatim
    quote, else the encoder's cross-lingual similarity); ``verified`` says it cleared the threshold.
    """

    marker: int
    chunk_id: str
    uri: str
    title: str
    page: int | None
    heading: tuple[str, ...]
    language: str
    passage: str
    quote: str
    quote_start: int
    quote_end: int
    claim: str
    support: float
    verified: bool

    def __post_init__(self) -> None:
        if self.marker < 1:
            raise ValueError(f"citation markers start at 1, got {self.marker}")
        if not math.isfinite(self.support):
            raise ValueError(f"Citation.support must be finite, got {self.support}")
        if self.quote_end - self.quote_start != len(self.quote):
            raise ValueError(f"Citation [{self.marker}]: quote offsets do not span its {len(self.quote)} characters")


class ProblemKind(Enum):
    """What the checks found wrong with an answer."""

    WRONG_LANGUAGE = "wrong-language"
    UNKNOWN_MARKER = "unknown-marker"
    UNSUPPORTED = "unsupported"
    NO_CITATIONS = "no-citations"
    NO_PASSAGES = "no-passages"
    TRUNCATED = "truncated"
    STEP_LIMIT = "step-limit"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an answer, said plainly."""

    kind: ProblemKind
    message: str


@dataclass(frozen=True, slots=True)
class Step:
    """One step of the trace: a search (query, filter, passages it added), a generation, a repair, a rewrite."""

    kind: str
    seconds: float
    query: str = ""
    collection: str = ""
    where: Filter | None = None
    passages: tuple[int, ...] = ()
    hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    detail: str = ""

    def __post_init__(self) -> None:
        if self.kind not in {"search", "generate", "repair", "rewrite"}:
            raise ValueError(f"Step.kind must be search, generate, repair or rewrite, got {self.kind!r}")
        if not math.isfinite(self.seconds) or self.seconds < 0:
            raise ValueError(f"Step.seconds must be finite and >= 0, got {self.seconds}")


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer in ``language`` with checked citations, every passage it was given, problems, and the trace.

    ``question`` is what the user typed; ``standalone`` is the question retrieval used (a follow-up
    rewritten with the history). ``detected_language`` is the answer's own language, quotes aside.
    """

    question: str
    standalone: str
    language: str
    text: str
    citations: tuple[Citation, ...]
    passages: tuple[Passage, ...]
    problems: tuple[Problem, ...]
    trace: tuple[Step, ...]
    generator: str
    detected_language: str | None = None
    repaired: bool = False

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def passage(self, number: int) -> Passage:
        """The passage cited as ``[number]``; KeyError when there is none."""
        for passage in self.passages:
            if passage.number == number:
                return passage
        raise KeyError(f"no passage [{number}]; this answer has {len(self.passages)}")
