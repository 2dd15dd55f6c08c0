"""The HTTP API on a real uvicorn server (loopback, free port) over a real Rosetta and Postgres.

Chat completions go through the official ``openai`` client; the model behind Rosetta is the local
wire-format server (tests/llm_server.py), or no model at all (the extractive generator). Search, ingest,
errors and auth use plain httpx. The demo manuals are ingested once for the module.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from typer.testing import CliRunner

from rag.cli.app import app as cli
from rag.cli.render import search_json
from rag.config import GeneratorKind
from rag.errors import ConfigError, ConnectorError, EncoderError, GenerationError, SchemaMismatch, StoreError
from rag.rosetta import Rosetta
from rag.serve.app import status_of
from rag.serve.jobs import UploadRejected, safe_name
from rag.serve.shared import UnknownCollection
from rag.store.storage import DEFAULT_STORAGE
from rag.types import Filter
from tests.llm_server import MODEL, LlmServer, closed_port_url, openai_completion, openai_stream, serve
from tests.serving import COLLECTION, api, open_demo, serve_config

KEY = "sk-test-7f3a9c"
QUESTION = "How often must the air filter be replaced?"


@pytest.fixture(scope="module")
def llm() -> Iterator[LlmServer]:
    with pytest.MonkeyPatch.context() as patch:
        yield from serve(patch)


@pytest.fixture(scope="module")
def extractive(pg_url: str, served_demo: tuple[str, Path]) -> Iterator[tuple[Rosetta, str]]:
    """No LLM, no keys (loopback): (rosetta, base URL)."""
    schema, data = served_demo
    with open_demo(serve_config(pg_url, data, schema, generator=GeneratorKind.EXTRACTIVE)) as rosetta, \
            api(rosetta) as url:
        yield rosetta, url


@pytest.fixture(scope="module")
def with_llm(pg_url: str, served_demo: tuple[str, Path], llm: LlmServer) -> Iterator[str]:
    """The OpenAI generator on the local LLM server, API keys required: the base URL."""
    schema, data = served_demo
    config = serve_config(pg_url, data, schema, generator=GeneratorKind.OPENAI, base_url=f"{llm.url}/v1",
                          model=MODEL, max_retries=0, repair=False)
    with open_demo(config) as rosetta, api(rosetta, frozenset({KEY, "other-key"})) as url:
        yield url


def _client(url: str, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=30)


def _passages(llm: LlmServer) -> str:
    """The user message the LLM got last (it holds the fenced passages)."""
    return str(llm.bodies()[-1]["messages"][-1]["content"])


def _check_citation(citation: dict[str, Any], url: str) -> None:
    """A citation quotes its passage exactly, at the offsets given, in the stored document."""
    hits = httpx.post(f"{url}/v1/search", json={"query": citation["claim"], "k": 20},
                      headers={"authorization": f"Bearer {KEY}"}).json()["hits"]
    chunk = next(h for h in hits if h["chunk_id"] == citation["chunk_id"])
    assert chunk["uri"] == citation["uri"] and chunk["language"] == citation["language"]
    offset = citation["quote_start"] - chunk["start"]
    assert chunk["text"][offset: offset + len(citation["quote"])] == citation["quote"]


def test_openai_client_gets_the_answer_and_its_citations(with_llm: str, llm: LlmServer) -> None:
    llm.script(openai_completion("Der Luftfilter muss alle sechs Monate gereinigt werden [1]."))
    completion = _client(with_llm).chat.completions.create(
        model="rosetta", messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": QUESTION}],
        extra_body={"unknown_field": {"ignored": True}}, temperature=0.3)
    assert completion.choices[0].message.content == "Der Luftfilter muss alle sechs Monate gereinigt werden [1]."
    assert completion.choices[0].finish_reason == "stop" and completion.usage is not None
    assert completion.usage.total_tokens == 17
    extension = (completion.model_extra or {})["rosetta"]
    assert extension["collection"] == COLLECTION and extension["generator"] == f"openai:{MODEL}"
    (citation,) = extension["citations"]
    assert citation["marker"] == 1 and citation["uri"].endswith(".md") and citation["language"]
    assert set(citation) >= {"verified", "support", "quote", "quote_start", "quote_end", "title", "page", "heading"}
    assert '<passage number="1"' in _passages(llm) or "<passage number=1" in _passages(llm)
    _check_citation(citation, with_llm)


def test_streaming_through_the_openai_client(with_llm: str, llm: LlmServer) -> None:
    llm.script(openai_stream(["Alle sechs Monate ", "reinigen [1]."]))
    chunks = list(_client(with_llm).chat.completions.create(
        model=COLLECTION, messages=[{"role": "user", "content": QUESTION}], stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Alle sechs Monate reinigen [1]."
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert [bool((c.model_extra or {}).get("rosetta")) for c in chunks].count(True) == 1
    extension = (chunks[-1].model_extra or {})["rosetta"]
    assert extension["text"] == text and [c["marker"] for c in extension["citations"]] == [1]


def test_a_repaired_answer_follows_the_streamed_draft(pg_url: str, served_demo: tuple[str, Path],
                                                      llm: LlmServer) -> None:
    schema, data = served_demo
    config = serve_config(pg_url, data, schema, generator=GeneratorKind.OPENAI, base_url=f"{llm.url}/v1",
                          model=MODEL, max_retries=0)
    llm.script(openai_stream(["The filter is ", "replaced twice a year."]),  # no citation: one repair turn
               openai_completion("The filter is replaced every six months [1]."))
    with open_demo(config) as rosetta, api(rosetta) as url:
        chunks = list(_client(url).chat.completions.create(
            model="rosetta", messages=[{"role": "user", "content": QUESTION}], stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    repaired = "The filter is replaced every six months [1]."
    assert text == f"The filter is replaced twice a year.\n\n---\n\n{repaired}"
    extension = (chunks[-1].model_extra or {})["rosetta"]
    assert extension["repaired"] and extension["text"] == repaired and extension["citations"][0]["marker"] == 1


def test_a_follow_up_is_rewritten_with_the_conversation(with_llm: str, llm: LlmServer) -> None:
    llm.script(openai_completion("Where is the air filter of the Heliox HX-20?"),
               openai_completion("Links [1]."))
    completion = _client(with_llm).chat.completions.create(model="rosetta", messages=[
        {"role": "user", "content": QUESTION}, {"role": "assistant", "content": "Every six months [1]."},
        {"role": "user", "content": [{"type": "text", "text": "And where is it?"}]}])
    rewrite, answer = llm.bodies()[-2:]
    assert QUESTION in json.dumps(rewrite["messages"], ensure_ascii=False)
    assert [m["role"] for m in answer["messages"]][:3] == ["system", "user", "assistant"]
    extension = (completion.model_extra or {})["rosetta"]
    assert extension["question"] == "And where is it?"
    assert extension["standalone"] == "Where is the air filter of the Heliox HX-20?"


def test_the_extractive_generator_answers_through_the_api(extractive: tuple[Rosetta, str]) -> None:
    _, url = extractive
    client = _client(url, "no-key-needed-on-loopback")
    completion = client.chat.completions.create(model="rosetta", messages=[{"role": "user", "content": QUESTION}])
    extension = (completion.model_extra or {})["rosetta"]
    assert extension["generator"] == "extractive" and extension["citations"]
    text = completion.choices[0].message.content or ""
    for c in extension["citations"]:  # quoted on one line: whitespace runs become one space
        assert c["verified"] and c["support"] == 1.0 and " ".join(c["quote"].split()) in text, c
    streamed = list(client.chat.completions.create(model="rosetta", messages=[{"role": "user", "content": QUESTION}],
                                                   stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == extension["text"]


def test_a_follow_up_too_short_to_tell_is_answered_in_the_conversations_language(
        extractive: tuple[Rosetta, str]) -> None:
    # The client's earlier turns carry no language: the earlier question's tells it ("HX-F07?" alone tells none).
    _, url = extractive
    completion = _client(url, "no-key-needed-on-loopback").chat.completions.create(model="rosetta", messages=[
        {"role": "user", "content": "Wie oft muss der Luftfilter gewechselt werden?"},
        {"role": "assistant", "content": "Alle zwei Jahre [1]."}, {"role": "user", "content": "HX-F07?"}])
    extension = (completion.model_extra or {})["rosetta"]
    assert extension["question"] == "HX-F07?" and extension["language"] == "de"


def test_models_collections_and_health(extractive: tuple[Rosetta, str]) -> None:
    _, url = extractive
    status = httpx.get(f"{url}/v1/collections").json()
    names = [c["name"] for c in status["collections"]]
    assert COLLECTION in names and [m.id for m in _client(url).models.list()] == ["rosetta", *names]
    collection = status["collections"][names.index(COLLECTION)]
    assert collection["documents"] == 5 and collection["encoder"] == "hash-fake"
    assert collection["document_languages"] == {"de": 1, "en": 1, "es": 1, "ja": 1, "zh": 1}
    assert collection["storage"] == DEFAULT_STORAGE.value
    assert status["database"]["pgvector_version"] == httpx.get(f"{url}/healthz").json()["pgvector_version"]


def test_search_returns_what_rosetta_search_json_prints(extractive: tuple[Rosetta, str]) -> None:
    rosetta, url = extractive
    body = {"query": "Luftfilter wechseln", "k": 3, "filter": {"languages": ["de"], "source": "*.md"}, "x": 1}
    got = httpx.post(f"{url}/v1/search", json=body).json()
    expected = search_json("Luftfilter wechseln", COLLECTION, rosetta.search(
        "Luftfilter wechseln", k=3, where=Filter(languages=("de",), source="*.md")))
    assert got == json.loads(json.dumps(expected)) and len(got["hits"]) == 3
    assert {h["language"] for h in got["hits"]} == {"de"} and all(h["legs"] for h in got["hits"])


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    message = response.json()["error"]["message"]
    assert isinstance(message, str) and message
    return message


def test_errors_are_json_and_say_what_to_do(extractive: tuple[Rosetta, str]) -> None:
    _, url = extractive
    chat = f"{url}/v1/chat/completions"
    missing = _error(httpx.post(chat, json={"model": "nope", "messages": [{"role": "user", "content": "hi"}]}), 404)
    assert missing.startswith("collection 'nope' does not exist (collections: ") and "manuals" in missing
    assert "messages" in _error(httpx.post(chat, json={"model": "rosetta"}), 422)
    last = _error(httpx.post(chat, json={"model": "rosetta", "messages": [{"role": "assistant", "content": "x"}]}), 400)
    assert last == "the last message must be the user's question (role 'user')"
    long = _error(httpx.post(chat, json={"model": "rosetta", "messages": [{"role": "user", "content": "a" * 4001}]}), 400)
    assert "limit is 4000" in long
    assert "serve.max_body_bytes" in _error(httpx.post(f"{url}/v1/search", content=b"{" + b" " * 1_000_001 + b"}",
                                                       headers={"content-type": "application/json"}), 413)
    bad_filter = _error(httpx.post(f"{url}/v1/search", json={"query": "x", "filter": {
        "after": "2030-01-01T00:00:00Z", "before": "2020-01-01T00:00:00Z"}}), 400)
    assert "is later than" in bad_filter
    assert "no ingest job" in _error(httpx.get(f"{url}/v1/ingest/unknown"), 404)


def test_keys_are_required_checked_and_never_logged(with_llm: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert "Bearer <key>" in _error(httpx.get(f"{with_llm}/v1/models"), 401)
    _error(httpx.get(f"{with_llm}/v1/models", headers={"authorization": "Bearer wrong"}), 401)
    _error(httpx.get(f"{with_llm}/v1/models", headers={"authorization": KEY}), 401)
    assert httpx.get(f"{with_llm}/v1/models", headers={"authorization": f"Bearer {KEY}"}).status_code == 200
    assert httpx.get(f"{with_llm}/v1/models", headers={"authorization": "bearer other-key"}).status_code == 200
    assert httpx.get(f"{with_llm}/healthz").status_code == 200
    assert "/v1/models" in caplog.text and KEY not in caplog.text and "other-key" not in caplog.text


def test_serve_refuses_to_listen_beyond_loopback_without_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROSETTA_API_KEYS", raising=False)
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0 without API keys: set ROSETTA_API_KEYS" in " ".join(result.output.split())


def test_cors_is_off_unless_configured(extractive: tuple[Rosetta, str]) -> None:
    rosetta, url = extractive
    preflight = {"origin": "https://chat.example.com", "access-control-request-method": "POST"}
    assert "access-control-allow-origin" not in httpx.options(f"{url}/v1/search", headers=preflight).headers
    with api(rosetta, cors_origins=("https://chat.example.com",)) as cors:
        allowed = httpx.options(f"{cors}/v1/search", headers=preflight)
        other = httpx.options(f"{cors}/v1/search", headers={**preflight, "origin": "https://evil.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://chat.example.com"
    assert "access-control-allow-origin" not in other.headers


def _finished(url: str, job: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while job["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
        job = httpx.get(f"{url}/v1/ingest/{job['id']}").json()
    return job


def test_ingest_jobs_from_uploads_and_urls(extractive: tuple[Rosetta, str]) -> None:
    rosetta, url = extractive
    uploads = rosetta.config.db.data_dir / "uploads"
    text = "# Garantie\n\nDie Garantie für den Zusatzakku Heliox HX-B2 beträgt sieben Jahre.\n".encode()
    files = [("files", ("../../../escape/zusatzakku.md", text, "text/markdown"))]
    job = httpx.post(f"{url}/v1/ingest/files", files=files, data={"collection": "uploads"})
    assert job.status_code == 202 and job.json()["sources"] == ["../../../escape/zusatzakku.md"]
    done = _finished(url, job.json())
    (report,) = done["files"]
    assert done["state"] == "done" and report["status"] == "added" and report["language"] == "de"
    assert report["uri"] == (uploads / "uploads" / "zusatzakku.md").as_uri()
    assert sorted(p.name for p in uploads.rglob("*") if p.is_file()) == ["zusatzakku.md"]
    hits = httpx.post(f"{url}/v1/search", json={"query": "Zusatzakku Garantie", "collection": "uploads"}).json()
    assert hits["hits"][0]["uri"] == report["uri"]
    refused = httpx.post(f"{url}/v1/ingest/files", files=[("files", ("tool.exe", b"MZ", "application/x-dosexec"))])
    assert "'.exe' are not accepted" in _error(refused, 415)
    big = httpx.post(f"{url}/v1/ingest/files", files=[("files", ("big.txt", b"a" * 21_000_000, "text/plain"))])
    _error(big, 413)
    assert "/etc/passwd" in _error(httpx.post(f"{url}/v1/ingest", json={"urls": ["/etc/passwd"]}), 400)
    gone = f"{closed_port_url()}/manual.html"
    failed = _finished(url, httpx.post(f"{url}/v1/ingest", json={"urls": [gone], "collection": "uploads"}).json())
    assert failed["state"] == "done" and failed["failed"] == 1 and gone in (failed["files"][0]["error"] or "")
    assert sorted(p.name for p in uploads.rglob("*") if p.is_file()) == ["zusatzakku.md"]


@pytest.mark.parametrize(("filename", "expected"), [
    ("../../etc/notes.md", "notes.md"), ("C:\\Users\\x\\report.PDF", "report.PDF"), ("..hidden.txt", "hidden.txt"),
    ("weird name;rm -rf.html", "weird_name_rm_-rf.html")])
def test_upload_names_stay_inside_the_upload_folder(filename: str, expected: str) -> None:
    assert safe_name(filename, (".md", ".pdf", ".txt", ".html")) == expected


def test_a_client_that_disconnects_stops_the_generation(with_llm: str, llm: LlmServer) -> None:
    deltas = [f"word{i} " for i in range(60)]
    llm.script(openai_stream(deltas, frame_delay=0.05))
    body = {"model": "rosetta", "stream": True, "messages": [{"role": "user", "content": QUESTION}]}
    sent_before = len(llm.frames_sent)
    with httpx.stream("POST", f"{with_llm}/v1/chat/completions", json=body,
                      headers={"authorization": f"Bearer {KEY}"}, timeout=30) as response:
        lines = response.iter_lines()
        assert any("word0" in line for line in lines)
    deadline = time.monotonic() + 10
    while len(llm.frames_sent) == sent_before and time.monotonic() < deadline:
        time.sleep(0.05)
    (sent,) = llm.frames_sent[sent_before:]
    assert sent < 20, f"the LLM stream went on after the client left: {sent} of {len(deltas) + 5} frames"


def test_many_clients_at_once(extractive: tuple[Rosetta, str]) -> None:
    _, url = extractive
    results: list[int] = []

    def client(i: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            for _ in range(3):
                results.append(http.post("/v1/search", json={"query": f"Filter {i}", "k": 3}).status_code)
                results.append(http.post("/v1/chat/completions", json={
                    "model": "rosetta", "messages": [{"role": "user", "content": f"Garantie {i}?"}]}).status_code)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert results == [200] * 48


@pytest.mark.parametrize(("error", "status"), [
    (UnknownCollection("x"), 404), (SchemaMismatch("other encoder"), 409), (ConfigError("bad"), 400),
    (ConnectorError("bad url"), 400), (ValueError("bad value"), 400), (GenerationError("llm down"), 502),
    (StoreError("db down"), 503), (EncoderError("model"), 503), (UploadRejected("big", 413), 413)])
def test_library_errors_map_to_statuses(error: Exception, status: int) -> None:
    # Issue 18's refusal (a collection opened with another encoder) is a SchemaMismatch: a 409, not a 500.
    assert status_of(error) == status


def test_a_missing_serve_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # an import of uvicorn now fails, as when not installed
    monkeypatch.delitem(sys.modules, "rag.serve.run", raising=False)
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 2
    assert "needs the serve extra (uvicorn is not installed): pip install 'rosetta-rag[serve]'" in " ".join(
        result.output.split())
