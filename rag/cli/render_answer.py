"""How answers look: the text with its markers, a citations panel quoting the sources, problems, the trace.

Shared by ``rosetta ask`` and ``rosetta chat``; ``answer_json`` is the ``--json`` shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from rag.answer.citations import citing_markers
from rag.answer.dialogue import Passage
from rag.answer.types import Answer, Citation, Step

# Characters of context shown around a cited sentence in the panel.
CONTEXT = 160


def source_name(uri: str) -> str:
    """A file URI as a path (relative to the working directory when below it); other URIs as they are."""
    if not uri.startswith("file://"):
        return uri
    path = Path(unquote(uri.removeprefix("file://")))
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def where(uri: str, page: int | None, heading: Sequence[str]) -> str:
    """``file · p. 3 · Wartung › Luftfilter``."""
    parts = [source_name(uri)] + ([f"p. {page}"] if page is not None else []) + ([" › ".join(heading)] if heading
                                                                               else [])
    return " · ".join(parts)


def answer_text(answer: Answer) -> Text:
    """The answer with its ``[n]`` markers coloured: verified green, unverified yellow, unknown red."""
    verified = {c.marker for c in answer.citations if c.verified}
    known = {c.marker for c in answer.citations}
    text = Text(answer.text)
    for start, end, found in citing_markers(answer.text):
        numbers = set(found)
        style = "bold green" if numbers <= verified else "yellow" if numbers <= known else "bold red"
        text.stylize(style, start, end)
    return text


def quoted(citations: Sequence[Citation], context: int = CONTEXT) -> list[tuple[str, Citation | None]]:
    """The passage the citations share, cut to ``context`` characters around their quotes, as pieces:
    ``(text, citation)`` for a quoted sentence, ``(text, None)`` between (with ``…`` where it was cut)."""
    passage = citations[0].passage
    spans, cursor = [], 0
    for start, c in sorted(((c.passage.find(c.quote), c) for c in citations), key=lambda pair: pair[0]):
        if start >= cursor:  # a quote not in the passage (-1) or overlapping the previous one is left out
            spans.append((start, start + len(c.quote), c))
            cursor = start + len(c.quote)
    first = spans[0][0] if spans else 0
    low, high = max(0, first - context), min(len(passage), (spans[-1][1] if spans else 0) + context)
    pieces: list[tuple[str, Citation | None]] = [("…" if low else "", None)]
    cursor = low
    for start, end, c in spans:
        pieces += [(passage[cursor:start], None), (passage[start:end], c)]
        cursor = end
    return pieces + [(passage[cursor:high] + ("…" if high < len(passage) else ""), None)]


def highlighted(citations: Citation | Sequence[Citation], context: int = CONTEXT) -> Text:
    """The cited passage around its quotes, each quoted sentence highlighted (verified ones bold)."""
    group = [citations] if isinstance(citations, Citation) else citations
    text = Text()
    for piece, c in quoted(group, context):
        text.append(piece, style=None if c is None else "bold underline" if c.verified else "underline yellow")
    return text


def distinct(citations: Sequence[Citation]) -> list[Citation]:
    """The citations with repeats of the same marker and quote left out, in order."""
    seen: set[tuple[int, str]] = set()
    kept = []
    for c in citations:
        if (c.marker, c.quote) not in seen:
            seen.add((c.marker, c.quote))
            kept.append(c)
    return kept


def by_marker(citations: Sequence[Citation]) -> list[list[Citation]]:
    """The distinct citations grouped by marker, in the order the markers first appear."""
    groups: dict[int, list[Citation]] = {}
    for c in distinct(citations):
        groups.setdefault(c.marker, []).append(c)
    return list(groups.values())


def citations_table(citations: Sequence[Citation]) -> Table:
    """One row per cited passage: marker, verified, source and place, language, the passage with its quotes."""
    table = Table(show_lines=True, expand=True, title="Sources", title_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("ok", no_wrap=True)
    table.add_column("source", ratio=1, overflow="fold")
    table.add_column("lang", no_wrap=True)
    table.add_column("original passage (cited sentences underlined)", ratio=3, overflow="fold")
    for group in by_marker(citations):
        verified = all(c.verified for c in group)
        weakest = min(c.support for c in group)
        mark = Text("✓", style="green") if verified else Text(f"? {weakest:.2f}", style="yellow")
        marker = Text(f"[{group[0].marker}]", style="green" if verified else "yellow")
        c = group[0]
        table.add_row(marker, mark, Text(f"{c.title}\n{where(c.uri, c.page, c.heading)}"), c.language,
                      highlighted(group))
    return table


def trace_line(trace: Sequence[Step], generator: str = "") -> Text:
    """One dim line: the generator, then each step with its hits and time."""
    parts = [generator] if generator else []
    for step in trace:
        label = f"{step.kind} {step.hits} hits" if step.kind == "search" else step.kind
        parts.append(f"{label} {step.seconds * 1000:.0f} ms")
    return Text(" · ".join(parts), style="dim")


def answer_view(answer: Answer, text: bool = True) -> RenderableType:
    """The answer panel (``text=False`` when it was streamed already), its sources, problems and trace."""
    parts: list[RenderableType] = []
    if text:
        parts.append(Panel(answer_text(answer), title=f"answer ({answer.language})", subtitle=answer.generator,
                           title_align="left", subtitle_align="right"))
    if answer.citations:
        parts.append(citations_table(answer.citations))
    for problem in answer.problems:
        parts.append(Text(f"⚠ {problem.message}", style="yellow"))
    if answer.repaired:
        parts.append(Text("(answer repaired once after the checks)", style="dim"))
    parts.append(trace_line(answer.trace, answer.generator))
    return Group(*parts)


def _citation_json(c: Citation) -> dict[str, Any]:
    return {"marker": c.marker, "chunk_id": c.chunk_id, "uri": c.uri, "title": c.title, "page": c.page,
            "heading": list(c.heading), "language": c.language, "quote": c.quote, "quote_start": c.quote_start,
            "quote_end": c.quote_end, "claim": c.claim, "support": round(c.support, 4), "verified": c.verified}


def _passage_json(p: Passage) -> dict[str, Any]:
    chunk = p.hit.chunk
    return {"number": p.number, "chunk_id": chunk.id, "uri": chunk.document_uri, "title": p.hit.title,
            "page": chunk.page, "heading": list(chunk.heading), "language": chunk.language, "text": chunk.text,
            "collection": p.hit.collection}


def _step_json(s: Step) -> dict[str, Any]:
    return {"kind": s.kind, "ms": round(s.seconds * 1000, 1), "query": s.query, "collection": s.collection,
            "hits": s.hits, "passages": list(s.passages), "prompt_tokens": s.prompt_tokens,
            "completion_tokens": s.completion_tokens, "detail": s.detail}


def answer_json(answer: Answer) -> dict[str, Any]:
    """The Answer as JSON-ready data."""
    return {
        "question": answer.question, "standalone": answer.standalone, "language": answer.language,
        "detected_language": answer.detected_language, "generator": answer.generator, "text": answer.text,
        "ok": answer.ok, "repaired": answer.repaired,
        "problems": [{"kind": p.kind.value, "message": p.message} for p in answer.problems],
        "citations": [_citation_json(c) for c in answer.citations],
        "passages": [_passage_json(p) for p in answer.passages],
        "trace": [_step_json(s) for s in answer.trace],
    }
