"""Plugins: encoders, rerankers, generators and connectors found through entry points.

A plugin package declares an entry point in one of the groups below, naming a ``Plugin`` object::

    [project.entry-points."rosetta.encoders"]
    hashing = "rosetta_hashing:plugin"

The ``Plugin`` names itself (the entry point's name must match), declares its options, and builds the part
from the checked options and a ``PluginContext``. Rosetta's own parts register the same way (pyproject.toml),
so a built-in and a third-party encoder are found, listed and built by the same code.

Discovery is lazy: reading entry point metadata imports nothing; a plugin's module is imported only when the
plugin is selected by name or listed (``rosetta plugins``). A plugin that fails to import is reported there
and in the error when it is selected; it breaks nothing else.
"""

from __future__ import annotations

import functools
import importlib.metadata
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Generic, TypeVar

from rag.config import Config, PluginValue
from rag.errors import ConfigError
from rag.types import Encoder

T = TypeVar("T")


class PluginKind(Enum):
    """What a plugin provides; the value is its entry point group."""

    ENCODER = "rosetta.encoders"
    RERANKER = "rosetta.rerankers"
    GENERATOR = "rosetta.generators"
    CONNECTOR = "rosetta.connectors"

    @property
    def label(self) -> str:
        """``encoder``, ``reranker``, ``generator`` or ``connector``."""
        return self.value.removeprefix("rosetta.").removesuffix("s")


_TYPES: dict[type, str] = {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}


@dataclass(frozen=True, slots=True)
class Option:
    """One option a plugin declares: its name, type (str, int, float or bool), default (None: required) and help."""

    name: str
    type: type[PluginValue]
    default: PluginValue | None = None
    help: str = ""

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise ValueError(f"option {self.name!r}: type must be str, int, float or bool, got {self.type!r}")
        if self.default is not None and not _is_a(self.default, self.type):
            raise ValueError(f"option {self.name!r}: default {self.default!r} is not {_TYPES[self.type]}")


@dataclass(frozen=True, slots=True)
class Options:
    """A plugin's checked option values (every declared option, defaults filled in)."""

    plugin: str
    values: Mapping[str, PluginValue]

    def _get(self, name: str, kind: type[T]) -> T:
        value = self.values.get(name)
        if not isinstance(value, kind):
            raise TypeError(f"plugin {self.plugin!r} option {name!r} is {value!r}, not a {kind.__name__}")
        return value

    def text(self, name: str) -> str:
        """The string option ``name``."""
        return self._get(name, str)

    def integer(self, name: str) -> int:
        """The integer option ``name``."""
        return self._get(name, int)

    def number(self, name: str) -> float:
        """The number option ``name`` (an integer is widened)."""
        value = self.values.get(name)
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else self._get(name, float)

    def flag(self, name: str) -> bool:
        """The boolean option ``name``."""
        return self._get(name, bool)


@dataclass(frozen=True, slots=True)
class PluginContext:
    """What a plugin is built with besides its options: the whole Config (built-ins read their sections), a
    one-line ``notice`` for the user, and for generators and rerankers the collection's encoder."""

    config: Config
    notice: Callable[[str], None] = field(default=lambda message: None)
    encoder: Encoder | None = None


@dataclass(frozen=True, slots=True)
class Plugin(Generic[T]):
    """A plugin: ``build(options, context)`` returns the part (an Encoder, Reranker, Generator, or for a
    connector a function from a target, a path or URL, to a Connector).

    >>> plugin = Plugin("hashing", build, options=(Option("dim", int, 64, "dense dimension"),),
    ...                 help="Hashed bag-of-words vectors (no model)")
    """

    name: str
    build: Callable[[Options, PluginContext], T]
    options: tuple[Option, ...] = ()
    help: str = ""


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One installed plugin as ``rosetta plugins`` shows it; ``error`` says why it could not be loaded."""

    name: str
    kind: PluginKind
    package: str
    version: str
    options: tuple[Option, ...] = ()
    help: str = ""
    error: str | None = None


def _is_a(value: object, kind: type) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def _entry_points(kind: PluginKind) -> dict[str, importlib.metadata.EntryPoint]:
    return _scan(tuple(sys.path))[kind]


@functools.lru_cache(maxsize=4)
def _scan(path: tuple[str, ...]) -> dict[PluginKind, dict[str, importlib.metadata.EntryPoint]]:
    """Every group's entry points, read once per ``sys.path`` (reading all installed packages' metadata takes
    tens of milliseconds; a one-shot search looks a plugin up twice). The first distribution on the path
    wins a name, as Python's own import does."""
    every = importlib.metadata.entry_points()  # one pass over the installed packages; select() filters it
    found: dict[PluginKind, dict[str, importlib.metadata.EntryPoint]] = {kind: {} for kind in PluginKind}
    for kind in PluginKind:
        for entry in every.select(group=kind.value):
            found[kind].setdefault(entry.name, entry)
    return found


def names(kind: PluginKind) -> list[str]:
    """The names of the installed plugins of ``kind`` (nothing is imported)."""
    return sorted(_entry_points(kind))


