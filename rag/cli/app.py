"""The ``rosetta`` command: parses arguments, calls the facade, renders. No logic lives here."""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from rag.cli.chat import ChatOptions, run_chat
from rag.cli.logs import setup_logging
from rag.cli.plugins import plugins_command
from rag.cli.render import (
    IngestBar,
    ingest_json,
    ingest_table,
    search_json,
    search_table,
    status_json,
    status_table,
)
from rag.cli.render_answer import answer_json, answer_view
from rag.cli.terminal import console
from rag.config import Config, load_config, log_level, parse_mode, parse_storage, secret_values
from rag.errors import ConfigError, RagError, StoreError
from rag.rosetta import Rosetta
from rag.types import Filter

if TYPE_CHECKING:
    from rag.ray_ingest import RayExecutor

app = typer.Typer(no_args_is_help=True, help="Rosetta: ask in your language, answer from theirs.")
bench = typer.Typer(no_args_is_help=True, help="Benchmarks (they print numbers; see evals/).")
app.add_typer(bench, name="bench")
server = typer.Typer(no_args_is_help=True, help="The embedded Postgres that one-shot commands keep running.")
app.add_typer(server, name="server")

# One-shot commands leave the embedded Postgres running this long after its last client, so the next
# command joins it instead of paying ~0.3 s to start and stop it (db.keep_alive_s; 0 turns it off).
CLI_KEEP_ALIVE_S = 300.0

def _console(stderr: bool = False) -> Console:
    # Made per call so the terminal's width and NO_COLOR/TERM=dumb are read when the command runs.
    return console(stderr)


@dataclass(frozen=True, slots=True)
class Globals:
    """Options shared by every command."""

    data_dir: Path | None
    database_url: str | None
    encoder: str | None
    model: str | None
    debug: bool


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"rosetta {metadata.version('rosetta-rag')}")
        raise typer.Exit()


@app.callback()
def _globals(
    ctx: typer.Context,
    data_dir: Annotated[Path | None, typer.Option(help="Embedded database directory [ROSETTA_DATA_DIR].")] = None,
    database_url: Annotated[str | None, typer.Option(help="Use this Postgres instead [ROSETTA_DATABASE_URL].")] = None,
    encoder: Annotated[str | None, typer.Option(help="auto, bge-m3, e5-small, openai-compatible or a plugin's "
                                                     "name [ROSETTA_ENCODER].")] = None,
    model: Annotated[str | None, typer.Option(help="BGE-M3 hub id or local path [ROSETTA_BGE_M3_MODEL].")] = None,
    debug: Annotated[bool, typer.Option(help="Show tracebacks.")] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True,
                                         help="Log to stderr: -v INFO, -vv DEBUG [ROSETTA_LOG_LEVEL].")] = 0,
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_show_version,
                                          help="Print the version and exit.")] = False,
) -> None:
    ctx.obj = Globals(data_dir, database_url, encoder, model, debug)
    with _errors(ctx):
        setup_logging(log_level(verbose), secret_values())


def _config(ctx: typer.Context, **overrides: Any) -> Config:
    g: Globals = ctx.obj
    config = load_config(data_dir=g.data_dir, database_url=g.database_url, encoder=g.encoder, bge_m3_model=g.model,
                         **overrides)
    if config.db.keep_alive_s is None:
        config = replace(config, db=replace(config.db, keep_alive_s=CLI_KEEP_ALIVE_S))
    return config


def _notice(message: str) -> None:
    _console(True).print(f"[dim]{escape(message)}[/]")


@contextmanager
def _errors(ctx: typer.Context) -> Iterator[None]:
    """A RagError, or the ValueError the facade raises for a bad argument (an empty question, k < 1),
    becomes one red line and exit code 2 (a traceback with --debug)."""
    try:
        yield
    except (RagError, ValueError) as exc:
        if ctx.obj.debug:
            _console(True).print_exception()
        _console(True).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None


