"""Ingest from URLs and sitemaps (a real HTTP server on 127.0.0.1) and from a LlamaIndex reader."""

from __future__ import annotations

import functools
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from connectors import llamaindex_connector
from rag.config import Config
from rag.ingest import IngestStatus
from rag.rosetta import Rosetta
from tests.fakes import HashEncoder


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Keep test output clean."""


@pytest.fixture
def site(demo_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    for variable in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the web page cache, not the user's
    root = tmp_path / "site"
    shutil.copytree(demo_copy, root / "docs")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    pages = ["docs/en/faq.html", "docs/de/wartungshandbuch.md", "docs/ja/release-notes.md"]
    (root / "sitemap.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        + "".join(f"<url><loc>{base}/{page}</loc></url>" for page in pages) + "</urlset>")
    yield base, root
    server.shutdown()
    server.server_close()


def test_sitemap_ingest_updates_and_prunes_by_url(config: Config, site: tuple[str, Path]) -> None:
    base, root = site
    with Rosetta.open(config, encoder=HashEncoder()) as rosetta:
        first = rosetta.ingest([f"{base}/sitemap.xml"])
        assert {(f.uri.removeprefix(base), f.status, f.language) for f in first.files} == {
            ("/docs/en/faq.html", IngestStatus.ADDED, "en"),
            ("/docs/de/wartungshandbuch.md", IngestStatus.ADDED, "de"),
            ("/docs/ja/release-notes.md", IngestStatus.ADDED, "ja"),
        }
        sitemap = (root / "sitemap.xml").read_text()
        (root / "sitemap.xml").write_text(sitemap.replace(f"<url><loc>{base}/docs/ja/release-notes.md</loc></url>", ""))
        kept = rosetta.ingest([f"{base}/sitemap.xml"], prune=True)  # dropped from the sitemap, still served
        (root / "docs" / "ja" / "release-notes.md").unlink()  # now it answers 404: proved gone
        second = rosetta.ingest([f"{base}/sitemap.xml"], prune=True)
    assert not any(f.status is IngestStatus.PRUNED for f in kept.files)
    assert sorted((f.uri.removeprefix(base), f.status) for f in second.files) == [
        ("/docs/de/wartungshandbuch.md", IngestStatus.UNCHANGED),
        ("/docs/en/faq.html", IngestStatus.UNCHANGED),
        ("/docs/ja/release-notes.md", IngestStatus.PRUNED),
    ]


def test_unreachable_url_is_reported_and_other_sources_still_ingested(config: Config, site: tuple[str, Path],
                                                                       demo_copy: Path) -> None:
    base, _ = site
    with Rosetta.open(config, encoder=HashEncoder()) as rosetta:
        report = rosetta.ingest([f"{base}/docs/missing.html", demo_copy / "es"])
    statuses = {f.uri.rsplit("/", 1)[-1]: (f.status, f.error) for f in report.files}
    assert statuses["garantia.md"] == (IngestStatus.ADDED, None)
    status, error = statuses["missing.html"]
    assert status is IngestStatus.FAILED and "404" in (error or "")


def test_a_llamaindex_reader_is_one_more_source(config: Config, demo_copy: Path) -> None:
    from llama_index.core import SimpleDirectoryReader

    reader = SimpleDirectoryReader(input_dir=str(demo_copy / "zh"))
    with Rosetta.open(config, encoder=HashEncoder()) as rosetta:
        report = rosetta.ingest([llamaindex_connector(reader)], prune=True)
        status = rosetta.status()
    ((uri, state, language),) = [(f.uri, f.status, f.language) for f in report.files]
    assert uri == (demo_copy / "zh" / "quick-start.md").resolve().as_uri()
    assert (state, language) == (IngestStatus.ADDED, "zh")
    assert status.collections[0].documents == 1
