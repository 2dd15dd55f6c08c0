"""UrlConnector against a real HTTP server on 127.0.0.1: pages, a PDF, sitemaps, redirects and failures."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from connectors.web import USER_AGENT, UrlConnector
from rag.errors import ConnectorError
from rag.types import Section
from tests.fixtures_docs import JAPANESE_FONT, pdf_bytes


@dataclass(frozen=True)
class Reply:
    """What the test server answers for one path."""

    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    body: bytes = b""
    location: str = ""
    delay: float = 0.0
    length: bool = True  # send Content-Length


PAGE = """<html lang="de"><head><title>Wartung</title></head><body><nav>Menü</nav>
<h1>Luftfilter</h1><p>Monatlich wechseln.</p><h2>Ausbau</h2><p>Deckel öffnen.</p></body></html>"""


def _routes(base: str) -> dict[str, Reply]:
    return {
        "/de/wartung.html": Reply(body=PAGE.encode()),
        "/ja/readme.md": Reply(
            content_type="text/markdown; charset=utf-8", body="# 概要\n説明です。\n".encode()
        ),
        "/latin1.txt": Reply(content_type="text/plain; charset=iso-8859-1", body="Größe".encode("latin-1")),
        "/handbuch.pdf": Reply(
            content_type="application/pdf",
            body=pdf_bytes([("Helvetica", ["Prüfung"]), (JAPANESE_FONT, ["点検"])], title="Handbuch"),
        ),
        "/download/notes.md": Reply(content_type="application/octet-stream", body=b"# Notiz\n"),
        "/bild.png": Reply(content_type="image/png", body=b"\x89PNG\r\n\x1a\n"),
        "/alt": Reply(status=301, location="/de/wartung.html"),
        "/kaputt": Reply(status=500, body=b"oops"),
        "/langsam.html": Reply(body=b"<p>spaet</p>", delay=1.0),
        "/gross.html": Reply(body=b"<p>" + b"x" * 5000 + b"</p>"),
        "/gross-ohne-laenge.html": Reply(body=b"<p>" + b"x" * 5000 + b"</p>", length=False),
        "/sitemap.xml": Reply(
            content_type="application/xml",
            body=f"""<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <sitemap><loc>{base}/sitemaps/de.xml</loc></sitemap>
  <sitemap><loc>{base}/sitemaps/ja.xml</loc></sitemap>
</sitemapindex>""".encode(),
        ),
        "/sitemaps/de.xml": Reply(
            content_type="application/xml",
            body=f"""<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>{base}/de/wartung.html</loc><lastmod>2024-01-01</lastmod></url>
  <url><loc> {base}/handbuch.pdf </loc></url>
</urlset>""".encode(),
        ),
        "/sitemaps/ja.xml": Reply(
            content_type="text/xml",
            body=f"""<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>{base}/ja/readme.md</loc></url>
  <url><loc>{base}/de/wartung.html</loc></url>
