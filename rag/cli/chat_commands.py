"""What a chat line means: a question, or a slash command parsed into a small frozen value.

Parsing is pure; ``rag/cli/chat.py`` runs the commands. A line that cannot be a command becomes ``Invalid``
with a message that says how to write it.
"""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from rag.lang import language_name, normalize_language
from rag.types import Filter


@dataclass(frozen=True, slots=True)
class Ask:
    """A question or follow-up."""

    text: str


@dataclass(frozen=True, slots=True)
class ShowSources:
    """``/sources``: the last answer's passages."""


@dataclass(frozen=True, slots=True)
class OpenPassage:
    """``/open n``: passage ``n`` of the last answer, whole, with its neighbours."""

    number: int


@dataclass(frozen=True, slots=True)
class TranslatePassage:
    """``/translate n``: passage ``n`` of the last answer in the user's language."""

    number: int


@dataclass(frozen=True, slots=True)
class SetLanguage:
    """``/lang xx``: answer in ``language``; None answers in each question's language."""

    language: str | None


@dataclass(frozen=True, slots=True)
class UseCollection:
    """``/collection NAME``: ask another collection."""

    name: str


@dataclass(frozen=True, slots=True)
class SetFilter:
    """``/filter lang=de source=*.pdf``: search only matching passages; None clears the filter."""

    where: Filter | None


@dataclass(frozen=True, slots=True)
class Clear:
    """``/clear``: forget the conversation, so the next question starts fresh."""


@dataclass(frozen=True, slots=True)
class Export:
    """``/export FILE.md``: write the conversation with its citations as Markdown."""

    path: Path


@dataclass(frozen=True, slots=True)
class Help:
    """``/help``: the commands."""


@dataclass(frozen=True, slots=True)
class Quit:
    """``/quit``: end the chat."""


@dataclass(frozen=True, slots=True)
class Invalid:
    """A line that is no valid command; ``message`` says how to write it."""

    message: str


Command: TypeAlias = (Ask | ShowSources | OpenPassage | TranslatePassage | SetLanguage | UseCollection | SetFilter
                      | Clear | Export | Help | Quit | Invalid)

# (usage, what it does), in the order /help lists them.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("/sources", "the last answer's passages"),
    ("/open N", "passage N whole, with the passages before and after it"),
    ("/translate N", "passage N in your language (needs a language model)"),
    ("/lang XX", "answer in language XX (e.g. de, ja); /lang alone: in each question's language"),
    ("/collection NAME", "ask another collection"),
    ("/filter lang=de source=*.pdf", "search only matching passages; /filter alone clears it"),
    ("/clear", "forget the conversation (follow-ups start fresh)"),
    ("/export FILE.md", "write the conversation with its citations as Markdown"),
    ("/help", "this list"),
    ("/quit", "leave (or Ctrl-D); Ctrl-C stops an answer being written"),
)
FILTER_KEYS = {"lang": "languages", "language": "languages", "languages": "languages", "source": "source"}


def parse(line: str) -> Command | None:
    """The command a line holds: a question, a slash command, Invalid; None for a blank line."""
    text = line.strip()
    if not text:
        return None
    if not text.startswith("/"):
        return Ask(text)
    name, _, rest = text[1:].partition(" ")
    parser = _PARSERS.get(name.lower())
    if parser is None:
        return Invalid(_unknown(name))
    return parser(rest.strip())


def _unknown(name: str) -> str:
    close = difflib.get_close_matches(name.lower(), _PARSERS, n=1)
    hint = f"did you mean /{close[0]}? " if close else ""
    return f"unknown command /{name}; {hint}/help lists the commands"


def _bare(command: Command, name: str) -> Callable[[str], Command]:
    return lambda rest: Invalid(f"/{name} takes no argument, got {rest!r}") if rest else command


def _passage_number(kind: Callable[[int], Command], name: str) -> Callable[[str], Command]:
    def parse_number(rest: str) -> Command:
        if rest.isdigit() and int(rest) >= 1:
            return kind(int(rest))
        return Invalid(f"/{name} needs a passage number from /sources, as in /{name} 2; got {rest or 'nothing'}")
    return parse_number


def parse_language(rest: str) -> SetLanguage | Invalid:
    """``/lang`` with its argument: a language code, or nothing for each question's own language."""
    if not rest:
        return SetLanguage(None)
    try:
        code = normalize_language(rest)
    except ValueError as exc:
        return Invalid(f"/lang: {exc}; use an ISO 639-1 code such as de, ja or en")
    try:
        language_name(code)  # the answer loop must be able to name the language to the model
    except ValueError as exc:
        return Invalid(f"/lang: {exc}")
    return SetLanguage(code)


def _collection(rest: str) -> Command:
    if not rest or " " in rest:
        return Invalid(f"/collection needs one collection name, as in /collection demo; got {rest or 'nothing'}")
    return UseCollection(rest)


def parse_filter(rest: str) -> Command:
    """``/filter`` with its conditions (``lang=de,ja``, ``source=GLOB``); nothing clears the filter."""
    try:
        pairs = [token.partition("=") for token in shlex.split(rest)]
    except ValueError as exc:
        return Invalid(f"/filter could not read {rest!r} ({exc}); quote a glob with spaces in it")
    wrong = [key + eq + value for key, eq, value in pairs if not eq or not value or key.lower() not in FILTER_KEYS]
    if wrong:
        return Invalid(f"/filter does not understand {' '.join(wrong)}; write lang=de,ja and/or source=*.pdf")
    fields = {FILTER_KEYS[key.lower()]: value for key, _, value in pairs}
    try:
        languages = tuple(normalize_language(x) for x in fields.get("languages", "").split(",") if x.strip())
    except ValueError as exc:
        return Invalid(f"/filter: {exc}; write ISO 639-1 codes such as lang=de,ja")
    where = Filter(languages=languages, source=fields.get("source"))
    return SetFilter(None if where.is_empty() else where)


def _export(rest: str) -> Command:
    if not rest:
        return Invalid("/export needs a file name, as in /export chat.md")
    return Export(Path(rest).expanduser())


_PARSERS: dict[str, Callable[[str], Command]] = {
    "sources": _bare(ShowSources(), "sources"),
    "open": _passage_number(OpenPassage, "open"),
    "translate": _passage_number(TranslatePassage, "translate"),
    "lang": parse_language,
    "collection": _collection,
    "filter": parse_filter,
    "clear": _bare(Clear(), "clear"),
    "export": _export,
    "help": _bare(Help(), "help"),
    "quit": _bare(Quit(), "quit"),
    "exit": _bare(Quit(), "exit"),
}


def describe_filter(where: Filter | None) -> str:
    """A filter as the user would type it: ``lang=de,ja source=*.pdf``; ``none`` when there is none."""
    if where is None or where.is_empty():
        return "none"
    parts = ([f"lang={','.join(where.languages)}"] if where.languages else []) + (
        [f"source={shlex.quote(where.source)}"] if where.source else [])
    return " ".join(parts) or "none"
