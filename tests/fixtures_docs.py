"""Builders of real document files (PDF via reportlab, DOCX via python-docx) for the connector tests."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence

import docx
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

# Adobe's Japanese CID font ships with reportlab (no font file needed) and pdfium maps it back to Unicode.
JAPANESE_FONT = "HeiseiMin-W3"

PNG_BYTES = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"


def pdf_bytes(
    pages: Sequence[tuple[str, Sequence[str]]],
    *,
    title: str | None = None,
    encrypt: str | None = None,
    outline: Sequence[tuple[int, str, int]] = (),
) -> bytes:
    """Return a PDF with one page per ``(font, lines)`` entry; the Japanese CID font is registered on demand.

    ``outline`` holds bookmarks as ``(level, title, page index)``, level 0 at the top, in document order.
    """
    pdfmetrics.registerFont(UnicodeCIDFont(JAPANESE_FONT))
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, encrypt=encrypt, invariant=True)
    if title is not None:
        pdf.setTitle(title)
    for index, (font, lines) in enumerate(pages):
        for number, (_, _, page) in enumerate(outline):
            if page == index:
                pdf.bookmarkPage(f"entry-{number}")  # reportlab keys outline entries by destination
        pdf.setFont(font, 12)
        for number, line in enumerate(lines):
            pdf.drawString(72, 720 - 18 * number, line)
        pdf.showPage()
    for number, (level, text, _) in enumerate(outline):
        pdf.addOutlineEntry(text, f"entry-{number}", level=level)
    pdf.save()
    return buffer.getvalue()


def scanned_pdf_bytes() -> bytes:
    """Return a PDF whose only page is drawn shapes, like a scan without a text layer."""
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, invariant=True)
    pdf.rect(72, 600, 200, 100, fill=1)
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def docx_bytes(
    paragraphs: Sequence[tuple[str, str]],
    *,
    table: Sequence[Sequence[str]] = (),
    core_title: str = "",
) -> bytes:
    """Return a DOCX of ``(style, text)`` paragraphs (style "" for body text) followed by an optional table."""
    document = docx.Document()
    for style, text in paragraphs:
        document.add_paragraph(text, style=style or None)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for row, values in zip(grid.rows, table):
            for cell, value in zip(row.cells, values):
                cell.text = value
    document.core_properties.title = core_title
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def bloated_docx_bytes(padding: int) -> bytes:
    """Return a valid DOCX plus a member of ``padding`` zero bytes that compresses to almost nothing."""
    buffer = io.BytesIO(docx_bytes([("", "klein")]))
    with zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/media/padding.bin", b"\x00" * padding)
    return buffer.getvalue()
