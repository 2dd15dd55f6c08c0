"""PDF (.pdf, application/pdf) through pypdfium2: the text layer of each page, one section per page."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from connectors.content import describe, require_content, title_from_uri
from connectors.outline import Mark, tile
from rag.errors import ConnectorError
from rag.types import Document

# The PDF spec lets readers accept the header anywhere in the first KiB.
HEADER_WINDOW = 1024
# Placeholders producers write when nobody set a title (reportlab writes "untitled").
NO_TITLE = frozenset({"", "untitled"})


def parse_pdf(data: bytes, uri: str) -> Document:
    """Return a Document of the PDF's text, pages separated by a newline, each page a section with its number."""
    require_content(data, uri)
    if b"%PDF-" not in data[:HEADER_WINDOW]:
        raise ConnectorError(
            f"{uri}: not a PDF (no %PDF header), looks like {describe(data)}; fix the file or its extension"
        )
    with _pdfium_errors(uri), _opened(data) as pdf:
        pages = [page_text(pdf, index) for index in range(len(pdf))]
        # Producers leave NULs in metadata strings (UTF-16 padding); Postgres text cannot hold them.
        title = str(pdf.get_metadata_value("Title")).replace("\x00", "").strip()
    title = "" if title.lower() in NO_TITLE else title
    if not "".join(pages).strip():
        raise ConnectorError(
            f"{uri}: the PDF has no text layer (a scan?); OCR it first (e.g. `ocrmypdf in.pdf out.pdf`) "
            "and re-ingest"
        )
    text, marks = _join(pages)
    return Document(
        uri=uri,
        text=text,
        title=title or title_from_uri(uri),
        sections=tile(marks, len(text)),
        metadata={"pages": len(pages)},
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


def _join(pages: list[str]) -> tuple[str, list[Mark]]:
    marks, offset = [], 0
    for number, page in enumerate(pages, start=1):
        marks.append(Mark(offset, (), number))
        offset += len(page) + 1
    return "\n".join(pages), marks


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
