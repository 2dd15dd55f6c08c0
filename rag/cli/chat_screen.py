"""Where the chat prints: a terminal (answers streamed, then drawn with their citations) or a pipe.

In a pipe each answer is plain text or one JSON line on stdout; errors go to stderr.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum

from rich.console import Console, RenderableType
from rich.text import Text

from rag.answer.types import Answer
from rag.cli.render_answer import answer_json, answer_view
from rag.cli.render_chat import answer_plain


class Mode(Enum):
    """Where the chat runs: a terminal (streamed, drawn), or a pipe printing text or JSON lines."""

    TERMINAL = "terminal"
    TEXT = "text"
    JSON = "json"


@dataclass(frozen=True, slots=True)
class Screen:
    """Where the chat prints: answers to ``out``; errors (and, in JSON mode, everything else) to ``err``."""

    out: Console
    err: Console
    mode: Mode = Mode.TERMINAL

    def delta(self, text: str) -> None:
        """Part of an answer as it is written (shown in a terminal only)."""
        if self.mode is Mode.TERMINAL:
            self.out.out(text, end="", highlight=False)

    def answer(self, answer: Answer, streamed: str) -> None:
        """A finished answer: its citations panel under the streamed text, plain text, or one JSON line."""
        if self.mode is Mode.JSON:
            self.out.file.write(json.dumps(answer_json(answer), ensure_ascii=False) + "\n")
            self.out.file.flush()
        elif self.mode is Mode.TEXT:
            self.out.print(answer_plain(answer), markup=False, highlight=False, soft_wrap=True)
        else:
            self.out.print()
            # The streamed text stands unless the checks made the model rewrite it.
            self.out.print(answer_view(answer, text=streamed != answer.text))

    def show(self, view: RenderableType) -> None:
        """A command's result."""
        (self.err if self.mode is Mode.JSON else self.out).print(view)

    def note(self, message: str) -> None:
        """A one-line confirmation."""
        self.show(Text(message, style="dim"))

    def error(self, message: str) -> None:
        """One red line."""
        # soft_wrap: a long message stays one line (the terminal folds it) so scripts can match it whole.
        self.err.print(Text.assemble(("error: ", "bold red"), message), highlight=False, soft_wrap=True)

    def stopped(self) -> None:
        """Ctrl-C ended an answer or a command."""
        self.out.print(Text("\n(stopped; that answer is not kept)", style="yellow"))
