"""LlamaIndex readers and Documents as a Connector; llama_index is imported only when one is used."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from connectors.jsonable import jsonable
from connectors.outline import Mark, tile
from rag.errors import ConnectorError
from rag.types import Document, Section

if TYPE_CHECKING:
    from llama_index.core.schema import BaseNode


class LlamaIndexConnector:
    """Loads what a LlamaIndex reader (``load_data()`` or ``lazy_load_data()``) or a list of its Documents holds.

    Nodes that share a source (``file_path``, ``url``, else their id) become one Document; their
    ``page_label`` numbers become the sections' pages.
    """

    def __init__(self, source: object) -> None:
        self._source = source
        self._groups: dict[str, list[BaseNode]] | None = None

    def sources(self) -> Iterator[str]:
        """Yield one URI per source document, running the reader on first use."""
        yield from self._read()

    def load(self, uri: str) -> list[Document]:
        """Return the Document for ``uri``, merged from the reader's nodes for that source."""
        nodes = self._read().get(uri)
        if nodes is None:
            raise ConnectorError(
                f"{uri}: the reader returned no such document; load only what sources() yields"
            )
        return [to_document(uri, nodes)]

    def _read(self) -> dict[str, list[BaseNode]]:
        if self._groups is None:
            groups: dict[str, list[BaseNode]] = {}
            for node in read_nodes(self._source):
                groups.setdefault(uri_of(node), []).append(node)
            self._groups = groups
        return self._groups


def read_nodes(source: object) -> list[BaseNode]:
    """Run a reader, or take a list of nodes; raise TypeError for anything else."""
    try:
        from llama_index.core.schema import BaseNode
    except ModuleNotFoundError as exc:  # the core install has no LlamaIndex: name the extra that brings it
        raise ConnectorError(f"LlamaIndexConnector needs the llamaindex extra ({exc.name} is not installed): "
                             "pip install 'rosetta-rag[llamaindex]'") from exc

    try:
        nodes = list(_items(source))
    except (OSError, ValueError) as exc:
        raise ConnectorError(
            f"{type(source).__name__}: the LlamaIndex reader failed ({exc}); fix its input"
        ) from exc
    strays = sorted({type(node).__name__ for node in nodes if not isinstance(node, BaseNode)})
    if strays:
        raise TypeError(f"LlamaIndexConnector expects llama_index Documents, got {strays}")
    return [node for node in nodes if isinstance(node, BaseNode)]


def _items(source: object) -> Iterable[object]:
    for method in ("load_data", "lazy_load_data"):
        reader = getattr(source, method, None)
        if callable(reader):
            items: Iterable[object] = reader()
            return items
    if isinstance(source, Sequence) and not isinstance(source, (str, bytes)):
        return source
    raise TypeError(
        f"LlamaIndexConnector takes a reader with load_data() or a list of Documents, got {type(source).__name__}"
    )


def uri_of(node: BaseNode) -> str:
    """Return a node's source URI: its ``file_path`` as a file:// URI, its ``url``, else ``llamaindex:<id>``."""
    file_path = node.metadata.get("file_path")
    if isinstance(file_path, str) and file_path:
        return Path(file_path).expanduser().resolve().as_uri()
    url = node.metadata.get("url")
    if isinstance(url, str) and url:
        return url
    return f"llamaindex:{node.node_id}"


def to_document(uri: str, nodes: Sequence[BaseNode]) -> Document:
    """Return one Document from the nodes of one source, joined by newlines, one section per node if paged."""
    texts = [node.get_content() for node in nodes]
    text = "\n".join(texts)
    if not text.strip():
        raise ConnectorError(f"{uri}: the LlamaIndex reader returned no text; check the source")
    metadata = {key: value for key, value in nodes[0].metadata.items() if key != "page_label"}
    file_type = metadata.get("file_type")
    return Document(
        uri=uri,
        text=text,
        title=_title(nodes[0].metadata),
        sections=_sections(texts, [page_of(node.metadata) for node in nodes]),
        metadata=jsonable(metadata),
        content_type=file_type if isinstance(file_type, str) and file_type else "text/plain",
    )


def page_of(metadata: Mapping[str, object]) -> int | None:
    """Return the ``page_label`` as a 1-based page number, or None when it is not a positive integer."""
    label = str(metadata.get("page_label", "")).strip()
    return int(label) if label.isascii() and label.isdigit() and int(label) >= 1 else None


def _sections(texts: Sequence[str], pages: Sequence[int | None]) -> tuple[Section, ...]:
    if len(texts) == 1 and pages[0] is None:
        return ()
    marks, offset = [], 0
    for text, page in zip(texts, pages):
        marks.append(Mark(offset, (), page))
        offset += len(text) + 1
    return tile(marks, offset - 1)


def _title(metadata: Mapping[str, object]) -> str:
    title = metadata.get("title")
    if isinstance(title, str) and title.strip():
        return title.strip()
    file_name = metadata.get("file_name")
    return PurePath(file_name).stem if isinstance(file_name, str) else ""
