"""PDF (.pdf, application/pdf) through pypdfium2: the text layer of each page, sectioned by page and outline.

Each page starts a section with its number. The document outline (bookmarks) gives the heading path: an
entry applies from where its title appears on its target page (or from that page's start when the
title is not found in the text), so a chunk on page 37 carries ("Chapter 4", "Filters").
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from connectors.content import describe, require_content, title_from_uri
from connectors.outline import HeadingStack, Mark, nest, path, tile
from rag.errors import ConnectorError
from rag.types import Document, JsonValue

# The PDF spec lets readers accept the header anywhere in the first KiB.
HEADER_WINDOW = 1024
# Placeholders producers write when nobody set a title (reportlab writes "untitled").
NO_TITLE = frozenset({"", "untitled"})
# Deeper outlines are a broken or hostile file; pypdfium2 skips the subtree past it.
MAX_OUTLINE_DEPTH = 15


@dataclass(frozen=True, slots=True)
class Entry:
    """One outline (bookmark) entry: its depth (1 = top), title and 0-based target page."""

    level: int
    title: str
    page: int


def parse_pdf(data: bytes, uri: str) -> Document:
    """Return a Document of the PDF's text, pages separated by a newline, each page a section with its number."""
    require_content(data, uri)
    if b"%PDF-" not in data[:HEADER_WINDOW]:
        raise ConnectorError(
            f"{uri}: not a PDF (no %PDF header), looks like {describe(data)}; fix the file or its extension"
        )
    with _pdfium_errors(uri), _opened(data) as pdf:
        pages = [page_text(pdf, index) for index in range(len(pdf))]
        entries = outline(pdf)
        # Producers leave NULs in metadata strings (UTF-16 padding); Postgres text cannot hold them.
        title = str(pdf.get_metadata_value("Title")).replace("\x00", "").strip()
    title = "" if title.lower() in NO_TITLE else title
    if not "".join(pages).strip():
        raise ConnectorError(
            f"{uri}: the PDF has no text layer (a scan?); OCR it first (e.g. `ocrmypdf in.pdf out.pdf`) "
            "and re-ingest"
        )
    marks = outline_marks(pages, entries)
    metadata: dict[str, JsonValue] = {"pages": len(pages)}
    if entries:
        metadata["outline_entries"] = len(entries)
    return Document(
        uri=uri,
        text="\n".join(pages),
        title=title or title_from_uri(uri),
        sections=tile(marks, sum(map(len, pages)) + len(pages) - 1),
        metadata=metadata,
        content_type="application/pdf",
    )


def page_text(pdf: pdfium.PdfDocument, index: int) -> str:
    """Return the text layer of page ``index`` (0-based) with newlines normalised to ``\\n``."""
    page = pdf[index]
    try:
        textpage = page.get_textpage()
        try:
            text = str(textpage.get_text_range())
        finally:
            textpage.close()
    finally:
        page.close()
    return text.replace("\r\n", "\n").replace("\r", "\n")


def outline(pdf: pdfium.PdfDocument) -> list[Entry]:
    """Return the outline entries that point at a page, in document order."""
    entries = []
    for bookmark in pdf.get_toc(max_depth=MAX_OUTLINE_DEPTH):
        dest = bookmark.get_dest()
        page = dest.get_index() if dest is not None else None
        title = " ".join(bookmark.get_title().replace("\x00", "").split())
        if page is not None and title and page < len(pdf):
            entries.append(Entry(bookmark.level + 1, title, page))
    return entries


def outline_marks(pages: Sequence[str], entries: Sequence[Entry]) -> list[Mark]:
    """Return a mark at each page start and at each outline entry's title on its page, with heading paths."""
    marks: list[Mark] = []
    stack: HeadingStack = ()
    offset = 0
    by_page: dict[int, list[Entry]] = {}
    for entry in entries:
        by_page.setdefault(entry.page, []).append(entry)
    for index, page in enumerate(pages):
        placed = _place(by_page.get(index, []), page)
        for position, entry in placed:
            if position == 0:
                stack = nest(stack, entry.level, entry.title)
        marks.append(Mark(offset, path(stack), index + 1))
        for position, entry in placed:
            if position > 0:
                stack = nest(stack, entry.level, entry.title)
                if marks[-1].start == offset + position:
                    marks.pop()
                marks.append(Mark(offset + position, path(stack), index + 1))
        offset += len(page) + 1
    return marks


def _place(entries: Sequence[Entry], page: str) -> list[tuple[int, Entry]]:
    """Pair each entry with where its title starts on the page, searching on from the previous one."""
    placed, cursor = [], 0
    for entry in entries:
        words = map(re.escape, entry.title.split())
        found = re.compile(r"\s+".join(words)).search(page, cursor)
        cursor = found.start() if found else cursor
        placed.append((cursor, entry))
    return placed


@contextmanager
def _opened(data: bytes) -> Iterator[pdfium.PdfDocument]:
    pdf = pdfium.PdfDocument(data)
    try:
        yield pdf
    finally:
        pdf.close()


@contextmanager
def _pdfium_errors(uri: str) -> Iterator[None]:
    """Map pdfium's load and extraction errors to ConnectorError with a fix."""
    try:
        yield
    except pdfium.PdfiumError as exc:
        if getattr(exc, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD:
            raise ConnectorError(
                f"{uri}: encrypted PDF; decrypt it (e.g. `qpdf --decrypt --password=... in.pdf out.pdf`) "
                "and re-ingest"
            ) from exc
        raise ConnectorError(
            f"{uri}: corrupt or truncated PDF ({exc}); re-download it or repair it (e.g. `qpdf in.pdf out.pdf`)"
        ) from exc
