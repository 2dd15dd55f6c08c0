"""How the chat's commands look: /sources, /open, /translate, /help, and answers as plain text for pipes.

Answers themselves are drawn by ``rag/cli/render_answer.py``, shared with ``rosetta ask``.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from rag.answer.dialogue import Passage
from rag.answer.types import Answer, Citation
from rag.cli.chat_commands import COMMANDS
from rag.cli.render_answer import by_marker, source_name, where
from rag.types import Chunk, one_line

# Characters of each passage /sources shows; /open shows them whole.
EXCERPT = 280


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    flat = one_line(text)
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _cited(citations: Sequence[Citation], number: int) -> Text:
    marks = [c.verified for c in citations if c.marker == number]
    if not marks:
        return Text("")
    return Text("✓ cited", style="green") if any(marks) else Text("? cited", style="yellow")


def sources_table(answer: Answer) -> Table:
    """The answer's passages: number, whether it was cited (and verified), source and place, language, text."""
    table = Table(show_lines=True, expand=True, title=f"Passages for: {answer.question}", title_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("cited", no_wrap=True)
    table.add_column("source", ratio=1, overflow="fold")
    table.add_column("lang", no_wrap=True)
    table.add_column("passage (/open N shows it whole)", ratio=3, overflow="fold")
    for p in answer.passages:
        chunk = p.hit.chunk
        table.add_row(f"[{p.number}]", _cited(answer.citations, p.number),
                      Text(f"{p.hit.title}\n{where(chunk.document_uri, chunk.page, chunk.heading)}"), chunk.language,
                      excerpt(chunk.text))
    return table


def _place(chunk: Chunk) -> str:
    parts = [f"chunk {chunk.ordinal + 1}"] + ([f"p. {chunk.page}"] if chunk.page is not None else []) + (
        [" › ".join(chunk.heading)] if chunk.heading else [])
    return " · ".join(parts)


def context_view(passage: Passage, chunks: Sequence[Chunk]) -> Panel:
    """Passage ``[n]`` whole, between its neighbours (dimmed), in reading order."""
    parts: list[RenderableType] = []
    for chunk in chunks:
        own = chunk.id == passage.hit.chunk.id
        label = f"▶ [{passage.number}] {_place(chunk)}" if own else f"  {_place(chunk)}"
        parts += [Text(label, style="bold cyan" if own else "dim"), Text(chunk.text.strip(), style="" if own else "dim"),
                  Text("")]
    hit = passage.hit
    return Panel(Group(*parts[:-1]), title=f"[{passage.number}] {hit.title} · {source_name(hit.chunk.document_uri)}",
                 subtitle=hit.chunk.language, title_align="left", subtitle_align="right")


def translation_view(passage: Passage, language: str, translation: str) -> Panel:
    """Passage ``[n]`` as translated into ``language``."""
    chunk = passage.hit.chunk
    return Panel(Text(translation), title=f"[{passage.number}] {passage.hit.title} · {chunk.language} → {language}",
                 subtitle="machine translation; /open shows the original", title_align="left",
                 subtitle_align="right")


def help_table() -> Table:
    """The slash commands and what they do."""
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    table.add_row("any text", "a question in any language; follow-ups use the conversation")
    for usage, description in COMMANDS:
        table.add_row(usage, description)
    return table


def _source_lines(group: Sequence[Citation]) -> list[str]:
    first = group[0]
    quotes = [f"    {'verified' if c.verified else f'unverified ({c.support:.2f})'}: “{excerpt(c.quote, 400)}”"
              for c in group]
    return [f"[{first.marker}] {first.title} · {where(first.uri, first.page, first.heading)} ({first.language})",
            *quotes]


def answer_plain(answer: Answer) -> str:
    """An answer for pipes and scripts: its text, then each cited source with its quotes, then problems."""
    lines = [answer.text.strip(), ""]
    lines += [line for group in by_marker(answer.citations) for line in _source_lines(group)]
    lines += [f"warning: {p.message}" for p in answer.problems]
    return "\n".join(lines).rstrip() + "\n"
