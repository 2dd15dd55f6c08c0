"""Local files: one file or a directory tree, each file parsed by its extension."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote_to_bytes, urlsplit

from connectors.content import DEFAULT_MAX_BYTES
from connectors.formats import EXTENSIONS, parser_for, supported_extensions
from connectors.walk import compile_glob, walk
from rag.errors import ConnectorError
from rag.types import Document


@dataclass(frozen=True, slots=True)
class FileConnector:
    """Loads a file, or every supported (or ``glob``-matching) file under a directory, as Documents.

    Source URIs are ``file://`` URIs of resolved absolute paths, so a file reached twice is loaded once.
    """

    root: Path
    glob: str | None = None
    max_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        if self.max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {self.max_bytes}")

    def sources(self) -> Iterator[str]:
        """Yield the ``file://`` URI of each file to load, in a stable order."""
        root = self.root.expanduser()
        if not root.exists():
            raise ConnectorError(f"{root}: no such file or directory; check the path")
        if not root.is_dir():
            _require_supported(root, uri_of(root))
            yield uri_of(root)
            return
        matches = compile_glob(self.glob) if self.glob else _is_supported
        seen: set[str] = set()
        for path in walk(root, matches):
            uri = uri_of(path)
            if uri not in seen:
                seen.add(uri)
                yield uri

    def load(self, uri: str) -> list[Document]:
        """Read and parse one ``file://`` source; raise ConnectorError saying why it cannot be loaded."""
        path = path_from_uri(uri)
        data = read_file(path, uri, self.max_bytes)
        kind = _require_supported(path, uri)
        return [parser_for(kind, max_bytes=self.max_bytes)(data, uri)]


def uri_of(path: Path) -> str:
    """Return the ``file://`` URI of a path with symlinks resolved as far as they go."""
    # os.path.realpath, unlike Path.resolve on Python < 3.13, returns a symlink loop instead of raising.
    return Path(os.path.realpath(path)).as_uri()


def path_from_uri(uri: str) -> Path:
    """Return the local path of a ``file://`` URI."""
    parts = urlsplit(uri)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        raise ConnectorError(
            f"{uri}: not a local file:// URI; FileConnector loads only what its sources() yield"
        )
    # Bytes, then the file system's decoding: a name that is not UTF-8 (Latin-1 é as %E9) round-trips.
    return Path(os.fsdecode(unquote_to_bytes(parts.path)))


def gone(uri: str) -> bool:
    """True when the file of ``uri`` provably does not exist: its directory answers "no such entry"."""
    try:
        os.lstat(path_from_uri(uri))
    except FileNotFoundError:
        return True
    except (OSError, ConnectorError):  # permission denied, I/O error, not a local URI: no proof
        return False
    return False


def read_file(path: Path, uri: str, max_bytes: int) -> bytes:
    """Return the bytes of a regular file of at most ``max_bytes``; raise ConnectorError otherwise."""
    with _os_errors(uri):
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            list(path.iterdir())  # an unlistable directory raises here, naming the reason
            raise ConnectorError(f"{uri}: is a directory; pass it as the root to load the files inside")
        if not stat.S_ISREG(info.st_mode):
            raise ConnectorError(
                f"{uri}: not a regular file (a FIFO, socket or device?); remove it or exclude it"
            )
        _check_size(info.st_size, uri, max_bytes)
        with path.open("rb") as file:
            data = file.read(max_bytes + 1)  # +1: a file that grew since stat() still trips the limit
    _check_size(len(data), uri, max_bytes)
    return data


def _check_size(size: int, uri: str, max_bytes: int) -> None:
    if size > max_bytes:
        raise ConnectorError(
            f"{uri}: {size} bytes is over the limit of {max_bytes}; raise it with --max-bytes "
            "(FileConnector(max_bytes=...)) or split the file"
        )


def _is_supported(relative: str) -> bool:
    return Path(relative).suffix.lower() in EXTENSIONS


def _require_supported(path: Path, uri: str) -> str:
    kind = EXTENSIONS.get(path.suffix.lower())
    if kind is None:
        raise ConnectorError(
            f"{uri}: unsupported file type {path.suffix or '(no extension)'!r}; supported: {supported_extensions()}; "
            "convert it to one of these"
        )
    return kind


@contextmanager
def _os_errors(uri: str) -> Iterator[None]:
    """Map the OS errors of reading a file to ConnectorError with a fix."""
    try:
        yield
    except FileNotFoundError as exc:
        raise ConnectorError(
            f"{uri}: no such file (moved, deleted or a broken symlink); fix the link or re-list the sources"
        ) from exc
    except PermissionError as exc:
        raise ConnectorError(
            f"{uri}: permission denied; make it readable (chmod/chown) or run as a user who can read it"
        ) from exc
    except OSError as exc:
        raise ConnectorError(
            f"{uri}: cannot read it ({exc.strerror or exc}); check the file and the disk"
        ) from exc
