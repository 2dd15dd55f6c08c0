"""Word (.docx) through python-docx: paragraphs and tables in order, sectioned by Title/Heading N styles."""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import docx
from docx.document import Document as WordDocument
from docx.opc.exceptions import PackageNotFoundError
from docx.table import Table
from docx.text.paragraph import Paragraph
from lxml import etree

from connectors.content import describe, require_content, require_text, title_from_uri
from connectors.formats import DEFAULT_MAX_BYTES, UNZIP_FACTOR
from connectors.outline import Block, join_blocks
from rag.errors import ConnectorError
from rag.types import Document

DOCX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
# Word stores built-in style names in English ("heading 1") whatever the UI language; python-docx title-cases them.
HEADING_STYLE = re.compile(r"Heading ([1-9])\Z")


def parse_docx(data: bytes, uri: str, max_unpacked: int = DEFAULT_MAX_BYTES * UNZIP_FACTOR) -> Document:
    """Return a Document of a DOCX's paragraphs and table rows; raise ConnectorError if it is not a sound DOCX."""
    require_content(data, uri)
    if not data.startswith(b"PK\x03\x04"):
        raise ConnectorError(
            f"{uri}: not a DOCX (no ZIP header), looks like {describe(data)}; "
            "fix the extension, or save it from Word as .docx"
        )
    check_unpacked_size(data, uri, max_unpacked)
    with _docx_errors(uri):
        word = docx.Document(io.BytesIO(data))
        blocks = list(extract_blocks(word))
        core_title = (word.core_properties.title or "").strip()
    text, sections = join_blocks(blocks)
    require_text(text, uri)
    first_heading = next((block.text for block in blocks if block.level in (0, 1)), "")
    return Document(
        uri=uri,
        text=text,
        title=core_title or first_heading or title_from_uri(uri),
        sections=sections,
        content_type=DOCX_MEDIA_TYPE,
    )


def check_unpacked_size(data: bytes, uri: str, limit: int) -> None:
    """Raise ConnectorError if the ZIP's members unpack to more than ``limit`` bytes (a zip bomb)."""
    with _docx_errors(uri), zipfile.ZipFile(io.BytesIO(data)) as archive:
        # zipfile never inflates past a member's declared file_size, so the declared sizes are a safe bound.
        unpacked = sum(info.file_size for info in archive.infolist())
    if unpacked > limit:
        raise ConnectorError(
            f"{uri}: DOCX unpacks to {unpacked} bytes, over the limit of {limit} (a zip bomb?); "
            "if the file is genuine, raise the limit with --max-bytes"
        )


def extract_blocks(word: WordDocument) -> Iterator[Block]:
    """Yield the non-empty paragraphs and table rows of the body in order, headings with their level."""
    for item in word.iter_inner_content():
        if isinstance(item, Paragraph):
            text = item.text.strip()
            if text:
                yield Block(text, heading_level(item))
        elif isinstance(item, Table):
            yield from (Block(row) for row in table_rows(item))


def heading_level(paragraph: Paragraph) -> int | None:
    """Return 0 for the Title style, N for "Heading N", None for body text."""
    name = paragraph.style.name if paragraph.style is not None else ""
    if name == "Title":
        return 0
    match = HEADING_STYLE.match(name or "")
    return int(match.group(1)) if match else None


def table_rows(table: Table) -> Iterator[str]:
    """Yield each non-empty row as its cells' text joined by `` | `` (merged cells once)."""
    for row in table.rows:
        cells: list[str] = []
        seen: set[object] = set()
        for cell in row.cells:
            # A merged cell is returned once per grid column it spans; its XML element is the identity.
            if cell._tc not in seen:
                seen.add(cell._tc)
                cells.append(" ".join(cell.text.split()))
        if any(cells):
            yield " | ".join(cells)


@contextmanager
def _docx_errors(uri: str) -> Iterator[None]:
    """Map zipfile, python-docx and XML errors to ConnectorError with a fix."""
    try:
        yield
    except (zipfile.BadZipFile, zlib.error, EOFError, PackageNotFoundError, KeyError) as exc:
        raise ConnectorError(
            f"{uri}: corrupt or truncated DOCX ({exc}); re-save it from Word or LibreOffice and re-ingest"
        ) from exc
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise ConnectorError(
            f"{uri}: not a readable Word document ({exc}); re-save it from Word or LibreOffice as .docx"
        ) from exc
