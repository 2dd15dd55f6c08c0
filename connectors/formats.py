"""Which parser reads which file extension or media type; parser modules are imported on first use."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from rag.types import Document

Parser = Callable[[bytes, str], Document]

EXTENSIONS: dict[str, str] = {
    ".txt": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".docx": "docx",
}

MEDIA_TYPES: dict[str, str] = {
    "text/plain": "text",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
}


def supported_extensions() -> str:
    """Return the supported extensions as a comma-separated list, for error messages."""
    return ", ".join(sorted(EXTENSIONS))


def parser_for(kind: str, *, max_bytes: int, charset: str | None = None) -> Parser:
    """Return the parser for a format name from ``EXTENSIONS``/``MEDIA_TYPES``.

    ``charset`` is a declared text encoding (an HTTP header); ``max_bytes`` bounds what a DOCX may unpack to.
    """
    # Imported here so that loading plain text never pays for pdfium, lxml or python-docx.
    if kind == "text":
        from connectors.text import parse_text

        return partial(parse_text, charset=charset)
    if kind == "markdown":
        from connectors.markdown import parse_markdown

        return partial(parse_markdown, charset=charset)
    if kind == "html":
        from connectors.html import parse_html

        return partial(parse_html, charset=charset)
    if kind == "pdf":
        from connectors.pdf import parse_pdf

        return parse_pdf
    if kind == "docx":
        from connectors.docx import UNZIP_FACTOR, parse_docx

        return partial(parse_docx, max_unpacked=max_bytes * UNZIP_FACTOR)
    raise ValueError(f"unknown format {kind!r}; expected one of {sorted(set(EXTENSIONS.values()))}")
