"""One HTTP client per connector, polite to each host: robots.txt, a bound on concurrent requests and the
pace robots.txt asks for, retries of 429/503 after their ``Retry-After``, and conditional GETs
(ETag/Last-Modified) that reuse a cached body on ``304 Not Modified``.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

import httpx

from connectors.robots import MAX_ROBOTS_BYTES, parse_robots, robots_url
from connectors.webcache import PageCache, Validators
from rag.errors import ConnectorError

log = logging.getLogger(__name__)

USER_AGENT = "rosetta-rag/0.1"
# The product token robots.txt rules name (RFC 9309 2.2.1).
ROBOTS_AGENT = "rosetta-rag"
# Statuses that mean "not now": retried after Retry-After (or 1, 2, 4 ... seconds without one).
RETRY_STATUSES = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class Fetched:
    """A successful response body and what the server said about it."""

    data: bytes
    media_type: str
    charset: str | None
    final_url: str


@dataclass(frozen=True, slots=True)
class Politeness:
    """How a Fetcher treats servers: time and size limits, requests at once per host, retries, longest wait."""

    timeout: float = 20.0
    max_bytes: int = 50_000_000
    per_host: int = 2
    retries: int = 3
    max_wait: float = 60.0

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.max_bytes < 1 or self.per_host < 1 or self.retries < 0 or self.max_wait < 0:
            raise ValueError(f"Politeness needs positive limits and retries >= 0, got {self}")


@dataclass(slots=True)
class Host:
    """What a Fetcher knows of one origin: its request slots, robots.txt rules and when it was last asked."""

    slots: threading.BoundedSemaphore
    lock: threading.Lock = field(default_factory=threading.Lock)
    pace: threading.Lock = field(default_factory=threading.Lock)
    rules: RobotFileParser | None = None
    robots_status: int = 0
    delay: float = 0.0
    last: float = float("-inf")


@dataclass(frozen=True, slots=True)
class Reply:
    """A response as read: status, headers and (for 2xx) the body."""

    status: int
    reason: str
    headers: httpx.Headers
    body: bytes
    final_url: str
    charset: str | None


class Fetcher:
    """Fetches pages for a connector over one shared httpx client (HTTP/2 where the server offers it)."""

    def __init__(self, client: httpx.Client, politeness: Politeness, cache: PageCache | None) -> None:
        self.client = client
        self.politeness = politeness
        self.cache = cache
        self._hosts: dict[str, Host] = {}
        self._lock = threading.Lock()

    @classmethod
    def open(cls, politeness: Politeness, cache: PageCache | None = None) -> Fetcher:
        """Return a Fetcher with a new client, closed when the Fetcher is garbage-collected."""
        client = httpx.Client(
            http2=True, timeout=politeness.timeout, follow_redirects=True, headers={"User-Agent": USER_AGENT},
        )
        fetcher = cls(client, politeness, cache)
        weakref.finalize(fetcher, client.close)
        return fetcher

    def get(self, url: str, conditional: bool = True) -> Fetched:
        """GET a page robots.txt allows (``conditional``: revalidating a cached copy); raise ConnectorError
        naming the URL, the status and the fix."""
        host = self._host(url)
        self._require_allowed(host, url)
        cache = self.cache if conditional else None
        cached = cache.get(url) if cache is not None else None
        headers = cached[0].headers() if cached is not None else {}
        started = time.perf_counter()
        reply = self._exchange(host, url, url, headers, self.politeness.max_bytes)
        log.debug("GET %s: HTTP %d, %d bytes, %.0f ms", url, reply.status, len(reply.body),
                  (time.perf_counter() - started) * 1000)
        if reply.status == 304 and cached is not None:
            validators, body = cached
            return Fetched(body, validators.media_type, validators.charset, validators.final_url)
        if reply.status >= 400:
            retried = f" (after {self.politeness.retries} retries)" if reply.status in RETRY_STATUSES else ""
            raise ConnectorError(f"{url}: HTTP {reply.status} {reply.reason}{retried}; {_advice(reply.status)}")
        content_type = reply.headers.get("content-type", "")
        fetched = Fetched(reply.body, content_type.split(";")[0].strip().lower(), reply.charset, reply.final_url)
        if cache is not None:
            validators = Validators(url, reply.headers.get("etag"), strong_last_modified(reply.headers),
                                    fetched.media_type, fetched.charset, fetched.final_url)
            cache.put(validators, fetched.data)
        return fetched

    def status(self, url: str) -> int:
        """The HTTP status a GET of ``url`` ends with (after redirects, 429/503 retried), robots.txt obeyed
        (ConnectorError when it disallows the URL, or when the server cannot be reached). Reads at most
        one byte of the body: prune asks only whether the page is still there."""
        host = self._host(url)
        self._require_allowed(host, url)
        return self._exchange(host, url, url, {}, 1, truncate=True).status

    def _host(self, url: str) -> Host:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}".lower()
        with self._lock:
            return self._hosts.setdefault(origin, Host(threading.BoundedSemaphore(self.politeness.per_host)))

    def _require_allowed(self, host: Host, url: str) -> None:
        parts = urlsplit(url)
        with host.lock:  # one robots.txt request per host, however many threads ask at once
            if host.rules is None:
                robots = robots_url(f"{parts.scheme}://{parts.netloc}")
                reply = self._exchange(host, robots, url, {}, MAX_ROBOTS_BYTES, truncate=True)
                host.rules, host.robots_status = parse_robots(reply.status, reply.body), reply.status
                host.delay = min(float(host.rules.crawl_delay(ROBOTS_AGENT) or 0), self.politeness.max_wait)
        if host.rules.can_fetch(ROBOTS_AGENT, url):
            return
        robots = robots_url(f"{parts.scheme}://{parts.netloc}")
        if host.robots_status >= 500:
            raise ConnectorError(
                f"{url}: skipped, {robots} answered HTTP {host.robots_status}, which asks crawlers to stay away "
                "for now (RFC 9309); ingest it again later"
            )
        raise ConnectorError(
            f"{url}: skipped, {robots} disallows it for {ROBOTS_AGENT}; if you may use the page anyway, "
            "download it and ingest the file"
        )

    def _exchange(self, host: Host, url: str, name: str, headers: dict[str, str], limit: int,
                  truncate: bool = False) -> Reply:
        """GET ``url`` within the host's slots and pace, retrying 429/503; errors name ``name``."""
        for attempt in range(self.politeness.retries):
            reply = self._attempt(host, url, name, headers, limit, truncate)
            if reply.status not in RETRY_STATUSES:
                return reply
            wait = retry_after(reply.headers.get("retry-after"), attempt)
            if wait > self.politeness.max_wait:
                raise ConnectorError(
                    f"{name}: HTTP {reply.status} {reply.reason} asks to retry after {wait:g}s, longer than "
                    f"{self.politeness.max_wait:g}s; ingest it again later"
                )
            time.sleep(wait)
        return self._attempt(host, url, name, headers, limit, truncate)

    def _attempt(self, host: Host, url: str, name: str, headers: dict[str, str], limit: int,
                 truncate: bool) -> Reply:
        with host.slots:
            self._pace(host)
            return self._read(url, name, headers, limit, truncate)

    def _pace(self, host: Host) -> None:
        # Crawl-delay spaces the requests to a host; slots alone would allow bursts.
        with host.pace:
            wait = host.last + host.delay - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            host.last = time.monotonic()

    def _read(self, url: str, name: str, headers: dict[str, str], limit: int, truncate: bool) -> Reply:
        with _http_errors(name, self.politeness.timeout), self.client.stream("GET", url, headers=headers) as response:
            body = bytearray()
            if response.status_code < 300:
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and not truncate:
                    _check_size(int(declared), name, limit)
                for chunk in response.iter_bytes():
                    body.extend(chunk)
                    if len(body) > limit and truncate:
                        break
                    _check_size(len(body), name, limit)
            return Reply(response.status_code, response.reason_phrase, response.headers, bytes(body),
                         str(response.url), response.charset_encoding)


def strong_last_modified(headers: httpx.Headers) -> str | None:
    """Return Last-Modified if it can validate: at least a second before the response's Date (RFC 9110
    8.8.2.2), since a page changed again within its last second would look unchanged."""
    modified, date = _http_date(headers.get("last-modified")), _http_date(headers.get("date"))
    if modified is None or date is None or (date - modified).total_seconds() < 1:
        return None
    return headers["last-modified"]


def _http_date(value: str | None) -> datetime | None:
    try:
        when = email.utils.parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError):
        return None
    return when if when is not None and when.tzinfo is not None else None


def retry_after(value: str | None, attempt: int) -> float:
    """Return the seconds a Retry-After header asks for (seconds or an HTTP date), else 2**attempt."""
    if value is not None and value.strip().isdigit():
        return float(value.strip())
    when = _http_date(value)
    if when is None:
        return float(2**attempt)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


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
