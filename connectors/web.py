"""Web pages over HTTP(S): fetched politely (connectors.fetch), sitemaps expanded, parsed by Content-Type."""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from connectors.content import DEFAULT_MAX_BYTES
from connectors.fetch import USER_AGENT, Fetched, Fetcher, Politeness
from connectors.formats import EXTENSIONS, MEDIA_TYPES, parser_for
from connectors.sitemap import parse_sitemap
from connectors.webcache import PageCache
from rag.errors import ConnectorError
from rag.types import Document

__all__ = ["DEFAULT_MAX_PAGES", "USER_AGENT", "UrlConnector"]

# A sitemap, its child index and a grandchild: deeper chains are a misconfiguration or a loop.
MAX_SITEMAP_DEPTH = 3
# The crawl limit: pages one connector lists from its URLs and sitemaps, unless told otherwise.
DEFAULT_MAX_PAGES = 10_000
# Servers that do not know the type; the URL's extension is then the best evidence.
UNTYPED = frozenset({"", "application/octet-stream", "binary/octet-stream"})
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class UrlConnector:
    """Loads web pages (HTML, PDF, Markdown, text); a URL ending in ``.xml`` or ``.xml.gz`` may be a sitemap.

    One HTTP client serves every request (HTTP/2 where offered), at most ``per_host`` at once per host;
    robots.txt is obeyed, 429/503 are retried after their Retry-After, and with a ``cache_dir`` a page
    whose ETag/Last-Modified still holds is not downloaded again. A Document's ``uri`` is the requested
    URL (a stable identity); ``metadata["final_url"]`` is where redirects ended.
    """

    urls: Sequence[str]
    timeout: float = 20.0
    max_bytes: int = DEFAULT_MAX_BYTES
    max_pages: int = DEFAULT_MAX_PAGES
    per_host: int = 2
    cache_dir: Path | None = None
    retries: int = 3
    max_wait: float = 60.0
    fetcher: Fetcher = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "urls", tuple(self.urls))
        for url in self.urls:
            if urlsplit(url).scheme not in ("http", "https"):
                raise ValueError(f"UrlConnector takes http(s):// URLs, got {url!r}")
        if self.max_bytes < 1 or self.timeout <= 0 or self.max_pages < 1:
            raise ValueError(
                f"max_bytes, timeout and max_pages must be positive, got {self.max_bytes}, {self.timeout} "
                f"and {self.max_pages}"
            )
        politeness = Politeness(self.timeout, self.max_bytes, self.per_host, self.retries, self.max_wait)
        cache = PageCache(self.cache_dir) if self.cache_dir is not None else None
        object.__setattr__(self, "fetcher", Fetcher.open(politeness, cache))

    def sources(self) -> Iterator[str]:
        """Yield each URL, with sitemaps replaced by the pages they list (in order, without repeats).

        Past ``max_pages`` pages, raises ConnectorError after yielding the first ``max_pages``.
        """
        seen: set[str] = set()
        for url in self.urls:
            found = self._expand(url, 1) if _may_be_sitemap(url) else iter((url,))
            for page in found:
                if page in seen:
                    continue
                if len(seen) == self.max_pages:
                    raise ConnectorError(
                        f"{url}: lists more than {self.max_pages} pages; the first {self.max_pages} are loaded "
                        "and nothing is pruned; raise the crawl limit with UrlConnector(max_pages=...)"
                    )
                seen.add(page)
                yield page

    def load(self, uri: str) -> list[Document]:
        """Fetch one URL and parse it by its Content-Type; raise ConnectorError naming the URL and the reason."""
        fetched = self.fetcher.get(uri)
        parse = parser_for(_kind(uri, fetched), max_bytes=self.max_bytes, charset=fetched.charset)
        document = parse(fetched.data, uri)
        return [replace(document, metadata={**document.metadata, "final_url": fetched.final_url})]

    def _expand(self, url: str, depth: int) -> Iterator[str]:
        fetched = self.fetcher.get(url, conditional=False)  # a sitemap is small and must be current
        data = gunzip(fetched.data, url, self.max_bytes) if fetched.data.startswith(GZIP_MAGIC) else fetched.data
        sitemap = parse_sitemap(data)
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
            yield from self._expand(child, depth + 1)


def gunzip(data: bytes, url: str, max_bytes: int) -> bytes:
    """Return a gzip body unpacked, at most ``max_bytes`` of it; raise ConnectorError if it is corrupt or larger."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        unpacked = inflater.decompress(data, max_bytes + 1)  # inflates no further than the limit (a gzip bomb)
    except zlib.error as exc:
        raise ConnectorError(f"{url}: corrupt gzip data ({exc}); check the sitemap on the server") from exc
    if len(unpacked) > max_bytes:
        raise ConnectorError(
            f"{url}: unpacks to over the limit of {max_bytes} bytes; raise it with --max-bytes "
            "(UrlConnector(max_bytes=...))"
        )
    return unpacked


def gone(url: str, timeout: float) -> bool:
    """True when ``url`` answers 404 Not Found or 410 Gone (after redirects, asked politely: robots.txt obeyed,
    429/503 retried); any other answer, a refusal or an error is no proof."""
    try:
        return Fetcher.open(Politeness(timeout=timeout)).status(url) in (404, 410)
    except ConnectorError:
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
    return urlsplit(url).path.lower().endswith((".xml", ".xml.gz"))
