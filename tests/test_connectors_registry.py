"""The connectors package surface: the name -> factory dict, connector_for, and light imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from connectors import CONNECTORS, DEFAULT_MAX_BYTES, connector_for
from connectors.files import FileConnector
from connectors.llamaindex_reader import LlamaIndexConnector
from connectors.web import UrlConnector
from connectors.webcache import default_cache_dir
from rag.errors import ConnectorError

ROOT = Path(__file__).resolve().parent.parent


def test_the_registry_builds_each_connector(tmp_path: Path) -> None:
    assert sorted(CONNECTORS) == ["files", "llamaindex", "web"]
    assert CONNECTORS["files"](tmp_path) == FileConnector(tmp_path)
    assert CONNECTORS["web"](["https://example.org/"]) == UrlConnector(["https://example.org/"])
    assert isinstance(CONNECTORS["llamaindex"]([]), LlamaIndexConnector)


def test_connector_for_picks_by_target(tmp_path: Path) -> None:
    assert connector_for("https://example.org/sitemap.xml", max_bytes=5) == UrlConnector(
        ["https://example.org/sitemap.xml"], max_bytes=5, cache_dir=default_cache_dir()
    )
    assert connector_for(str(tmp_path), glob="*.md") == FileConnector(tmp_path, "*.md", DEFAULT_MAX_BYTES)


def test_connector_for_a_missing_path() -> None:
    with pytest.raises(ConnectorError) as caught:
        connector_for("/nirgends/docs")
    assert str(caught.value) == (
        "/nirgends/docs: no such file or directory; check the path, or give an http(s):// URL for a web page"
    )


def test_importing_connectors_loads_no_parser_or_client_library() -> None:
    heavy = ["bs4", "charset_normalizer", "docx", "httpx", "llama_index", "lxml", "markdown_it", "pypdfium2",
             "trafilatura", "yaml"]
    code = (
        "import sys, connectors, connectors.files, connectors.llamaindex_reader; "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
