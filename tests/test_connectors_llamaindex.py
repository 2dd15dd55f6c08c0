"""LlamaIndexConnector over a real SimpleDirectoryReader and over hand-made llama_index Documents."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from llama_index.core import SimpleDirectoryReader
from llama_index.core.schema import Document as LlamaDocument

from connectors.files import FileConnector
from connectors.llamaindex_reader import LlamaIndexConnector
from rag.errors import ConnectorError
from rag.types import Document, Section


def _load_all(connector: LlamaIndexConnector) -> list[Document]:
    return [document for uri in connector.sources() for document in connector.load(uri)]


def test_simple_directory_reader(tmp_path: Path) -> None:
    (tmp_path / "de.txt").write_text("Der Filter wird monatlich gewechselt.\n")
    (tmp_path / "zh.txt").write_text("过滤器每月更换一次。\n")
    documents = _load_all(LlamaIndexConnector(SimpleDirectoryReader(str(tmp_path))))

    assert [(d.uri, d.text, d.title, d.sections, d.content_type) for d in documents] == [
        ((tmp_path / "de.txt").as_uri(), "Der Filter wird monatlich gewechselt.\n", "de", (), "text/plain"),
        ((tmp_path / "zh.txt").as_uri(), "过滤器每月更换一次。\n", "zh", (), "text/plain"),
    ]
    assert documents[0].metadata["file_name"] == "de.txt"
    assert documents[0].metadata["file_size"] == len("Der Filter wird monatlich gewechselt.\n")


def test_uris_match_the_file_connector(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("gleich\n")
    assert list(LlamaIndexConnector(SimpleDirectoryReader(str(tmp_path))).sources()) == list(
        FileConnector(tmp_path).sources()
    )


def test_pages_of_one_file_become_one_document_with_page_sections() -> None:
    pages = [
        LlamaDocument(
            text="Seite eins",
            metadata={"file_path": "/srv/doc.pdf", "file_name": "doc.pdf", "page_label": "1"},
        ),
        LlamaDocument(
            text="二ページ目",
            metadata={"file_path": "/srv/doc.pdf", "file_name": "doc.pdf", "page_label": "2"},
        ),
        LlamaDocument(
            text="Anhang", metadata={"file_path": "/srv/doc.pdf", "file_name": "doc.pdf", "page_label": "iv"}
        ),
    ]
    (document,) = _load_all(LlamaIndexConnector(pages))

    assert document == Document(
        uri="file:///srv/doc.pdf",
        text="Seite eins\n二ページ目\nAnhang",
        title="doc",
        sections=(Section(0, 11, 1), Section(11, 17, 2), Section(17, 23, None)),
        metadata={"file_path": "/srv/doc.pdf", "file_name": "doc.pdf"},
    )
    assert document.text[11:17] == "二ページ目\n"


def test_a_single_paged_node_gets_its_page() -> None:
    node = LlamaDocument(text="Nur eine", metadata={"url": "https://example.org/p", "page_label": "7"})
    (document,) = _load_all(LlamaIndexConnector([node]))
    assert (document.uri, document.sections) == ("https://example.org/p", (Section(0, 8, 7),))


def test_uri_falls_back_to_the_id_and_metadata_is_made_json() -> None:
    import datetime as dt

    node = LlamaDocument(
        text="Inhalt",
        id_="doc-42",
        metadata={
            "title": "Bericht",
            "date": dt.date(2024, 5, 1),
            "tags": ("a", "b"),
            "blob": b"\x00",
            "n": 1.5,
        },
    )
    (document,) = _load_all(LlamaIndexConnector([node]))
    assert document == Document(
        uri="llamaindex:doc-42",
        text="Inhalt",
        title="Bericht",
        metadata={"title": "Bericht", "date": "2024-05-01", "tags": ["a", "b"], "n": 1.5},
    )


class LazyReader:
    """A reader that only offers lazy_load_data(), and counts how often it ran."""

    def __init__(self) -> None:
        self.runs = 0

    def lazy_load_data(self) -> Iterator[LlamaDocument]:
        self.runs += 1
        yield LlamaDocument(text="faul", id_="lazy")


def test_lazy_reader_runs_once() -> None:
    reader = LazyReader()
    connector = LlamaIndexConnector(reader)
    assert _load_all(connector) == [Document(uri="llamaindex:lazy", text="faul")]
    assert reader.runs == 1


class BrokenReader:
    """A reader whose input is gone."""

    def load_data(self) -> list[LlamaDocument]:
        raise FileNotFoundError(2, "No such file or directory", "/weg")


def test_reader_failures_and_bad_inputs() -> None:
    with pytest.raises(ConnectorError) as caught:
        list(LlamaIndexConnector(BrokenReader()).sources())
    assert str(caught.value) == (
        "BrokenReader: the LlamaIndex reader failed ([Errno 2] No such file or directory: '/weg'); fix its input"
    )
    with pytest.raises(TypeError, match=r"expects llama_index Documents, got \['str'\]"):
        list(LlamaIndexConnector(["kein Dokument"]).sources())
    with pytest.raises(
        TypeError, match="takes a reader with load_data\\(\\) or a list of Documents, got int"
    ):
        list(LlamaIndexConnector(42).sources())


def test_empty_text_and_unknown_uri() -> None:
    connector = LlamaIndexConnector([LlamaDocument(text="  ", id_="leer")])
    with pytest.raises(
        ConnectorError, match=r"^llamaindex:leer: the LlamaIndex reader returned no text; check the source$"
    ):
        connector.load("llamaindex:leer")
    with pytest.raises(ConnectorError, match=r"^llamaindex:x: the reader returned no such document; "):
        connector.load("llamaindex:x")
