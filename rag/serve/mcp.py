"""Rosetta as an MCP server (the official ``mcp`` SDK): tools ``search``, ``ask`` and ``list_collections``
over the shared facade, on stdio (``rosetta mcp``) or streamable HTTP (``rosetta mcp --http``, same key
rules as ``rosetta serve``). Tools run in worker threads (the SDK runs sync tools off the event loop)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from rag.cli.render import search_json, status_json
from rag.config import Config, api_keys
from rag.errors import RagError
from rag.rosetta import Rosetta
from rag.serve.chat import extension
from rag.serve.guard import Asgi, KeyCheck, check_exposure
from rag.serve.schemas import AnswerExtension, SearchFilter, SearchResponse, StatusOut
from rag.serve.shared import Shared

INSTRUCTIONS = ("Cross-lingual search and answers over the user's documents, which may be in any language. "
                "Use `search` for passages (quote them with their uri), `ask` for an answer with [n] citations "
                "checked against the original passages, `list_collections` to see what is indexed.")


@contextmanager
def _told() -> Iterator[None]:
    """Our errors reach the agent with their message (the SDK hides unexpected exceptions' text)."""
    try:
        yield
    except (RagError, ValueError) as exc:
        raise ToolError(str(exc)) from exc


def build_mcp(shared: Shared, max_chars: int) -> MCPServer:
    """The MCP server with Rosetta's three tools."""
    server = MCPServer("rosetta", instructions=INSTRUCTIONS)

    def check(text: str, what: str) -> None:
        if len(text) > max_chars:
            raise ValueError(f"the {what} has {len(text)} characters; the limit is {max_chars}: shorten it")

    @server.tool()
    def search(query: str, collection: str | None = None, k: int = 10, languages: list[str] | None = None,
               source: str | None = None) -> SearchResponse:
        """Hybrid cross-lingual search: the `k` (1-100) best passages for `query` (any language), each with its document
        uri, title, page, heading path, language and text. `languages` keeps only passages in those ISO 639-1
        codes; `source` is a glob over document URIs such as '*.pdf'."""
        with _told():
            check(query, "query")
            if not 1 <= k <= 100:
                raise ValueError(f"k must be between 1 and 100, got {k}")
            where = SearchFilter(languages=languages or [], source=source).to_filter()
            name, hits = shared.search(query, collection, k, None if where.is_empty() else where)
            return SearchResponse.model_validate(search_json(query, name, hits))

    @server.tool()
    def ask(question: str, collection: str | None = None, language: str | None = None) -> AnswerExtension:
        """Answer `question` in `language` (default: the question's) from the documents, with [n] markers; each
        citation gives the quoted original sentence, its offsets, language, document and whether it was
        verified against the passage."""
        with _told():
            check(question, "question")
            name = shared.resolve(collection)
            return extension(shared.ask(question, name, language=language), name)

    @server.tool()
    def list_collections() -> StatusOut:
        """The collections with their documents and chunks per language, their encoder, and the database."""
        with _told():
            return StatusOut.model_validate(status_json(shared.status()))

    return server


def serve_mcp(config: Config, http: bool, host: str, port: int) -> None:
    """Serve MCP on stdio, or on streamable HTTP at ``http://host:port/mcp`` (keys as ``rosetta serve``)."""
    keys = api_keys(config.serve)
    if http:
        check_exposure(host, keys, config.serve.api_keys_env)
    with Rosetta.open(config) as rosetta:
        shared = Shared(rosetta)
        shared.warm()
        server = build_mcp(shared, config.serve.max_question_chars)
        if not http:
            server.run("stdio")
            return
        app: Asgi = server.streamable_http_app(host=host)
        uvicorn.run(KeyCheck(app, keys), host=host, port=port, log_level="info", timeout_graceful_shutdown=5)
