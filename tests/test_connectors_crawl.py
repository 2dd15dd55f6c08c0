"""Polite crawling against a local site (never the internet): robots.txt, 429 with Retry-After, a gzip
sitemap, ETag revalidation on re-ingest, one shared connection, a per-host bound and a crawl limit."""

from __future__ import annotations

import gzip
import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from connectors.web import UrlConnector, gunzip
from rag.config import Config
from rag.errors import ConnectorError
from rag.ingest import IngestStatus
from rag.rosetta import Rosetta
from tests.fakes import HashEncoder

ROBOTS = b"""User-agent: rosetta-rag
Disallow: /intern/

User-agent: *
Disallow: /
"""

PAGES = {
    "/docs/filter.html": "<html lang=de><body><h1>Luftfilter</h1><p>Der Luftfilter wird alle sechs Monate "
                         "gewechselt, sonst schaltet der Speicher wegen Übertemperatur ab.</p></body></html>",
    "/docs/akku.html": "<html lang=de><body><h1>Akku</h1><p>Der Akku wird bei Frost nicht geladen, damit die "
                       "Zellen keinen Schaden nehmen.</p></body></html>",
    "/docs/notes.md": "# リリースノート\n\nバージョン二では充電の制御が改善されました。",
    "/busy.html": "<html lang=en><body><p>The battery stores up to ten kilowatt hours and runs silently "
                  "in the basement.</p></body></html>",
    "/intern/geheim.html": "<html><body><p>Interne Preisliste.</p></body></html>",
}


