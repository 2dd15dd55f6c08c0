"""A conversation as Markdown: each question, its answer, and the cited passages with the quoted sentences in bold."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from itertools import pairwise

from rag.answer.types import Answer, Citation
from rag.cli.render_answer import by_marker, quoted, where
from rag.types import one_line

# Characters of passage kept either side of the cited sentences.
CONTEXT = 160


def _bold(text: str) -> str:
    """``text`` in bold, any space around it kept outside the markers (Markdown needs them to hug the words)."""
    core = text.strip()
    return text[: len(text) - len(text.lstrip())] + f"**{core}**" + text[len(text.rstrip()):] if core else text


def _joined(pieces: Sequence[tuple[str, Citation | None]]) -> list[tuple[str, Citation | None]]:
    """The pieces without the whitespace of a line break that one_line joins (between two Chinese or
    Japanese characters) where it touches a boundary between pieces: bold markers placed there would
    otherwise stand between the two characters, and the break would become a space. Next to a quote that
    ends (or starts) in punctuation the space stays: Markdown closes ``**`` after punctuation only before
    a space or punctuation, and opens it before punctuation only after one (CommonMark's flanking rules),
    so ``**句子。**下一句`` would not be bold."""
    text = "".join(piece for piece, _ in pieces)
    dropped: set[int] = set()
    boundary = 0
    for (piece, cited), (_, cited_next) in pairwise(pieces):
        boundary += len(piece)
        start, end = boundary, boundary
        while start > 0 and text[start - 1].isspace():
            start -= 1
        while end < len(text) and text[end].isspace():
            end += 1
        if not 0 < start < end < len(text):
            continue
        # A marker next to punctuation must keep the space on its outer side to hold in Markdown.
        marker_by_punctuation = ((cited is not None and _punctuation(text[start - 1]))
                                 or (cited_next is not None and _punctuation(text[end])))
        if not marker_by_punctuation and one_line(text[start - 1:end + 1]) == text[start - 1] + text[end]:
            dropped.update(range(start, end))
    kept, offset = [], 0
    for piece, c in pieces:
        kept.append(("".join(ch for i, ch in enumerate(piece, offset) if i not in dropped), c))
        offset += len(piece)
    return kept


def _punctuation(char: str) -> bool:
    return unicodedata.category(char).startswith("P")


def quoted_passage(citations: Sequence[Citation], context: int = CONTEXT) -> str:
    """The passage around the cited sentences, on one line, each sentence in bold."""
    line = one_line("".join(_bold(text) if c else text for text, c in _joined(quoted(citations, context))))
    return "\\" + line if line.startswith("#") else line  # a passage opening with its heading is no heading here


def _source(group: Sequence[Citation]) -> list[str]:
    c = group[0]
    weakest = min(q.support for q in group)
    checked = "verified" if all(q.verified for q in group) else f"unverified, support {weakest:.2f}"
    return [f"- **[{c.marker}]** {c.title} · {where(c.uri, c.page, c.heading)} · `{c.language}` ({checked})",
            f"  > {quoted_passage(group)}"]


def _answer(number: int, answer: Answer) -> list[str]:
    lines = [f"## {number}. {one_line(answer.question)}", ""]
    if one_line(answer.standalone) != one_line(answer.question):
        lines += [f"*Searched as: {one_line(answer.standalone)}*", ""]
    lines += [answer.text.strip(), ""]
    lines += [f"> ⚠ {p.message}" for p in answer.problems] + ([""] if answer.problems else [])
    groups = by_marker(answer.citations)
    if groups:
        lines += ["**Sources**", ""] + [line for group in groups for line in _source(group)] + [""]
    lines += [f"<sub>{answer.language} · {answer.generator}</sub>", ""]
    return lines


def conversation_markdown(answers: Sequence[Answer], collection: str) -> str:
    """The conversation as a Markdown document."""
    lines = ["# Rosetta conversation", "", f"Collection `{collection}` · {len(answers)} answer{'' if len(answers) == 1 else 's'}", ""]
    for number, answer in enumerate(answers, 1):
        lines += _answer(number, answer)
    return "\n".join(lines).rstrip() + "\n"
