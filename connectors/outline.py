"""Heading paths and section tiling shared by the structured formats (Markdown, HTML, DOCX)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rag.types import Section

# Enclosing headings as (level, text), levels strictly increasing from the outermost.
HeadingStack = tuple[tuple[int, str], ...]


@dataclass(frozen=True, slots=True)
class Mark:
    """Where a section starts in the text, and the heading path (and page) it belongs to."""

    start: int
    heading: tuple[str, ...]
    page: int | None = None


def nest(stack: HeadingStack, level: int, text: str) -> HeadingStack:
    """Return the stack after a heading of ``level``: same-or-deeper headings close, this one opens."""
    return tuple(entry for entry in stack if entry[0] < level) + ((level, text),)


def path(stack: HeadingStack) -> tuple[str, ...]:
    """Return the heading texts of a stack, outermost first."""
    return tuple(text for _, text in stack)


def tile(marks: Sequence[Mark], length: int) -> tuple[Section, ...]:
    """Turn ascending section starts into Sections tiling ``[0, length)``; text before the first mark has no heading."""
    starts = list(marks)
    if not starts or starts[0].start > 0:
        starts.insert(0, Mark(0, ()))
    ends = [mark.start for mark in starts[1:]] + [length]
    return tuple(Section(mark.start, end, mark.page, mark.heading) for mark, end in zip(starts, ends))


@dataclass(frozen=True, slots=True)
class Block:
    """One line of extracted text; ``level`` is the heading level for a heading (0 for a title), else None."""

    text: str
    level: int | None = None


def join_blocks(blocks: Sequence[Block]) -> tuple[str, tuple[Section, ...]]:
    """Join blocks into one newline-separated text, sectioned at each heading with its heading path."""
    marks = []
    stack: HeadingStack = ()
    offset = 0
    for block in blocks:
        if block.level is not None:
            stack = nest(stack, block.level, block.text)
            marks.append(Mark(offset, path(stack)))
        offset += len(block.text) + 1
    text = "\n".join(block.text for block in blocks)
    return text, tile(marks, len(text))
