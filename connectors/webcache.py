"""What a web page's server said last time (ETag, Last-Modified) and its body, so a re-ingest can ask
"changed since?" and reuse the body on ``304 Not Modified`` instead of downloading it again."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import platformdirs

from rag.errors import ConnectorError


def default_cache_dir() -> Path:
    """Return the user's cache folder for web pages (``~/.cache/rosetta/web`` on Linux)."""
    return Path(platformdirs.user_cache_dir("rosetta", appauthor=False)) / "web"


@dataclass(frozen=True, slots=True)
class Validators:
    """A cached response's validators and what is needed to parse its body again."""

    url: str
    etag: str | None
    last_modified: str | None
    media_type: str
    charset: str | None
    final_url: str

    def headers(self) -> dict[str, str]:
        """Return the conditional-request headers (If-None-Match, If-Modified-Since)."""
        found = {"If-None-Match": self.etag, "If-Modified-Since": self.last_modified}
        return {name: value for name, value in found.items() if value}


@dataclass(frozen=True, slots=True)
class PageCache:
    """A folder of ``<key>.json`` validators and ``<key>.body`` bodies, one pair per URL."""

    root: Path

    def get(self, url: str) -> tuple[Validators, bytes] | None:
        """Return the cached validators and body of ``url``, or None if there are none (or they are unreadable)."""
        key = self._key(url)
        try:
            fields = json.loads((self.root / f"{key}.json").read_text("utf-8"))
            body = (self.root / f"{key}.body").read_bytes()
            validators = Validators(**fields)
        except (OSError, ValueError, TypeError):
            return None  # no entry, or one a crash cut short: the page is simply fetched in full
        return (validators, body) if validators.url == url else None

    def put(self, validators: Validators, body: bytes) -> None:
        """Store a response that has a validator; the body is written before the validators that vouch for it."""
        if not (validators.etag or validators.last_modified):
            return
        key = self._key(validators.url)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            _write(self.root / f"{key}.body", body)
            _write(self.root / f"{key}.json", json.dumps(asdict(validators)).encode())
        except OSError as exc:
            raise ConnectorError(
                f"{validators.url}: cannot write the web page cache {self.root} ({exc.strerror or exc}); "
                "make it writable, or pass UrlConnector(cache_dir=None)"
            ) from exc

    @staticmethod
    def _key(url: str) -> str:
        return hashlib.sha256(url.encode()).hexdigest()[:32]


def _write(path: Path, data: bytes) -> None:
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
