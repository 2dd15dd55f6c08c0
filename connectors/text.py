"""Plain text (.txt, text/plain): decoded as it is, one section."""

from __future__ import annotations

from connectors.content import decode, require_text, title_from_uri
from rag.types import Document


def parse_text(data: bytes, uri: str, charset: str | None = None) -> Document:
    """Return a Document of UTF-8 (or ``charset``) text; raise ConnectorError for empty or binary data."""
    text = decode(data, uri, charset)
    require_text(text, uri)
    return Document(uri=uri, text=text, title=title_from_uri(uri), content_type="text/plain")