@dataclass
class Site:
    """The running site and what it was asked."""

    base: str
    pages: dict[str, str]
    log: list[tuple[str, int]] = field(default_factory=list)  # (path, status) per request
    times: dict[str, list[float]] = field(default_factory=dict)
    ports: set[int] = field(default_factory=set)
    in_flight: int = 0
    peak: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def statuses(self, path: str) -> list[int]:
        """The statuses served for ``path``, in order."""
        return [status for logged, status in self.log if logged == path]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def _sitemap(base: str, paths: list[str]) -> bytes:
    urls = "".join(f"<url><loc>{base}{path}</loc></url>" for path in paths)
    return gzip.compress(f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'.encode())


@pytest.fixture
def site() -> Iterator[Site]:
    """Serve PAGES with ETags (304 when unchanged), robots.txt, a gzip sitemap and a busy page on 127.0.0.1.

    Asked as ``localhost``, the same server answers robots.txt with 503.
    """
    state = Site("", dict(PAGES))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so a shared client shows as one connection

        def do_GET(self) -> None:
            with state.lock:
                state.ports.add(self.client_address[1])
                state.in_flight += 1
                state.peak = max(state.peak, state.in_flight)
                state.times.setdefault(self.path, []).append(time.monotonic())
            try:
                status, headers, body = self._answer()
            finally:
                with state.lock:
                    state.in_flight -= 1
                    state.log.append((self.path, status))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if status != 304:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _answer(self) -> tuple[int, dict[str, str], bytes]:
            if self.path == "/robots.txt":
                if self.headers.get("Host", "").startswith("localhost"):
                    return 503, {}, b""
                return 200, {"Content-Type": "text/plain"}, ROBOTS
            if self.path == "/sitemap.xml.gz":
                return 200, {"Content-Type": "application/gzip"}, _sitemap(state.base, list(PAGES))
            if self.path == "/big/sitemap.xml.gz":
                return 200, {"Content-Type": "application/gzip"}, _sitemap(state.base, [f"/p{i}.html" for i in range(5)])
            if self.path.startswith("/slow/"):
                time.sleep(0.3)
                return 200, {"Content-Type": "text/html"}, b"<p>langsam</p>"
            if self.path == "/busy.html" and len(state.times["/busy.html"]) == 1:
                return 429, {"Retry-After": "1"}, b""
            if self.path == "/too-busy.html":
                return 429, {"Retry-After": "120"}, b""
            if self.path not in state.pages:
                return 404, {}, b""
            body = state.pages[self.path].encode()
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            if self.headers.get("If-None-Match") == etag:
                return 304, {"ETag": etag}, b""
            kind = "text/markdown" if self.path.endswith(".md") else "text/html"
            return 200, {"Content-Type": f"{kind}; charset=utf-8", "ETag": etag}, body

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def test_crawl_obeys_robots_retries_429_and_revalidates_on_reingest(
    config: Config, site: Site, tmp_path: Path
) -> None:
    def crawl() -> dict[str, tuple[IngestStatus, str | None, str | None]]:
        # A new connector each time, as a new `rosetta ingest` process would have; the page cache persists.
        connector = UrlConnector([f"{site.base}/sitemap.xml.gz"], cache_dir=tmp_path / "web")
        report = rosetta.ingest([connector])
        return {f.uri.removeprefix(site.base): (f.status, f.language, f.error) for f in report.files}

    skipped = (f"{site.base}/intern/geheim.html: skipped, {site.base}/robots.txt disallows it for rosetta-rag; "
               "if you may use the page anyway, download it and ingest the file")
    # Only the corpus's languages: lingua then builds in a fraction of the time all defaults take.
    config = replace(config, ingest=replace(config.ingest, languages=("de", "en", "ja")))
    with Rosetta.open(config, encoder=HashEncoder()) as rosetta:
        first = crawl()
        site.pages["/docs/akku.html"] = site.pages["/docs/akku.html"].replace("Frost", "starkem Frost")
        second = crawl()

    assert first == {
        "/docs/filter.html": (IngestStatus.ADDED, "de", None),
        "/docs/akku.html": (IngestStatus.ADDED, "de", None),
        "/docs/notes.md": (IngestStatus.ADDED, "ja", None),
        "/busy.html": (IngestStatus.ADDED, "en", None),
        "/intern/geheim.html": (IngestStatus.FAILED, None, skipped),
    }
    assert second == {**first, "/docs/filter.html": (IngestStatus.UNCHANGED, None, None),
                      "/docs/akku.html": (IngestStatus.UPDATED, "de", None),
                      "/docs/notes.md": (IngestStatus.UNCHANGED, None, None),
                      "/busy.html": (IngestStatus.UNCHANGED, None, None)}
    # The unchanged pages were revalidated (304, no body), the changed one downloaded; robots.txt was
    # read once per crawl and the disallowed page never requested.
    assert [site.statuses(path) for path in ("/docs/filter.html", "/docs/akku.html", "/docs/notes.md")] == [
        [200, 304], [200, 200], [200, 304]]
    assert site.statuses("/busy.html") == [429, 200, 304]
    first_try, retry = site.times["/busy.html"][:2]
    assert retry - first_try >= 1.0  # Retry-After: 1
    assert (site.statuses("/robots.txt"), site.statuses("/intern/geheim.html")) == ([200, 200], [])


def test_one_client_keeps_one_connection(site: Site) -> None:
    connector = UrlConnector([site.base], timeout=5)
    for path in ("/docs/filter.html", "/docs/akku.html", "/docs/notes.md"):
        connector.load(f"{site.base}{path}")
    assert (len(site.ports), site.statuses("/robots.txt")) == (1, [200])


def test_requests_to_one_host_are_bounded(site: Site) -> None:
    connector = UrlConnector([site.base], per_host=2)
    threads = [threading.Thread(target=connector.load, args=(f"{site.base}/slow/{i}.html",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (site.peak, site.statuses("/slow/5.html")) == (2, [200])


def test_a_wait_longer_than_allowed_is_an_error(site: Site) -> None:
    url = f"{site.base}/too-busy.html"
    with pytest.raises(ConnectorError) as caught:
        UrlConnector([url], max_wait=60).load(url)
    assert str(caught.value) == (
        f"{url}: HTTP 429 Too Many Requests asks to retry after 120s, longer than 60s; ingest it again later"
    )


def test_robots_txt_answering_503_keeps_the_crawler_out(site: Site) -> None:
    url = site.base.replace("127.0.0.1", "localhost") + "/docs/filter.html"
    with pytest.raises(ConnectorError) as caught:
        UrlConnector([url], retries=0).load(url)
    robots = site.base.replace("127.0.0.1", "localhost") + "/robots.txt"
    assert str(caught.value) == (
        f"{url}: skipped, {robots} answered HTTP 503, which asks crawlers to stay away for now (RFC 9309); "
        "ingest it again later"
    )
    assert site.statuses("/docs/filter.html") == []


def test_the_crawl_limit_stops_the_listing(site: Site) -> None:
    listed: list[str] = []
    with pytest.raises(ConnectorError) as caught:
        listed.extend(UrlConnector([f"{site.base}/big/sitemap.xml.gz"], max_pages=3).sources())
    assert listed == [f"{site.base}/p{i}.html" for i in range(3)]
    assert str(caught.value) == (
        f"{site.base}/big/sitemap.xml.gz: lists more than 3 pages; the first 3 are loaded and nothing is pruned; "
        "raise the crawl limit with UrlConnector(max_pages=...)"
    )


def test_a_gzip_bomb_sitemap_stops_at_the_size_limit() -> None:
    with pytest.raises(ConnectorError) as caught:
        gunzip(gzip.compress(b"\x00" * 10_000_000), "http://h/sitemap.xml.gz", 1000)
    assert str(caught.value) == (
        "http://h/sitemap.xml.gz: unpacks to over the limit of 1000 bytes; raise it with --max-bytes "
        "(UrlConnector(max_bytes=...))"
    )
