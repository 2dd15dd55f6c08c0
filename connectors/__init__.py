"""Connectors load native-language sources as Documents; ``CONNECTORS`` maps a name to a factory.

Each factory imports its module on call, so importing this package costs nothing. (The factories are
not named after the modules: ``import connectors.web`` would rebind a package attribute ``web``.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from connectors.content import DEFAULT_MAX_BYTES
from rag.errors import ConnectorError
from rag.types import Connector

__all__ = [
    "CONNECTORS",
    "DEFAULT_MAX_BYTES",
    "connector_for",
    "files_connector",
    "llamaindex_connector",
    "source_gone",
    "web_connector",
]


def files_connector(
    root: Path | str, glob: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> Connector:
    """Return a FileConnector over a file or directory."""
    from connectors.files import FileConnector

    return FileConnector(Path(root), glob, max_bytes)


def web_connector(
    urls: Sequence[str], timeout: float = 20.0, max_bytes: int = DEFAULT_MAX_BYTES, cache_dir: Path | None = None
) -> Connector:
    """Return a UrlConnector over http(s) URLs and sitemaps; ``cache_dir`` keeps pages for conditional GETs."""
    from connectors.web import UrlConnector

    return UrlConnector(urls, timeout, max_bytes, cache_dir=cache_dir)


def llamaindex_connector(source: object) -> Connector:
    """Return a LlamaIndexConnector over a LlamaIndex reader or a list of its Documents."""
    from connectors.llamaindex_reader import LlamaIndexConnector

    return LlamaIndexConnector(source)


CONNECTORS: dict[str, Callable[..., Connector]] = {
    "files": files_connector,
    "web": web_connector,
    "llamaindex": llamaindex_connector,
}


def connector_for(target: str, glob: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> Connector:
    """Return the web connector for an http(s):// target (pages cached in the user's cache folder, so an
    unchanged page is not downloaded again), else the file connector for a path."""
    if target.startswith(("http://", "https://")):
        from connectors.webcache import default_cache_dir

        return web_connector([target], max_bytes=max_bytes, cache_dir=default_cache_dir())
    path = Path(target).expanduser()
    if not path.exists():
        raise ConnectorError(
            f"{target}: no such file or directory; check the path, or give an http(s):// URL for a web page"
        )
    return files_connector(path, glob, max_bytes)


def source_gone(uri: str, timeout: float = 20.0) -> bool:
    """True only when ``uri`` is proved gone: a ``file://`` path with no such entry, or a URL answering
    404 or 410. An error, a refusal or any other scheme is no proof, so prune keeps the document."""
    if uri.startswith(("http://", "https://")):
        from connectors.web import gone

        return gone(uri, timeout)
    if uri.startswith("file:"):
        from connectors.files import gone as file_gone

        return file_gone(uri)
    return False