</urlset>""".encode(),
        ),
        "/loop/sitemap.xml": Reply(
            content_type="application/xml",
            body=f"""<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <sitemap><loc>{base}/loop/sitemap.xml</loc></sitemap></sitemapindex>""".encode(),
        ),
        "/not-a-sitemap.xml": Reply(content_type="application/xml", body=b"<rss><channel/></rss>"),
        "/feed.xml": Reply(content_type="application/xml", body=b"<rss><channel/></rss>"),
    }


@dataclass(frozen=True)
class Server:
    """The running test server and what it has been asked."""

    base: str
    user_agents: list[str]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy from the environment would intercept 127.0.0.1; the tests talk to loopback only.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """Serve ``_routes`` on 127.0.0.1 at a free port for the module's tests."""
    user_agents: list[str] = []
    routes: dict[str, Reply] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            user_agents.append(self.headers.get("User-Agent", ""))
            reply = routes.get(self.path, Reply(status=404, body=b"not found"))
            time.sleep(reply.delay)
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            if reply.location:
                self.send_header("Location", reply.location)
            if reply.length:
                self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            try:
                self.wfile.write(reply.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up first (the timeout and size-limit tests)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    routes.update(_routes(base))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield Server(base, user_agents)
    httpd.shutdown()
    httpd.server_close()


def _error(connector: UrlConnector, url: str) -> str:
    with pytest.raises(ConnectorError) as caught:
        connector.load(url)
    return str(caught.value)


def test_html_page_with_requested_uri_and_final_url(server: Server) -> None:
    url = f"{server.base}/alt"
    (document,) = UrlConnector([url]).load(url)

    assert document.uri == url
    assert document.text == "Luftfilter\nMonatlich wechseln.\nAusbau\nDeckel öffnen."
    assert document.sections == (
        Section(0, 31, None, ("Luftfilter",)),
        Section(31, len(document.text), None, ("Luftfilter", "Ausbau")),
    )
    assert document.text[31:] == "Ausbau\nDeckel öffnen."
    assert document.title == "Wartung"
    assert document.metadata == {
        "encoding": "utf-8", "encoding_source": "declared", "html_extraction": "main content", "html_lang": "de",
        "final_url": f"{server.base}/de/wartung.html",
    }
    assert server.user_agents[-1] == USER_AGENT


def test_pdf_markdown_and_text_by_content_type(server: Server) -> None:
    connector = UrlConnector([])
    (pdf,) = connector.load(f"{server.base}/handbuch.pdf")
    assert (pdf.text, pdf.title, pdf.sections) == (
        "Prüfung\n点検",
        "Handbuch",
        (Section(0, 8, 1), Section(8, 10, 2)),
    )
    (markdown,) = connector.load(f"{server.base}/ja/readme.md")
    assert (markdown.text, markdown.title, markdown.content_type) == (
        "# 概要\n説明です。\n",
        "概要",
        "text/markdown",
    )
    (text,) = connector.load(f"{server.base}/latin1.txt")
    assert (text.text, text.title) == ("Größe", "latin1")


def test_untyped_response_falls_back_to_the_url_extension(server: Server) -> None:
    (document,) = UrlConnector([]).load(f"{server.base}/download/notes.md")
    assert (document.title, document.content_type) == ("Notiz", "text/markdown")


def test_sitemap_index_expands_to_its_pages_in_order_without_repeats(server: Server) -> None:
    direct = f"{server.base}/latin1.txt"
    connector = UrlConnector([f"{server.base}/sitemap.xml", direct])
    assert list(connector.sources()) == [
        f"{server.base}/de/wartung.html",
        f"{server.base}/handbuch.pdf",
        f"{server.base}/ja/readme.md",
        direct,
    ]


def test_a_non_sitemap_xml_url_is_kept_as_a_page(server: Server) -> None:
    url = f"{server.base}/feed.xml"
    assert list(UrlConnector([url]).sources()) == [url]
    assert _error(UrlConnector([url]), url) == (
        f"{url}: unsupported content type 'application/xml'; Rosetta reads application/pdf, application/vnd."
        "openxmlformats-officedocument.wordprocessingml.document, application/xhtml+xml, text/html, "
        "text/markdown, text/plain, text/x-markdown"
    )


def test_bad_sitemaps_are_errors_of_sources(server: Server) -> None:
    url = f"{server.base}/not-a-sitemap.xml"
    with pytest.raises(ConnectorError) as caught:
        list(UrlConnector([url]).sources())
    assert str(caught.value) == f"{url}: not a sitemap (no <urlset> or <sitemapindex>); check the URL"

    loop = f"{server.base}/loop/sitemap.xml"
    with pytest.raises(ConnectorError) as caught:
        list(UrlConnector([loop]).sources())
    assert str(caught.value) == (
        f"{loop}: sitemap indexes nest deeper than 3 levels; pass a nested sitemap's URL directly"
    )

    missing = f"{server.base}/fehlt/sitemap.xml"
    with pytest.raises(ConnectorError) as caught:
        list(UrlConnector([missing]).sources())
    assert str(caught.value) == f"{missing}: HTTP 404 Not Found; check the URL"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/fehlt.html", "HTTP 404 Not Found; check the URL"),
        ("/kaputt", "HTTP 500 Internal Server Error; the server failed; retry later"),
        ("/bild.png", "unsupported content type 'image/png'; Rosetta reads application/pdf, "),
        (
            "/gross.html",
            "response is over the limit of 1000 bytes; raise it with --max-bytes (UrlConnector(max_bytes=...))",
        ),
        (
            "/gross-ohne-laenge.html",
            "response is over the limit of 1000 bytes; raise it with --max-bytes (UrlConnector(max_bytes=...))",
        ),
        ("/langsam.html", "timed out after 0.2s; retry, or raise the timeout"),
    ],
)
def test_failures_name_the_url_and_the_reason(server: Server, path: str, reason: str) -> None:
    url = f"{server.base}{path}"
    assert _error(UrlConnector([url], timeout=0.2, max_bytes=1000), url).startswith(f"{url}: {reason}")


def test_unreachable_host(server: Server) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"  # bound, then closed: nothing listens there
    message = _error(UrlConnector([url], timeout=2), url)
    assert message.startswith(f"{url}: cannot connect (")
    assert message.endswith("); check the host name and your network")


def test_only_http_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="UrlConnector takes http\\(s\\):// URLs, got 'ftp://example.org/a'"):
        UrlConnector(["ftp://example.org/a"])
