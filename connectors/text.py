"""Plain text (.txt, text/plain): decoded as it is, one section."""

from __future__ import annotations

from connectors.content import decode, require_text, title_from_uri
from rag.types import Document


def parse_text(data: bytes, uri: str, charset: str | None = None) -> Document:
    """Return a Document of the decoded text (its encoding in metadata); raise ConnectorError for empty or binary data."""
    decoded = decode(data, uri, charset)
    require_text(decoded.text, uri)
    return Document(uri=uri, text=decoded.text, title=title_from_uri(uri), metadata=decoded.metadata(),
                    content_type="text/plain")
