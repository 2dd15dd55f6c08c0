"""Deterministic directory walks with glob patterns; hidden entries and directory symlinks are not entered."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from rag.errors import ConnectorError


def walk(root: Path, matches: Callable[[str], bool]) -> Iterator[Path]:
    """Yield the files under ``root`` whose root-relative POSIX path ``matches``, depth first, names sorted.

    A subdirectory that cannot be listed is yielded itself, so loading it reports why.
    """
    pending = [root]
    while pending:
        directory = pending.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
        except OSError as exc:
            if directory == root:
                raise ConnectorError(
                    f"{root}: cannot list the directory ({exc.strerror}); check its permissions"
                ) from exc
            yield directory
            continue
        subdirectories = []
        for entry in entries:
            if entry.name.startswith("."):  # .git, .venv, editor droppings
                continue
            if entry.is_dir(follow_symlinks=False):
                subdirectories.append(Path(entry.path))
            # Directory symlinks are never entered: a link to an ancestor would loop forever.
            # os.path.isdir, unlike DirEntry.is_dir, answers False for a symlink loop instead of raising.
            elif not os.path.isdir(entry.path) and matches(_relative(entry.path, root)):
                yield Path(entry.path)
        pending.extend(reversed(subdirectories))


def _relative(path: str, root: Path) -> str:
    return Path(path).relative_to(root).as_posix()


def compile_glob(pattern: str) -> Callable[[str], bool]:
    """Return a matcher of root-relative paths; a pattern without ``/`` (``*.pdf``) matches at any depth."""
    if "/" not in pattern:
        pattern = "**/" + pattern
    regex = re.compile(translate(pattern.lstrip("/")))
    return lambda relative: regex.fullmatch(relative) is not None


def translate(pattern: str) -> str:
    """Return a regex for a glob: ``**/`` spans directories, ``*`` and ``?`` stay within one, ``[...]`` is a class."""
    parts, index = [], 0
    while index < len(pattern):
        rest = pattern[index:]
        if rest.startswith("**/"):
            parts.append("(?:.*/)?")
            index += 3
        elif rest.startswith("**"):
            parts.append(".*")
            index += 2
        elif rest[0] == "*":
            parts.append("[^/]*")
            index += 1
        elif rest[0] == "?":
            parts.append("[^/]")
            index += 1
        elif rest[0] == "[" and "]" in rest[2:]:
            end = rest.index("]", 2)
            body = rest[1:end]
            parts.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
            index += end + 1
        else:
            parts.append(re.escape(rest[0]))
            index += 1
    return "".join(parts)
