"""Citations checked: parse ``[n]`` markers, resolve them to passages, score support, detect the answer's language.

A claim is a sentence (or a line) of the answer carrying markers. Its support by a cited passage is 1.0
when the claim quotes the passage verbatim, else the encoder's cosine similarity between the claim and
the passage's best sentence, which also becomes the citation's quote. The answer's language is detected
on its own words: markers, block quotes and quoted source text are left out, since quoting a passage
in its original language is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rag.answer.dialogue import Passage, SpanCitation
from rag.answer.types import Citation, Problem, ProblemKind
from rag.types import Encoder, one_line

Split = Callable[[str], Sequence[tuple[int, int]]]
Detect = Callable[[str], "str | None"]

# [1], [1][2], [1, 2], and the full-width brackets CJK models sometimes write.
MARKER = re.compile(r"[\[［【]\s*(\d{1,4}(?:\s*[,，、]\s*\d{1,4})*)\s*[\]］】]")
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|„([^“”]+)[“”]|«([^»]+)»|「([^」]+)」|『([^』]+)』|‚([^‘’]+)[‘’]")
_TRAILING = re.compile(MARKER.pattern.join(["(?:\\s*", ")+\\s*$"]))
_BULLET = re.compile(r"^\s*(?:>\s*|[-*•]\s+|\d{1,3}[.)]\s+)+")
# A verbatim quote shorter than this proves little (a number, a name), so it is scored by similarity.
MIN_QUOTE = 12

# Cosine similarity a claim needs with its passage's best sentence to count as supported, per encoder.
# e5-small is calibrated on XQuAD (python -m evals.calibrate_support; 668 English claims against
# de/zh/ar/th paragraphs): the midpoint between the 10th percentile of a claim against its translated
# paragraph (0.816) and the 90th percentile against another article's paragraph (0.784) is 0.80, which
# keeps 97.8% of supported and 3.4% of unsupported claims. BGE-M3's value could not be measured here
# (no weights offline); 0.6 is its scale's usual boundary. Run the calibration and set
# generation.support_threshold for your encoder.
THRESHOLDS = {"e5-small": 0.80, "bge-m3": 0.6}
DEFAULT_THRESHOLD = 0.6


def support_threshold(encoder_name: str) -> float:
    """The calibrated support threshold for an encoder (``bge-m3:BAAI/bge-m3`` uses ``bge-m3``'s)."""
    return THRESHOLDS.get(encoder_name.split(":", 1)[0], DEFAULT_THRESHOLD)


def _numbers(match: re.Match[str]) -> list[int]:
    return [int(n) for n in re.split(r"\s*[,，、]\s*", match.group(1))]


def citing_markers(text: str) -> list[tuple[int, int, tuple[int, ...]]]:
    """The ``(start, end, numbers)`` of the markers that cite, in order.

    Brackets that belong to quoted source text do not cite: inside a block-quoted line (``> ...``) only the
    markers that end the line count, and markers inside quotation marks never do. So a quoted Wikipedia
    sentence ending in "[21]." is not read as a citation of passage 21.
    """
    found: list[tuple[int, int, tuple[int, ...]]] = []
    offset = 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip()
        quoted = [m.span() for m in _QUOTED.finditer(body)]
        tail = _TRAILING.search(body) if body.lstrip().startswith(">") else None
        for match in MARKER.finditer(body):
            inside = any(a <= match.start() < b for a, b in quoted)
            if inside or (tail is not None and match.start() < tail.start()):
                continue
            found.append((offset + match.start(), offset + match.end(), tuple(_numbers(match))))
        offset += len(line)
    return found


def markers(text: str) -> list[int]:
    """Every passage number cited in ``text``, in order of appearance (repeats kept)."""
    return [n for _, _, numbers in citing_markers(text) for n in numbers]


def strip_markers(text: str) -> str:
    """``text`` without its citing markers (brackets of quoted source text stay), whitespace tidied."""
    while markers := citing_markers(text):  # joining the text around a marker can form one: "[[1]1]"
        text = _without(text, 0, len(text), markers)
    return " ".join(text.split())


def insert_markers(text: str, spans: Sequence[SpanCitation]) -> str:
    """Write ``[n]`` markers at the end of each cited span (a generator's native citations)."""
    by_end: dict[int, list[int]] = {}
    for span in spans:
        if span.end > len(text):
            raise ValueError(f"citation span ends at {span.end}, past the {len(text)}-character reply")
        numbers = by_end.setdefault(span.end, [])
        numbers.extend(n for n in span.passages if n not in numbers)
    for end in sorted(by_end, reverse=True):
        text = text[:end] + "".join(f"[{n}]" for n in by_end[end]) + text[end:]
    return text


def own_words(text: str) -> str:
    """The answer's own words: no markers, no block-quoted lines, no quoted source text."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith(">")]
    unquoted = _QUOTED.sub(" ", "\n".join(lines))
    return strip_markers(unquoted)


@dataclass(frozen=True, slots=True)
class Claim:
    """A sentence or line of the answer and the passage numbers it cites."""

    text: str
    numbers: tuple[int, ...]


def claims(text: str, split: Split) -> list[Claim]:
    """The answer's sentences with the markers that cite them; a block-quoted line is one claim, and a run
    of bare markers joins the claim before it."""
    found: list[Claim] = []
    for line in text.splitlines():
        cites = citing_markers(line)
        spans = [(0, len(line))] if line.lstrip().startswith(">") else split(line)
        for start, end in spans:
            mine = [(a, b, numbers) for a, b, numbers in cites if start <= a < end]
            numbers = tuple(dict.fromkeys(n for _, _, ns in mine for n in ns))
            words = _BULLET.sub("", _without(line, start, end, mine)).strip()
            if not words and found and numbers:
                last = found[-1]
                found[-1] = Claim(last.text, tuple(dict.fromkeys(last.numbers + numbers)))
            elif words:
                found.append(Claim(words, numbers))
    return found


def _without(line: str, start: int, end: int, cut: Sequence[tuple[int, int, tuple[int, ...]]]) -> str:
    """``line[start:end]`` without the ``cut`` spans, whitespace tidied."""
    pieces, last = [], start
    for a, b, _ in cut:
        pieces.append(line[last:a])
        last = b
    pieces.append(line[last:end])
    return " ".join(" ".join(pieces).split())


def _normal(text: str) -> str:
    # Loose: a quote of hard-wrapped Chinese or Japanese matches with or without a space where the line broke.
    return one_line(text, loose=True).casefold()


def _quotes(claim: str) -> list[str]:
    inner = [next(group for group in match.groups() if group) for match in _QUOTED.finditer(claim)]
    return [quote for quote in inner + [claim] if len(quote.strip()) >= MIN_QUOTE]


@dataclass(frozen=True, slots=True)
class Cited:
    """What checking found: the citations, the problems, and the answer's detected language."""

    citations: tuple[Citation, ...]
    problems: tuple[Problem, ...]
    detected_language: str | None


@dataclass(frozen=True, slots=True)
class _Sentence:
    passage: Passage
    start: int
    end: int

    @property
    def text(self) -> str:
        return self.passage.hit.chunk.text[self.start:self.end]


def _sentences(passage: Passage, split: Split) -> list[_Sentence]:
    spans = [span for span in split(passage.hit.chunk.text) if span[1] > span[0]]
    return [_Sentence(passage, start, end) for start, end in spans] or [
        _Sentence(passage, 0, len(passage.hit.chunk.text))]


def _exact(claim: Claim, sentences: Sequence[_Sentence]) -> _Sentence | None:
    """The passage sentence a claim quotes verbatim (whitespace and case aside), if it does."""
    quotes = [_normal(quote) for quote in _quotes(claim.text)]
    passage = _normal(sentences[0].passage.hit.chunk.text)
    for quote in quotes:
        if quote in passage:
            return next((s for s in sentences if quote in _normal(s.text) or _normal(s.text) in quote),
                        sentences[0])
    return None


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


@dataclass(frozen=True, slots=True)
class _Scorer:
    encoder: Encoder
    split: Split

    def best(self, claim: Claim, passage: Passage) -> tuple[_Sentence, float]:
        sentences = _sentences(passage, self.split)
        exact = _exact(claim, sentences)
        if exact is not None:
            return exact, 1.0
        (query,) = self.encoder.encode_queries([claim.text])
        vectors = _unit(np.stack([e.dense for e in self.encoder.encode_passages([s.text for s in sentences])]))
        scores = vectors @ _unit(query.dense)
        index = int(np.argmax(scores))
        return sentences[index], float(scores[index])


def _citation(marker: int, claim: Claim, sentence: _Sentence, support: float, threshold: float) -> Citation:
    hit = sentence.passage.hit
    chunk = hit.chunk
    return Citation(
        marker=marker, chunk_id=chunk.id, uri=chunk.document_uri, title=hit.title, page=chunk.page,
        heading=chunk.heading, language=chunk.language, passage=chunk.text, quote=sentence.text,
        quote_start=chunk.start + sentence.start, quote_end=chunk.start + sentence.end, claim=claim.text,
        support=support, verified=support >= threshold)


def cite(text: str, passages: Sequence[Passage], language: str, *, encoder: Encoder, split: Split,
         detect: Detect, threshold: float) -> Cited:
    """Resolve and check every ``[n]`` in ``text`` against ``passages``; detect the answer's language."""
    by_number = {p.number: p for p in passages}
    scorer = _Scorer(encoder, split)
    citations: list[Citation] = []
    unknown: list[int] = []
    for claim in claims(text, split):
        for number in claim.numbers:
            if number not in by_number:
                unknown.append(number)
                continue
            sentence, support = scorer.best(claim, by_number[number])
            citations.append(_citation(number, claim, sentence, support, threshold))
    words = own_words(text)
    detected = detect(words) if words else None
    problems = _problems(citations, unknown, passages, language, detected, bool(markers(text)))
    return Cited(tuple(citations), problems, detected)


def _problems(citations: Sequence[Citation], unknown: Sequence[int], passages: Sequence[Passage],
              language: str, detected: str | None, any_marker: bool) -> tuple[Problem, ...]:
    problems: list[Problem] = []
    if detected is not None and detected != language:
        problems.append(Problem(ProblemKind.WRONG_LANGUAGE,
                                f"the answer is in '{detected}' but was asked for in '{language}'"))
    if unknown:
        listed = ", ".join(f"[{n}]" for n in dict.fromkeys(unknown))
        problems.append(Problem(ProblemKind.UNKNOWN_MARKER,
                                f"{listed} cite no passage (there are {len(passages)}, numbered from 1)"))
    if passages and not any_marker:
        problems.append(Problem(ProblemKind.NO_CITATIONS, "the answer cites no passage"))
    weak = [c for c in citations if not c.verified]
    if weak:
        listed = ", ".join(f"[{c.marker}] ({c.support:.2f})" for c in weak)
        problems.append(Problem(ProblemKind.UNSUPPORTED, f"the cited passage does not clearly support the claim: "
                                                          f"{listed}"))
    return tuple(problems)


# Problems a repair turn can fix; weak support is reported, not repaired (similarity is too noisy a judge).
REPAIRABLE = frozenset({ProblemKind.WRONG_LANGUAGE, ProblemKind.UNKNOWN_MARKER, ProblemKind.NO_CITATIONS})