@contextmanager
def _session(ctx: typer.Context, **overrides: Any) -> Iterator[Rosetta]:
    """Open Rosetta; a RagError becomes one red line and exit code 2 (a traceback with --debug)."""
    with _errors(ctx), Rosetta.open(_config(ctx, **overrides), notice=_notice) as rosetta:
        yield rosetta


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


@app.command()
def ingest(
    ctx: typer.Context,
    paths: Annotated[list[str], typer.Argument(help="Files, directories, URLs or sitemap.xml URLs.")],
    collection: Annotated[str | None, typer.Option(help="Collection name [ROSETTA_COLLECTION].")] = None,
    glob: Annotated[str | None, typer.Option(help="Only files matching this glob, e.g. '*.pdf'.")] = None,
    prune: Annotated[bool, typer.Option(help="Delete stored documents under PATHS whose source is gone.")] = False,
    max_bytes: Annotated[int | None, typer.Option(help="Skip files larger than this.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    connector: Annotated[str | None, typer.Option(help="Read PATHS with this connector plugin (rosetta plugins).")
                         ] = None,
    storage: Annotated[str | None, typer.Option(
        help="A new collection's dense index: vector, halfvec or bit+rescore [ROSETTA_STORAGE].")] = None,
    ray: Annotated[str | None, typer.Option(
        "--ray", metavar="ADDRESS", help="Run on Ray: 'local' (a Ray on this machine), 'auto' (the running "
        "cluster) or ray://HOST:10001. Needs rosetta-rag[ray] and a database every node reaches.")] = None,
    ray_actors: Annotated[int, typer.Option(help="Encoder actors with --ray (one encoder each).")] = 2,
) -> None:
    """Load, chunk, encode and store documents; re-running only updates what changed."""
    executor = _ray_executor(ctx, ray, ray_actors)
    with _session(ctx, collection=collection, max_bytes=max_bytes) as rosetta, IngestBar(_console(True)) as bar:
        chosen = parse_storage(storage) if storage is not None else None
        report = rosetta.ingest(paths, glob=glob, prune=prune, progress=bar, connector=connector, storage=chosen,
                                executor=executor)
    if as_json:
        _print_json(ingest_json(report))
    else:
        _console().print(ingest_table(report))
    raise typer.Exit(1 if report.failed else 0)


def _ray_executor(ctx: typer.Context, address: str | None, actors: int) -> RayExecutor | None:
    """The RayExecutor for ``--ray ADDRESS`` (None without it)."""
    if address is None:
        return None
    from rag.ray_ingest import RayExecutor

    with _errors(ctx):
        return RayExecutor(address, actors)


@app.command()
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Collections, documents and chunks per language, encoder, database."""
    with _session(ctx) as rosetta:
        result = rosetta.status()
    if as_json:
        _print_json(status_json(result))
    else:
        _console().print(status_table(result))


@app.command()
def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="The question, in any language.")],
    collection: Annotated[str | None, typer.Option(help="Collection name [ROSETTA_COLLECTION].")] = None,
    lang: Annotated[str | None, typer.Option(help="Only passages in these languages, e.g. de,ja.")] = None,
    source: Annotated[str | None, typer.Option(help="Only sources matching this glob, e.g. '*.pdf'.")] = None,
    k: Annotated[int | None, typer.Option("--k", help="How many hits.")] = None,
    mode: Annotated[str | None, typer.Option(help="dense, sparse or hybrid.")] = None,
    rerank: Annotated[bool, typer.Option(help="Apply the configured reranker.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the hits as JSON.")] = False,
) -> None:
    """Hybrid cross-lingual search: dense + sparse legs fused by RRF, then reranked."""
    with _session(ctx, collection=collection) as rosetta:
        where = Filter(languages=tuple(x.strip() for x in lang.split(",") if x.strip()) if lang else (),
                       source=source)
        hits = rosetta.search(query, k=k, where=where, mode=parse_mode(mode) if mode else None, rerank=rerank)
        name = rosetta.config.collection
    if as_json:
        _print_json(search_json(query, name, hits))
    else:
        _console().print(search_table(query, hits))


def _filter(lang: str | None, source: str | None) -> Filter | None:
    languages = tuple(x.strip() for x in lang.split(",") if x.strip()) if lang else ()
    return Filter(languages=languages, source=source) if languages or source else None


@app.command()
def ask(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="The question, in any language.")],
    collection: Annotated[str | None, typer.Option(help="Collection name [ROSETTA_COLLECTION].")] = None,
    lang: Annotated[str | None, typer.Option(help="Answer language (default: the question's), e.g. de.")] = None,
    generator: Annotated[str | None, typer.Option(help="auto, openai, cohere or extractive [ROSETTA_GENERATOR].")
                         ] = None,
    model: Annotated[str | None, typer.Option("--llm-model", help="LLM model name [ROSETTA_LLM_MODEL].")] = None,
    k: Annotated[int | None, typer.Option("--k", help="Passages per search.")] = None,
    only: Annotated[str | None, typer.Option("--only-lang", help="Only passages in these languages, e.g. de,ja.")
                    ] = None,
    source: Annotated[str | None, typer.Option(help="Only sources matching this glob, e.g. '*.pdf'.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer, citations and trace as JSON.")] = False,
) -> None:
    """Answer in your language from documents in any language, with checked citations."""
    with _session(ctx, collection=collection, generator=generator, llm_model=model) as rosetta:
        where = _filter(only, source)
        if as_json:
            _print_json(answer_json(rosetta.ask(question, language=lang, k=k, where=where)))
            return
        console, streamed = _console(), []
        try:
            for piece in rosetta.ask(question, language=lang, k=k, where=where, stream=True):
                if isinstance(piece, str):
                    streamed.append(piece)
                    console.print(piece, end="", markup=False, highlight=False)
                else:
                    console.print()
                    # The streamed text stands unless checks made the model rewrite it.
                    console.print(answer_view(piece, text="".join(streamed) != piece.text))
                    streamed.clear()
        finally:
            if streamed:  # a stream that broke off: end its line before the error is printed
                console.print()


@app.command()
def chat(
    ctx: typer.Context,
    collection: Annotated[str | None, typer.Option(help="Collection name [ROSETTA_COLLECTION].")] = None,
    lang: Annotated[str | None, typer.Option(help="Answer language (default: each question's), e.g. de.")] = None,
    generator: Annotated[str | None, typer.Option(help="auto, openai, cohere or extractive [ROSETTA_GENERATOR].")
                         ] = None,
    model: Annotated[str | None, typer.Option("--llm-model", help="LLM model name [ROSETTA_LLM_MODEL].")] = None,
    k: Annotated[int | None, typer.Option("--k", help="Passages per search.")] = None,
    only: Annotated[str | None, typer.Option("--only-lang", help="Only passages in these languages, e.g. de,ja.")
                    ] = None,
    source: Annotated[str | None, typer.Option(help="Only sources matching this glob, e.g. '*.pdf'.")] = None,
    no_tty: Annotated[bool, typer.Option("--no-tty", help="Read questions from stdin, print answers as text.")
                      ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --no-tty: one JSON object per answer line.")] = False,
) -> None:
    """Talk with your documents: follow-ups, /sources, /open, /translate, /export (type /help)."""
    options = ChatOptions(lang, k, _filter(only, source), ctx.obj.debug,
                          tty=not (no_tty or as_json) and sys.stdin.isatty(), as_json=as_json)
    with _session(ctx, collection=collection, generator=generator, llm_model=model) as rosetta:
        code = run_chat(rosetta, options, _console(), _console(True), sys.stdin)
    raise typer.Exit(code)


app.command("plugins")(plugins_command)


# The packages of the `serve` and `evals` extras; a missing one is named with the install command.
SERVE_EXTRA = {"fastapi", "starlette", "uvicorn", "multipart", "python_multipart", "mcp", "pydantic"}
EVALS_EXTRA = {"psutil", "matplotlib", "llama_index"}


@contextmanager
def _extra(name: str, packages: set[str]) -> Iterator[None]:
    """An import of a missing package of extra ``name`` becomes a ConfigError with the install command."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in packages:
            raise
        raise ConfigError(f"this command needs the {name} extra ({exc.name} is not installed): "
                          f"pip install 'rosetta-rag[{name}]'") from exc


def _server(module: str) -> ModuleType:
    with _extra("serve", SERVE_EXTRA):
        return importlib.import_module(module)


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1; others need ROSETTA_API_KEYS).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    collection: Annotated[str | None, typer.Option(help="Default collection (model 'rosetta').")] = None,
) -> None:
    """HTTP API: OpenAI-compatible /v1/chat/completions, /v1/search, /v1/collections, /v1/ingest."""
    with _errors(ctx):
        config = _config(ctx, collection=collection)
        _server("rag.serve.run").serve_http(config, host or config.serve.host,
                                            config.serve.port if port is None else port, _notice)


