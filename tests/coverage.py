"""What chunking may leave out of its chunks: whitespace, and headings standing alone (rag.chunk.heading_only)."""

from __future__ import annotations

from rag.chunk import heading_only
from rag.types import Document


def assert_gaps_hold_only_lone_headings(document: Document, spans: list[tuple[int, int]]) -> None:
    """Between and around ``spans`` there is only whitespace and, per section, a heading with nothing under it."""
    edges = [0, *(x for span in spans for x in span), len(document.text)]
    for a, b in zip(edges[::2], edges[1::2]):
        for section in document.tiling():
            low, high = max(a, section.start), min(b, section.end)
            if low < high and document.text[low:high].strip():
                assert heading_only(document.text[low:high], section), document.text[low:high]
