"""Web pages over HTTP(S): fetched with httpx, sitemaps expanded, parsed by Content-Type."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import httpx

from connectors.content import DEFAULT_MAX_BYTES
from connectors.formats import EXTENSIONS, MEDIA_TYPES, parser_for
from connectors.sitemap import parse_sitemap
from rag.errors import ConnectorError
from rag.types import Document

USER_AGENT = "rosetta-rag/0.1"
# A sitemap, its child index and a grandchild: deeper chains are a misconfiguration or a loop.
MAX_SITEMAP_DEPTH = 3
# Servers that do not know the type; the URL's extension is then the best evidence.
UNTYPED = frozenset({"", "application/octet-stream", "binary/octet-stream"})


@dataclass(frozen=True, slots=True)
class Fetched:
    """A successful response body and what the server said about it."""

    data: bytes
    media_type: str
    charset: str | None
    final_url: str


@dataclass(frozen=True, slots=True)
class UrlConnector:
    """Loads web pages (HTML, PDF, Markdown, text); a URL whose path ends in ``.xml`` may be a sitemap.

    A Document's ``uri`` is the requested URL (a stable identity); ``metadata["final_url"]`` is where
    redirects ended.
    """

    urls: Sequence[str]
    timeout: float = 20.0
    max_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        object.__setattr__(self, "urls", tuple(self.urls))
        for url in self.urls:
            if urlsplit(url).scheme not in ("http", "https"):
                raise ValueError(f"UrlConnector takes http(s):// URLs, got {url!r}")
        if self.max_bytes < 1 or self.timeout <= 0:
            raise ValueError(
                f"max_bytes and timeout must be positive, got {self.max_bytes} and {self.timeout}"
            )

    def sources(self) -> Iterator[str]:
        """Yield each URL, with sitemaps replaced by the pages they list (in order, without repeats)."""
        seen: set[str] = set()
        with _client(self.timeout) as client:
            for url in self.urls:
                found = self._expand(client, url, 1) if _may_be_sitemap(url) else iter((url,))
                for page in found:
                    if page not in seen:
                        seen.add(page)
                        yield page

    def load(self, uri: str) -> list[Document]:
        """Fetch one URL and parse it by its Content-Type; raise ConnectorError naming the URL and status."""
        with _client(self.timeout) as client:
            fetched = fetch(client, uri, self.max_bytes, self.timeout)
        parse = parser_for(_kind(uri, fetched), max_bytes=self.max_bytes, charset=fetched.charset)
        document = parse(fetched.data, uri)
        return [replace(document, metadata={**document.metadata, "final_url": fetched.final_url})]

    def _expand(self, client: httpx.Client, url: str, depth: int) -> Iterator[str]:
        fetched = fetch(client, url, self.max_bytes, self.timeout)
        sitemap = parse_sitemap(fetched.data)
        if sitemap is None:
            if "sitemap" in PurePosixPath(urlsplit(url).path).name.lower() or depth > 1:
                raise ConnectorError(f"{url}: not a sitemap (no <urlset> or <sitemapindex>); check the URL")
            yield url  # some other .xml document; load() will judge it
            return
        yield from sitemap.pages
        for child in sitemap.sitemaps:
            if depth >= MAX_SITEMAP_DEPTH:
                raise ConnectorError(
                    f"{child}: sitemap indexes nest deeper than {MAX_SITEMAP_DEPTH} levels; "
                    "pass a nested sitemap's URL directly"
                )
            yield from self._expand(client, child, depth + 1)


def fetch(client: httpx.Client, url: str, max_bytes: int, timeout: float) -> Fetched:
    """GET ``url`` (following redirects) and return its body of at most ``max_bytes``."""
    with _http_errors(url, timeout), client.stream("GET", url) as response:
        if response.status_code >= 400:
            raise ConnectorError(
                f"{url}: HTTP {response.status_code} {response.reason_phrase}; {_advice(response.status_code)}"
            )
        declared = response.headers.get("content-length", "")
        if declared.isdigit():
            _check_size(int(declared), url, max_bytes)
        body = bytearray()
        for chunk in response.iter_bytes():
            body.extend(chunk)
            _check_size(len(body), url, max_bytes)
        content_type = response.headers.get("content-type", "")
        return Fetched(
            data=bytes(body),
            media_type=content_type.split(";")[0].strip().lower(),
            charset=response.charset_encoding,
            final_url=str(response.url),
        )


def gone(url: str, timeout: float) -> bool:
    """True when ``url`` answers 404 Not Found or 410 Gone (after redirects); any other answer or error is no proof."""
    try:
        with _client(timeout) as client, client.stream("GET", url) as response:
            return response.status_code in (404, 410)
    except (httpx.HTTPError, httpx.InvalidURL):
        return False


def _kind(url: str, fetched: Fetched) -> str:
    kind = MEDIA_TYPES.get(fetched.media_type)
    if kind is None and fetched.media_type in UNTYPED:
        kind = EXTENSIONS.get(PurePosixPath(urlsplit(url).path).suffix.lower())
    if kind is None:
        raise ConnectorError(
            f"{url}: unsupported content type {fetched.media_type or '(none)'!r}; Rosetta reads "
            f"{', '.join(sorted(MEDIA_TYPES))}"
        )
    return kind


def _may_be_sitemap(url: str) -> bool:
    return urlsplit(url).path.lower().endswith(".xml")


def _check_size(size: int, url: str, max_bytes: int) -> None:
    if size > max_bytes:
        raise ConnectorError(
            f"{url}: response is over the limit of {max_bytes} bytes; raise it with --max-bytes "
            "(UrlConnector(max_bytes=...))"
        )


def _advice(status: int) -> str:
    if status in (401, 403):
        return "the server refused access; download the document yourself and ingest the file"
    if status == 429:
        return "rate limited; wait and retry"
    if status >= 500:
        return "the server failed; retry later"
    return "check the URL"


@contextmanager
def _client(timeout: float) -> Iterator[httpx.Client]:
    with httpx.Client(timeout=timeout, follow_redirects=True, headers={"User-Agent": USER_AGENT}) as client:
        yield client


@contextmanager
def _http_errors(url: str, timeout: float) -> Iterator[None]:
    """Map httpx's errors to ConnectorError naming the URL and the fix."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise ConnectorError(f"{url}: timed out after {timeout:g}s; retry, or raise the timeout") from exc
    except httpx.ConnectError as exc:
        raise ConnectorError(f"{url}: cannot connect ({exc}); check the host name and your network") from exc
    except httpx.TooManyRedirects as exc:
        raise ConnectorError(
            f"{url}: too many redirects; open it in a browser to find the final URL"
        ) from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise ConnectorError(f"{url}: request failed ({exc}); check the URL, or retry") from exc