@app.command()
def mcp(
    ctx: typer.Context,
    http: Annotated[bool, typer.Option("--http", help="Streamable HTTP at /mcp instead of stdio.")] = False,
    host: Annotated[str | None, typer.Option(help="With --http: address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="With --http: port (default 8000).")] = None,
    collection: Annotated[str | None, typer.Option(help="Default collection of the tools.")] = None,
) -> None:
    """MCP server for agents (Claude Desktop, Cursor): tools search, ask, list_collections."""
    with _errors(ctx):
        config = _config(ctx, collection=collection)
        _server("rag.serve.mcp").serve_mcp(config, http, host or config.serve.host,
                                           config.serve.port if port is None else port)


def _embedded_dir(ctx: typer.Context) -> Path:
    config = _config(ctx)
    if config.db.url is not None:
        raise ConfigError("no embedded Postgres to manage: the database is ROSETTA_DATABASE_URL (--database-url)")
    return config.db.data_dir


@server.command("status")
def server_status(ctx: typer.Context) -> None:
    """Whether the embedded Postgres is running and a keeper holds it between commands."""
    from rag.store import keeper

    with _errors(ctx):
        found = keeper.state(_embedded_dir(ctx))
        running = f"running (pid {found.server_pid})" if found.server_running else "stopped"
        kept = f"kept by pid {found.keeper_pid}" if found.keeper_pid is not None else "no keeper"
        _console().print(f"embedded Postgres in {found.pgdata}: {running}; {kept}", highlight=False)


@server.command("stop")
def server_stop(ctx: typer.Context) -> None:
    """Stop the embedded Postgres now instead of after its idle time (commands still running keep it)."""
    from rag.store import keeper

    with _errors(ctx):
        try:
            after = keeper.stop(_embedded_dir(ctx))
        except TimeoutError as exc:
            raise StoreError(str(exc)) from None
        if after.server_running:
            _console().print(f"the keeper left; Postgres (pid {after.server_pid}) stops when the commands using "
                             "it end", highlight=False)
        else:
            _console().print(f"embedded Postgres in {after.pgdata} stopped", highlight=False)


@bench.command("ingest")
def bench_ingest(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option(help="Directory to ingest.")] = Path("../shared/data/manuals"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the numbers as JSON.")] = False,
) -> None:
    """Ingest throughput against the raw encoder, peak RSS and bytes per chunk."""
    with _errors(ctx), _extra("evals", EVALS_EXTRA):
        from evals.bench_ingest import run

    run(data, as_json=as_json)


# The product does not depend on its evals: their commands are imported only when `rosetta eval` runs.
@app.command("eval", add_help_option=False,
             context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def eval_(ctx: typer.Context) -> None:
    """Evaluations: retrieval and answer quality across query and document languages."""
    with _errors(ctx), _extra("evals", EVALS_EXTRA):
        from evals.cli import eval_app

    eval_app(ctx.args, prog_name=f"{ctx.find_root().info_name} eval")


def main() -> None:
    """Entry point of the ``rosetta`` script."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # psycopg's pool logs each failed reconnect; without a handler Python prints them to stderr, which
    # would bury the one red line that says what to do. --debug tracebacks still show the cause.
    logging.getLogger("psycopg").addHandler(logging.NullHandler())
    app(prog_name="rosetta")  # also under `python -m rag`, so usage lines and shell completion say `rosetta`

