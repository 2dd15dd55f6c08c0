"""``rosetta plugins``: every installed encoder, reranker, generator and connector, with its options."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from rag.cli.terminal import console
from rag.plugins import Option, PluginInfo, installed
from rag.types import JsonValue


def _option_text(option: Option) -> str:
    default = "required" if option.default is None else f"default {option.default!r}"
    return f"{option.name} ({option.type.__name__}, {default}){': ' + option.help if option.help else ''}"


def plugins_table(found: list[PluginInfo]) -> Table:
    """The plugins as a table; one that failed to load shows its error in red."""
    table = Table(title="plugins", expand=False)
    for column in ("kind", "name", "package", "options", "about"):
        table.add_column(column)
    for info in found:
        options = "\n".join(escape(_option_text(o)) for o in info.options) or "-"
        about = f"[red]{escape(info.error)}[/]" if info.error else escape(info.help)
        table.add_row(info.kind.label, escape(info.name), escape(f"{info.package} {info.version}"), options, about)
    return table


def _option_json(option: Option) -> dict[str, JsonValue]:
    return {"name": option.name, "type": option.type.__name__, "default": option.default, "help": option.help}


def plugins_json(found: list[PluginInfo]) -> list[JsonValue]:
    """The plugins as JSON values (``error`` is null for one that loads)."""
    return [{"name": i.name, "kind": i.kind.label, "group": i.kind.value, "package": i.package, "version": i.version,
             "options": [_option_json(o) for o in i.options], "help": i.help, "error": i.error} for i in found]


def plugins_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the plugins as JSON.")] = False,
) -> None:
    """Installed encoders, rerankers, generators and connectors (Rosetta's own and third-party), with options."""
    found = list(installed())
    if as_json:
        sys.stdout.write(json.dumps(plugins_json(found), ensure_ascii=False, indent=2) + "\n")
    else:
        console(False).print(plugins_table(found))
    raise typer.Exit(1 if any(info.error for info in found) else 0)
