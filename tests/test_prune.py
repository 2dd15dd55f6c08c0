"""``--prune`` deletes only documents whose source is proved gone: a missing file, a URL answering 404 or 410.

Never what a glob, a listing error, a failed fetch or a URI prefix left out. Real files, a real HTTP
server on 127.0.0.1 and the embedded Postgres.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from rag.config import Config
from rag.ingest import IngestReport, IngestStatus
from rag.rosetta import Rosetta
from tests.fakes import HashEncoder


@pytest.fixture
def rosetta(config: Config) -> Iterator[Rosetta]:
    with Rosetta.open(config, encoder=HashEncoder()) as opened:
        yield opened


def _pruned(report: IngestReport) -> list[str]:
    return [Path(f.uri).name for f in report.files if f.status is IngestStatus.PRUNED]


def _stored(rosetta: Rosetta) -> list[str]:
    with rosetta.database.pool.connection() as conn:
        rows = conn.execute(f"SELECT uri FROM {rosetta.store.schema}.documents ORDER BY uri").fetchall()
    return [str(uri).rsplit("/", 1)[-1] for (uri,) in rows]


DEMO_NAMES = ["faq.html", "garantia.md", "quick-start.md", "release-notes.md", "wartungshandbuch.md"]


def test_a_glob_narrows_the_listing_but_prunes_only_deleted_files(rosetta: Rosetta, demo_copy: Path) -> None:
    rosetta.ingest([demo_copy])
    assert _pruned(rosetta.ingest([demo_copy], glob="*.md", prune=True)) == []
    assert sorted(_stored(rosetta)) == DEMO_NAMES
    (demo_copy / "es" / "garantia.md").unlink()
    (demo_copy / "en" / "faq.html").unlink()
    # Both are gone; the glob does not decide, the file system does.
    assert sorted(_pruned(rosetta.ingest([demo_copy], glob="*.md", prune=True))) == ["faq.html", "garantia.md"]
    assert sorted(_stored(rosetta)) == ["quick-start.md", "release-notes.md", "wartungshandbuch.md"]


def test_an_unlistable_subdirectory_keeps_its_documents(rosetta: Rosetta, demo_copy: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    rosetta.ingest([demo_copy])
    (demo_copy / "ja" / "release-notes.md").unlink()
    real_scandir = os.scandir

    def scandir(path: str) -> object:  # root reads any directory, so the refusal is the OS's answer, simulated
        if Path(path).name == "de":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr("connectors.walk.os.scandir", scandir)
    report = rosetta.ingest([demo_copy], prune=True)
    assert [Path(f.uri).name for f in report.files if f.status is IngestStatus.FAILED] == ["de"]
    assert _pruned(report) == ["release-notes.md"]
    assert "wartungshandbuch.md" in _stored(rosetta)


def test_a_file_target_owns_only_itself_not_names_it_prefixes(rosetta: Rosetta, tmp_path: Path) -> None:
    (tmp_path / "guide.md").write_text("# Guide\n\nThe air filter is changed every month.\n")
    (tmp_path / "guide.md.txt").write_text("A copy of the guide about the air filter.\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n\nFirst document about batteries.\n")
    (tmp_path / "docsb").mkdir()
    (tmp_path / "docsb" / "b.md").write_text("# B\n\nSecond document about inverters.\n")
    rosetta.ingest([tmp_path])
    (tmp_path / "guide.md.txt").unlink()
    (tmp_path / "docsb" / "b.md").unlink()
    assert _pruned(rosetta.ingest([tmp_path / "guide.md"], prune=True)) == []
    assert _pruned(rosetta.ingest([tmp_path / "docs"], prune=True)) == []
    assert sorted(_stored(rosetta)) == ["a.md", "b.md", "guide.md", "guide.md.txt"]
    assert sorted(_pruned(rosetta.ingest([tmp_path], prune=True))) == ["b.md", "guide.md.txt"]


def test_a_file_that_fails_to_load_is_kept(rosetta: Rosetta, demo_copy: Path) -> None:
    rosetta.ingest([demo_copy])
    (demo_copy / "zh" / "quick-start.md").write_bytes(b"\xff\xfe broken \x00\x00")
    report = rosetta.ingest([demo_copy], prune=True)
    assert [Path(f.uri).name for f in report.files if f.status is IngestStatus.FAILED] == ["quick-start.md"]
    assert _pruned(report) == [] and "quick-start.md" in _stored(rosetta)


class _Site(BaseHTTPRequestHandler):
    """Answers ``status`` for each path (200 pages, a sitemap listing ``listed``)."""

    status: ClassVar[dict[str, int]] = {}
    listed: ClassVar[list[str]] = []
    robots: ClassVar[str] = ""

    def do_GET(self) -> None:
        if self.path == "/robots.txt":
            body, kind = self.robots.encode(), "text/plain"
        elif self.path == "/sitemap.xml":
            base = f"http://{self.headers['Host']}"
            locs = "".join(f"<url><loc>{base}{page}</loc></url>" for page in self.listed)
            body = f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{locs}</urlset>'.encode()
            kind = "application/xml"
        else:
            body, kind = f"<html><body><h1>{self.path}</h1><p>Page {self.path} about filters.</p></body></html>".encode(), "text/html"
        code = self.status.get(self.path, 200)
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def site() -> Iterator[tuple[str, type[_Site]]]:
    handler = type("Site", (_Site,), {"status": {}, "listed": ["/a.html", "/b.html", "/c.html", "/d.html"],
                                      "robots": ""})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_pages_are_pruned_only_on_404_or_410(rosetta: Rosetta, site: tuple[str, type[_Site]]) -> None:
    base, handler = site
    rosetta.ingest([f"{base}/sitemap.xml"])
    assert _stored(rosetta) == ["a.html", "b.html", "c.html", "d.html"]
    handler.listed = ["/a.html"]  # dropped from the sitemap: b still answers 200, c 404, d 503
    handler.status = {"/c.html": 404, "/d.html": 503}
    assert _pruned(rosetta.ingest([f"{base}/sitemap.xml"], prune=True)) == ["c.html"]
    handler.status = {"/a.html": 410, "/d.html": 503}  # a is listed but gone
    report = rosetta.ingest([f"{base}/sitemap.xml"], prune=True)
    assert [Path(f.uri).name for f in report.files if f.status is IngestStatus.FAILED] == ["a.html"]
    assert _pruned(report) == ["a.html"]
    assert _stored(rosetta) == ["b.html", "d.html"]


def test_a_page_robots_txt_now_disallows_is_no_proof(rosetta: Rosetta, site: tuple[str, type[_Site]]) -> None:
    base, handler = site
    rosetta.ingest([f"{base}/sitemap.xml"])
    handler.listed = ["/a.html"]
    handler.status = {"/b.html": 404, "/c.html": 404}
    handler.robots = "User-agent: *\nDisallow: /b.html\n"  # prune may not ask for b, so b is not proved gone
    assert _pruned(rosetta.ingest([f"{base}/sitemap.xml"], prune=True)) == ["c.html"]
    assert _stored(rosetta) == ["a.html", "b.html", "d.html"]
