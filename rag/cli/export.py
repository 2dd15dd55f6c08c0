"""A conversation as Markdown: each question, its answer, and the cited passages with the quoted sentences in bold."""

from __future__ import annotations

from collections.abc import Sequence

from rag.answer.types import Answer, Citation
from rag.cli.render_answer import by_marker, quoted, where
from rag.types import one_line

# Characters of passage kept either side of the cited sentences.
CONTEXT = 160


def _flat(text: str) -> str:
    return one_line(text)


def _bold(text: str) -> str:
    """``text`` in bold, any space around it kept outside the markers (Markdown needs them to hug the words)."""
    core = text.strip()
    return text[: len(text) - len(text.lstrip())] + f"**{core}**" + text[len(text.rstrip()):] if core else text


def quoted_passage(citations: Sequence[Citation], context: int = CONTEXT) -> str:
    """The passage around the cited sentences, on one line, each sentence in bold."""
    line = _flat("".join(_bold(text) if c else text for text, c in quoted(citations, context)))
    return "\\" + line if line.startswith("#") else line  # a passage opening with its heading is no heading here


def _source(group: Sequence[Citation]) -> list[str]:
    c = group[0]
    weakest = min(q.support for q in group)
    checked = "verified" if all(q.verified for q in group) else f"unverified, support {weakest:.2f}"
    return [f"- **[{c.marker}]** {c.title} · {where(c.uri, c.page, c.heading)} · `{c.language}` ({checked})",
            f"  > {quoted_passage(group)}"]


def _answer(number: int, answer: Answer) -> list[str]:
    lines = [f"## {number}. {_flat(answer.question)}", ""]
    if _flat(answer.standalone) != _flat(answer.question):
        lines += [f"*Searched as: {_flat(answer.standalone)}*", ""]
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