def _package(entry: importlib.metadata.EntryPoint) -> tuple[str, str]:
    dist = entry.dist
    return (dist.name, dist.version) if dist is not None else ("?", "?")


def _load_entry(kind: PluginKind, entry: importlib.metadata.EntryPoint) -> Plugin[object]:
    package, version = _package(entry)
    where = f"{kind.label} plugin {entry.name!r} ({entry.value}, package {package} {version})"
    try:
        plugin = entry.load()
    except Exception as exc:  # third-party import code can raise anything: reported, with its type
        raise ConfigError(f"{where} failed to import: {type(exc).__name__}: {exc}; reinstall or uninstall "
                          f"{package}") from exc
    if not isinstance(plugin, Plugin):
        raise ConfigError(f"{where} is a {type(plugin).__name__}, not a rag.plugins.Plugin; fix the entry point")
    if plugin.name != entry.name:
        raise ConfigError(f"{where} names itself {plugin.name!r}; the entry point and the Plugin must agree")
    return plugin


def load(kind: PluginKind, name: str) -> Plugin[object]:
    """The plugin ``name`` of ``kind`` (its module imported now); ConfigError naming the installed ones if absent."""
    entries = _entry_points(kind)
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none"
        raise ConfigError(f"no {kind.label} named {name!r}; installed {kind.label}s: {known} (pip install a plugin "
                          "that provides it; `rosetta plugins` lists them; none at all means Rosetta itself is not "
                          "installed, so its entry points are missing: pip install -e .)")
    return _load_entry(kind, entries[name])


def installed() -> Iterator[PluginInfo]:
    """Every installed plugin, loaded to read its options; one that fails to load carries its error."""
    for kind in PluginKind:
        for name, entry in sorted(_entry_points(kind).items()):
            package, version = _package(entry)
            try:
                plugin = _load_entry(kind, entry)
            except ConfigError as exc:
                yield PluginInfo(name, kind, package, version, error=str(exc))
                continue
            yield PluginInfo(name, kind, package, version, plugin.options, plugin.help)


def _coerce(plugin: str, option: Option, value: PluginValue) -> PluginValue:
    """``value`` as ``option``'s type; text (from an environment variable or a flag) is parsed."""
    if _is_a(value, option.type):
        return float(value) if option.type is float else value
    text = value.strip().lower() if isinstance(value, str) else None
    if text is not None and option.type is bool and text in _BOOLEANS:
        return _BOOLEANS[text]
    if text is not None and option.type in (int, float):
        try:
            return option.type(text)
        except ValueError:
            pass
    raise ConfigError(f"plugin {plugin!r} option {option.name!r} must be {_TYPES[option.type]}, got {value!r}")


_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def check_options(plugin: Plugin[T], given: Mapping[str, PluginValue]) -> Options:
    """The plugin's options from ``given``, checked against what it declares: ConfigError naming the plugin
    and the option for an unknown option, a wrong type or a missing required value."""
    declared = {option.name: option for option in plugin.options}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        known = ", ".join(sorted(declared)) or "none"
        raise ConfigError(f"plugin {plugin.name!r} has no option {unknown[0]!r}; its options: {known}")
    values: dict[str, PluginValue] = {}
    for name, option in declared.items():
        if name in given:
            values[name] = _coerce(plugin.name, option, given[name])
        elif option.default is not None:
            values[name] = option.default
        else:
            raise ConfigError(f"plugin {plugin.name!r} needs option {name!r} ({option.help or _TYPES[option.type]}); "
                              f"set it under [plugins.{plugin.name}] in the config file")
    return Options(plugin.name, values)


def build(kind: PluginKind, name: str, context: PluginContext) -> object:
    """Load the plugin ``name`` of ``kind`` and build its part with the options ``context.config`` sets for it."""
    plugin = load(kind, name)
    given = {s.option: s.value for s in context.config.plugins if s.plugin == name}
    return plugin.build(check_options(plugin, given), context)


# What each kind's part must have (its Protocol's members), checked on what a plugin builds.
_MEMBERS = {
    PluginKind.ENCODER: ("name", "dim", "sparse_dim", "lexical_idf", "encode_passages", "encode_queries",
                         "count_tokens"),
    PluginKind.RERANKER: ("rerank",),
    PluginKind.GENERATOR: ("name", "supports_tools", "is_llm", "native_documents", "generate", "stream"),
    PluginKind.CONNECTOR: ("__call__",),
}


def build_part(kind: PluginKind, name: str, context: PluginContext) -> object:
    """``build``, then ConfigError naming the plugin when what it built lacks a member of the kind's Protocol."""
    part = build(kind, name, context)
    missing = [member for member in _MEMBERS[kind] if not hasattr(part, member)]
    if missing:
        raise ConfigError(f"{kind.label} plugin {name!r} built a {type(part).__name__}, which lacks "
                          f"{', '.join(missing)}; it does not satisfy the {kind.label} Protocol")
    return part
