"""Word (.docx) through python-docx: paragraphs and tables in order, sectioned by Title/Heading N styles.

A table whose first row is its header (Word's "Header Row" option, or a repeated header row) becomes one
line per row with each cell after its header (``tables.table_lines``); other tables one line per row.
"""

from __future__ import annotations

import io
import re
import shutil
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from docx.document import Document as WordDocument
from docx.opc.constants import CONTENT_TYPE
from docx.opc.exceptions import PackageNotFoundError
from docx.oxml.ns import qn
from docx.package import Package
from docx.parts.document import DocumentPart
from docx.table import Table, _Row
from docx.text.paragraph import Paragraph
from lxml import etree

from connectors.content import DEFAULT_MAX_BYTES, describe, require_content, require_text, title_from_uri
from connectors.outline import Block, join_blocks
from connectors.tables import table_lines
from rag.errors import ConnectorError
from rag.types import Document

# A DOCX is a zip; its parts may unpack to this many times the size limit before we call it a zip bomb.
UNZIP_FACTOR = 10
DOCX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
# tblLook's legacy hex value: bit 0x0020 is "apply the header-row formatting" (ECMA-376 17.4.56).
FIRST_ROW_LOOK = 0x0020
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
    package = repack(data, uri)
    with _docx_errors(uri):
        word = _open_word(package, uri)
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


def _open_word(package: bytes, uri: str) -> WordDocument:
    """python-docx's ``Document()``, whose refusal of other OOXML names the stream object, not the file."""
    part = Package.open(io.BytesIO(package)).main_document_part
    if not isinstance(part, DocumentPart) or part.content_type != CONTENT_TYPE.WML_DOCUMENT_MAIN:
        raise ConnectorError(f"{uri}: not a Word document but {part.content_type} (a spreadsheet or "
                             "presentation?); save it as .docx or fix the extension")
    document: WordDocument = part.document
    return document


def check_unpacked_size(data: bytes, uri: str, limit: int) -> None:
    """Raise ConnectorError if the ZIP's members unpack to more than ``limit`` bytes (a zip bomb)."""
    with _docx_errors(uri), zipfile.ZipFile(io.BytesIO(data)) as archive:
        # Reading in pieces (repack) never inflates past a member's declared file_size, so these bound it.
        unpacked = sum(info.file_size for info in archive.infolist())
    if unpacked > limit:
        raise ConnectorError(
            f"{uri}: DOCX unpacks to {unpacked} bytes, over the limit of {limit} (a zip bomb?); "
            "if the file is genuine, raise the limit with --max-bytes"
        )


def repack(data: bytes, uri: str) -> bytes:
    """Return the ZIP re-packed uncompressed from its members, each read in bounded pieces.

    Asked for a whole member, zipfile inflates all its compressed data in one call (up to 2 GiB) before it
    cuts the output at the declared size and the CRC check fails: a 1 MB file whose headers lie costs 2 GB.
    Read in pieces, inflation stops at the declared size, which check_unpacked_size has bounded.
    """
    buffer = io.BytesIO()
    with (_docx_errors(uri), zipfile.ZipFile(io.BytesIO(data)) as source,
          zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as target):
        # One copy per name, the last one as zipfile reads it, so a duplicate name is not written twice.
        for info in {info.filename: info for info in source.infolist()}.values():
            _require_readable(info, uri)
            if not info.is_dir():
                with source.open(info) as member, target.open(info.filename, "w", force_zip64=True) as copy:
                    shutil.copyfileobj(member, copy, 1 << 16)
    return buffer.getvalue()


def _require_readable(info: zipfile.ZipInfo, uri: str) -> None:
    if info.flag_bits & 0x1:
        raise ConnectorError(f"{uri}: DOCX member {info.filename!r} is encrypted; save the document again "
                             "without a password and re-ingest")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        raise ConnectorError(f"{uri}: DOCX member {info.filename!r} uses ZIP compression method "
                             f"{info.compress_type}, which cannot be read; re-save it from Word or LibreOffice")


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
    """Yield the table's lines: with a header row, ``header: value`` cells (tables.table_lines), else
    each non-empty row's cells joined by `` | ``."""
    rows = [row_cells(row) for row in table.rows]
    if len(rows) > 1 and has_header_row(table):
        yield from table_lines(rows[0], rows[1:])
    else:
        yield from (" | ".join(cells) for cells in rows if any(cells))


def row_cells(row: _Row) -> list[str]:
    """Return the text of each cell of a row, a merged cell once."""
    cells: list[str] = []
    seen: set[object] = set()
    for cell in row.cells:
        # A merged cell is returned once per grid column it spans; its XML element is the identity.
        if cell._tc not in seen:
            seen.add(cell._tc)
            cells.append(" ".join(cell.text.split()))
    return cells


def has_header_row(table: Table) -> bool:
    """True if the first row repeats as a header, or the table look turns the header row on."""
    first = table._tbl.tr_lst[0]
    if first.trPr is not None and first.trPr.find(qn("w:tblHeader")) is not None:
        return True
    look = table._tbl.tblPr.find(qn("w:tblLook"))
    if look is None:
        return False
    flag = look.get(qn("w:firstRow"))
    if flag is not None:
        return flag in ("1", "true", "on")
    value = look.get(qn("w:val"), "0")
    return all(c in "0123456789abcdefABCDEF" for c in value) and bool(int(value or "0", 16) & FIRST_ROW_LOOK)


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
