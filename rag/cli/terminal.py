"""What reaches the terminal: text from documents, URLs, models and users is shown, never obeyed.

A heading may hold ``ESC ] 0 ;`` (retitle the terminal), ``ESC ] 52 ;`` (write the clipboard), ``ESC ] 8 ;``
(a disguised link) or ``ESC [ 5 m`` (blink), and a title U+202E (right-to-left override), which would
reorder the columns around it. ``SafeConsole`` passes every text segment it renders through ``printable()``,
so no rendering path (tables, panels, streamed answers, errors, progress) can forget; the styles rich
adds itself are not text and stay. ``--json`` output does not go through it and keeps the exact text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment

# C0 but tab and newline, DEL, C1 (0x9b is a one-byte CSI), and the bidi controls: marks, embeddings,
# overrides and isolates.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` without control characters (C0 but tab and newline, DEL, C1) and bidi controls, so printing
    it cannot steer the terminal: what an escape sequence carried stays readable (``]0;title``), inert."""
    # Removed, not replaced by a stand-in: each has zero width, so tables laid out before this runs stay
    # aligned and no visible character is cropped.
    return _CONTROL.sub("", text)


class SafeConsole(Console):
    """A rich Console whose rendered text is ``printable()``; rich's own control segments pass unchanged."""

    def render(self, renderable: RenderableType, options: ConsoleOptions | None = None) -> Iterable[Segment]:
        """The segments of ``renderable``, with their text made printable."""
        for segment in super().render(renderable, options):
            yield segment if segment.control else Segment(printable(segment.text), segment.style)


def console(stderr: bool = False) -> Console:
    """A SafeConsole on stdout (or stderr); made per call so the terminal's width and NO_COLOR are read then."""
    return SafeConsole(stderr=stderr)
