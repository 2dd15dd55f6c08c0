"""Fuzzing the HTTP API from its own OpenAPI schema (Hypothesis): whatever a client sends, the real server
answers in time, never with a 5xx, and every error is JSON with a message.

Bodies are drawn from each route's request schema (right shapes with odd values) mixed with arbitrary
JSON and raw bytes (wrong shapes), and sent to a real server over loopback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.config import GeneratorKind
from tests.serving import api, open_demo, serve_config

JSON_SCALARS = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) | st.text(max_size=40)
ANY_JSON = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
ODD_TEXT = st.sampled_from(["", " ", "rosetta", "../../etc/passwd", "*", "de", "\x00", "ü" * 50, "[1]", "2020-01-01"])
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def server(pg_url: str, served_demo: tuple[str, Path]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The API (extractive generator, small limits) and its OpenAPI schema."""
    schema, data = served_demo
    config = serve_config(pg_url, data, schema, generator=GeneratorKind.EXTRACTIVE)
    with open_demo(config) as rosetta, api(rosetta, max_body_bytes=20_000, max_upload_bytes=5_000) as url:
        yield url, httpx.get(f"{url}/openapi.json").json()


def _resolve(node: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = spec["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def from_schema(node: dict[str, Any], spec: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values shaped by an OpenAPI schema node, with odd strings and numbers, sometimes any JSON instead."""
    node = _resolve(node, spec)
    if depth > 4:
        return ANY_JSON
    if "anyOf" in node:
        return st.one_of([from_schema(option, spec, depth + 1) for option in node["anyOf"]])
    if "enum" in node:
        return st.sampled_from(node["enum"]) | ANY_JSON
    kind = node.get("type")
    shaped: st.SearchStrategy[Any]
    if kind == "object":
        properties = {name: from_schema(value, spec, depth + 1) for name, value in node.get("properties", {}).items()}
        required = set(node.get("required", ()))
        shaped = st.fixed_dictionaries({k: v for k, v in properties.items() if k in required},
                                       optional={k: v for k, v in properties.items() if k not in required})
    elif kind == "array":
        shaped = st.lists(from_schema(node.get("items", {}), spec, depth + 1), max_size=4)
    elif kind == "string":
        shaped = st.text(max_size=60) | ODD_TEXT
    elif kind == "integer":
        shaped = st.integers(-3, 120) | st.integers()
    elif kind == "number":
        shaped = st.floats(allow_nan=False)
    elif kind == "boolean":
        shaped = st.booleans()
    else:
        shaped = ANY_JSON
    return st.one_of(shaped, shaped, shaped, ANY_JSON)


def _body_schema(spec: dict[str, Any], path: str) -> dict[str, Any]:
    content = spec["paths"][path]["post"]["requestBody"]["content"]
    return dict(content["application/json"]["schema"])


def _answered(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        message = response.json()["error"]["message"]
        assert isinstance(message, str) and message


def test_the_schema_lists_every_route(server: tuple[str, dict[str, Any]]) -> None:
    _, spec = server
    assert set(spec["paths"]) == {"/healthz", "/v1/models", "/v1/chat/completions", "/v1/search", "/v1/collections",
                                  "/v1/ingest", "/v1/ingest/files", "/v1/ingest/{job_id}"}
    chat = spec["components"]["schemas"]["ChatCompletion"]
    assert "rosetta" in chat["properties"] and "rosetta" in chat["required"]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/search", "/v1/ingest"])
def test_json_routes_never_fail_on_any_body(server: tuple[str, dict[str, Any]], path: str) -> None:
    url, spec = server

    @FUZZ
    @given(body=from_schema(_body_schema(spec, path), spec) | st.binary(max_size=200).map(lambda b: b.hex()))
    def check(body: Any) -> None:
        if path == "/v1/ingest" and isinstance(body, dict) and isinstance(body.get("urls"), list):
            # Only hosts that cannot be reached: the fuzz must not fetch the internet.
            body["urls"] = [f"http://127.0.0.1:9/{u}" if isinstance(u, str) else u for u in body["urls"]]
        _answered(httpx.post(f"{url}{path}", content=json.dumps(body), timeout=30,
                             headers={"content-type": "application/json"}))

    check()


def test_raw_bytes_paths_and_uploads_never_fail(server: tuple[str, dict[str, Any]]) -> None:
    url, _ = server

    @FUZZ
    @given(raw=st.binary(max_size=300), job=st.text(max_size=40), name=st.text(max_size=40) | ODD_TEXT,
           upload=st.binary(max_size=6_000))
    def check(raw: bytes, job: str, name: str, upload: bytes) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            _answered(http.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"}))
            _answered(http.get(f"/v1/ingest/{quote(job, safe='') or 'x'}"))
            _answered(http.post("/v1/ingest/files", files=[("files", (name or "x", upload, "text/plain"))],
                                data={"collection": "fuzz"}))

    check()
