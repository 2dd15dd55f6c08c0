"""``rosetta mcp`` as agents run it: a subprocess spoken to by the official MCP client, over stdio and over
streamable HTTP (keys required), on a real collection built with the offline e5-small encoder; and
``rosetta serve`` started as the same kind of command."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from typer.testing import CliRunner

from rag.cli.app import app as cli
from rag.config import load_config
from rag.rosetta import Rosetta

ROOT = Path(__file__).resolve().parent.parent
KEY = "mcp-key-42"
DOCS = {"wartung.md": "# Wartung\n\nDer Luftfilter muss alle sechs Monate gereinigt werden.\n",
        "warranty.md": "# Warranty\n\nThe warranty lasts ten years for the battery modules.\n"}


@pytest.fixture(scope="module")
def environment(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The server's environment: a schema holding collection 'mcp' (two documents, e5-small), no LLM."""
    root = tmp_path_factory.mktemp("mcp")
    for name, text in DOCS.items():
        (root / name).write_text(text)
    env = {"ROSETTA_DATABASE_URL": pg_url, "ROSETTA_SCHEMA": f"mcp_{os.getpid()}", "ROSETTA_DATA_DIR": str(root),
           "ROSETTA_ENCODER": "e5-small", "ROSETTA_GENERATOR": "extractive", "ROSETTA_COLLECTION": "mcp",
           "OMP_WAIT_POLICY": "PASSIVE", "ROSETTA_CONFIG": str(root / "rosetta.toml")}
    # Two languages load the detector in a fraction of the time all of them take (in each process).
    (root / "rosetta.toml").write_text('[ingest]\nlanguages = ["de", "en"]\n')
    with Rosetta.open(load_config(environ=env)) as rosetta:
        assert rosetta.ingest([root], glob="*.md").failed == 0
    return env


async def _session(client: Client) -> dict[str, Any]:
    """What the three tools answer, and a search in a collection that does not exist."""
    tools = sorted(tool.name for tool in (await client.list_tools()).tools)
    search = await client.call_tool("search", {"query": "Wie oft muss der Luftfilter gereinigt werden?", "k": 2,
                                               "languages": ["de"]})
    ask = await client.call_tool("ask", {"question": "How long is the warranty?"})
    collections = await client.call_tool("list_collections", {})
    missing = await client.call_tool("search", {"query": "x", "collection": "nope"})
    return {"tools": tools, "search": search, "ask": ask, "collections": collections, "missing": missing}


def _check(answers: dict[str, Any]) -> None:
    assert answers["tools"] == ["ask", "list_collections", "search"]
    (hit,) = answers["search"].structured_content["hits"][:1]
    assert hit["language"] == "de" and hit["uri"].endswith("wartung.md") and "Luftfilter" in hit["text"]
    answer = answers["ask"].structured_content
    assert answer["generator"] == "extractive" and answer["language"] == "en"
    cited = answer["citations"][0]
    assert cited["marker"] == 1 and cited["verified"] and cited["uri"].endswith("warranty.md")
    assert cited["quote"] == "The warranty lasts ten years for the battery modules."
    assert json.loads(answers["ask"].content[0].text)["citations"][0]["quote"] == cited["quote"]
    (collection,) = answers["collections"].structured_content["collections"]
    assert collection["name"] == "mcp" and collection["documents"] == 2 and collection["encoder"] == "e5-small"
    missing = answers["missing"]
    assert missing.is_error and "collection 'nope' does not exist (collections: mcp)" in missing.content[0].text


def test_mcp_over_stdio(environment: dict[str, str]) -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "rag.cli", "mcp"], env=environment,
                                   cwd=str(ROOT))

    async def run() -> dict[str, Any]:
        async with Client(params, read_timeout_seconds=120) as client:
            return await _session(client)

    _check(asyncio.run(run()))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def command(environment: dict[str, str], *args: str) -> Iterator[str]:
    """``rosetta ARGS --port P`` as a subprocess with API keys on, until it answers; yields its base URL."""
    port = _free_port()
    env = {**os.environ, **environment, "ROSETTA_API_KEYS": KEY}
    process = subprocess.Popen([sys.executable, "-m", "rag.cli", *args, "--port", str(port)], cwd=ROOT,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, process.stderr.read() if process.stderr else ""
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
        assert KEY not in stderr.decode()


@pytest.fixture
def mcp_http(environment: dict[str, str]) -> Iterator[str]:
    with command(environment, "mcp", "--http") as url:
        yield f"{url}/mcp"


def test_rosetta_serve_runs_as_a_command(environment: dict[str, str]) -> None:
    with command(environment, "serve") as url:
        auth = {"authorization": f"Bearer {KEY}"}
        assert httpx.get(f"{url}/v1/models").status_code == 401
        assert [m["id"] for m in httpx.get(f"{url}/v1/models", headers=auth).json()["data"]] == ["rosetta", "mcp"]
        hits = httpx.post(f"{url}/v1/search", headers=auth, json={"query": "How long is the warranty?", "k": 1}).json()["hits"]
        assert hits[0]["uri"].endswith("warranty.md")


def test_mcp_over_streamable_http_needs_a_key(mcp_http: str) -> None:
    refused = httpx.post(mcp_http, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert refused.status_code == 401 and "Bearer <key>" in refused.json()["error"]["message"]

    async def run() -> dict[str, Any]:
        http = create_mcp_http_client(headers={"authorization": f"Bearer {KEY}"})
        async with http, Client(streamable_http_client(mcp_http, http_client=http), read_timeout_seconds=120) as client:
            return await _session(client)

    _check(asyncio.run(run()))


def test_mcp_http_refuses_to_listen_beyond_loopback_without_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROSETTA_API_KEYS", raising=False)
    result = CliRunner().invoke(cli, ["mcp", "--http", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0 without API keys: set ROSETTA_API_KEYS" in " ".join(result.output.split())
