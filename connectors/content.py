"""Checks on raw bytes shared by the parsers: emptiness, binary content, magic numbers, decoding."""

from __future__ import annotations

import codecs
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

from connectors.charset import Decoded, detect
from rag.errors import ConnectorError

# The size limit of one source, unless the caller gives another (IngestConfig.max_bytes).
DEFAULT_MAX_BYTES = 50_000_000

# Byte-order marks name their encoding outright, so they win over any declared charset. UTF-32's
# little-endian mark begins with UTF-16's, so it is checked first.
BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# What a file really is when its extension lies; checked in order, first match wins.
MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "a PDF"),
    (b"PK\x03\x04", "a ZIP archive (or DOCX/XLSX/ODT)"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\xd0\xcf\x11\xe0", "an old binary Office file (.doc/.xls); save it as .docx"),
)


def describe(data: bytes) -> str:
    """Return what ``data`` looks like from its first bytes, e.g. ``a PNG image``."""
    for magic, name in MAGIC:
        if data.startswith(magic):
            return name
    return "unrecognised content"


def require_content(data: bytes, uri: str) -> None:
    """Raise ConnectorError if ``data`` is empty."""
    if not data:
        raise ConnectorError(f"{uri}: empty file (0 bytes); add content or remove it")


def require_text(text: str, uri: str) -> None:
    """Raise ConnectorError if ``text`` has nothing but whitespace."""
    if not text.strip():
        raise ConnectorError(f"{uri}: no text (only whitespace); add content or remove it")


def decode(data: bytes, uri: str, charset: str | None = None) -> Decoded:
    """Decode text bytes: a BOM first, then ``charset``, then UTF-8, then a confident detection.

    Binary data, an undecodable declared charset and an unsure detection raise ConnectorError.
    """
    require_content(data, uri)
    for bom, encoding in BOMS:
        if data.startswith(bom):
            return Decoded(require_no_nul(_decode_as(data[len(bom) :], uri, encoding), uri, encoding), encoding, "bom")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ConnectorError(
            f"{uri}: binary content (NUL byte at offset {nul}), looks like {describe(data)}; "
            "this is not a text file, so check its extension"
        )
    if charset:
        return Decoded(_decode_as(data, uri, charset), charset.lower(), "declared")
    try:
        return Decoded(data.decode("utf-8"), "utf-8", "utf-8")
    except UnicodeDecodeError as exc:
        return detect(data, uri, exc)


def require_no_nul(text: str, uri: str, source: str) -> str:
    """Return ``text``, or raise ConnectorError if it holds U+0000, which Postgres cannot store in text."""
    nul = text.find("\x00")
    if nul >= 0:
        raise ConnectorError(
            f"{uri}: NUL character (U+0000) at character {nul} of the {source} text; Postgres cannot store it, "
            "so remove it from the source"
        )
    return text


def _decode_as(data: bytes, uri: str, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except LookupError as exc:
        raise ConnectorError(
            f"{uri}: unknown text encoding {encoding!r}; convert it with `iconv -f <encoding> -t utf-8`"
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConnectorError(
            f"{uri}: not valid {encoding} at byte {exc.start}; "
            f"convert it with `iconv -f <encoding> -t utf-8` (e.g. -f latin1 or -f shift_jis)"
        ) from exc


def title_from_uri(uri: str) -> str:
    """Return a fallback title: the last path segment's stem, else the host (``file:///d/Guide.md`` -> Guide)."""
    parts = urlsplit(uri)
    stem = PurePosixPath(unquote(parts.path)).stem
    # A NUL (%00 decodes to one) is dropped: Postgres text cannot hold it.
    return (stem or parts.hostname or uri).replace("\x00", "")
