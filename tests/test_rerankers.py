"""The three rerankers: cross-encoder and ColBERT on tiny offline models, Cohere against a local stub server."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag.errors import ConfigError, EncoderError, GenerationError
from rag.search.rerankers.cohere import CohereReranker, _cohere_errors
from rag.search.rerankers.colbert import ColbertReranker, colbert_score
from rag.search.rerankers.cross_encoder import CrossEncoderReranker
from rag.types import Chunk, Hit, JsonValue, LegScore, Reranker

QUESTION = "Wie oft wird der Filter gewechselt?"
TEXTS = (
    ("en", "The filter is replaced every month."),
    ("de", "Die Pumpe startet, wenn der Druck fällt."),
    ("ja", "フィルターは毎月交換します。"),
    ("zh", "打开阀门之前请阅读手册。"),
    ("pt", "O filtro é trocado todos os meses."),
    ("th", "อ่านคู่มือก่อนเปิดวาล์ว"),
)


def _hit(position: int, language: str, text: str) -> Hit:
    chunk = Chunk(f"c{position}", f"file:///manual-{language}.txt", 0, text, 0, len(text), language)
    legs = (LegScore("dense", position + 1, 0.9 - position / 10), LegScore("sparse", 6 - position, 1.5))
    return Hit(chunk, f"Manual ({language})", 1 / (61 + position), legs, "manuals")


HITS = tuple(_hit(position, language, text) for position, (language, text) in enumerate(TEXTS))


def _expected(hits: Sequence[Hit], scores: Sequence[float], k: int) -> list[Hit]:
    """The oracle: hits sorted by descending score, top k, each with its rerank leg appended."""
    order = sorted(range(len(hits)), key=lambda i: -scores[i])[:k]
    return [replace(hits[i], score=scores[i], legs=(*hits[i].legs, LegScore("rerank", rank, scores[i])))
            for rank, i in enumerate(order, start=1)]


# --- cross-encoder -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cross_encoder(tiny_cross_encoder: Path) -> CrossEncoderReranker:
    return CrossEncoderReranker.load(str(tiny_cross_encoder))


def test_cross_encoder_orders_by_predict_scores(cross_encoder: CrossEncoderReranker, tiny_cross_encoder: Path
                                                ) -> None:
    from sentence_transformers import CrossEncoder

    independent = CrossEncoder(str(tiny_cross_encoder), max_length=512)
    scores = [float(s) for s in independent.predict([(QUESTION, hit.chunk.text) for hit in HITS], batch_size=16)]
    assert len(set(scores)) == len(scores)
    assert cross_encoder.rerank(QUESTION, HITS, k=len(HITS)) == _expected(HITS, scores, len(HITS))


def test_cross_encoder_scores_are_sigmoid_of_the_logit(cross_encoder: CrossEncoderReranker,
                                                       tiny_cross_encoder: Path) -> None:
    # sentence-transformers' default activation for a one-label model without a saved one is nn.Sigmoid().
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_cross_encoder))
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_cross_encoder)).eval()
    texts = [hit.chunk.text for hit in HITS]
    with torch.inference_mode():
        inputs = tokenizer([QUESTION] * len(texts), texts, padding=True, return_tensors="pt")
        probabilities = torch.sigmoid(model(**inputs).logits[:, 0]).tolist()
    assert cross_encoder.score(QUESTION, texts) == pytest.approx(probabilities, abs=1e-5)


def test_cross_encoder_missing_directory(tmp_path: Path, bge_m3_extra: None) -> None:
    missing = tmp_path / "no-model"
    with pytest.raises(EncoderError) as error:
        CrossEncoderReranker.load(str(missing))
    assert str(error.value) == (
        f"cross-encoder model directory {missing} does not exist or is not a directory; pass a directory "
        "holding a cross-encoder checkpoint or a hub id like BAAI/bge-reranker-v2-m3"
    )


def test_cross_encoder_hub_id_offline_names_model_and_fix(monkeypatch: pytest.MonkeyPatch, bge_m3_extra: None
                                                           ) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # also set by conftest before huggingface_hub is imported
    with pytest.raises(EncoderError, match=r"^could not load cross-encoder rosetta-tests/no-such-reranker: .+; "
                       r"download it on a machine with internet or pass a local path$"):
        CrossEncoderReranker.load("rosetta-tests/no-such-reranker")


# --- ColBERT -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def colbert(tiny_bge_m3: Path) -> ColbertReranker:
    return ColbertReranker.load(str(tiny_bge_m3))


def test_colbert_score_by_hand() -> None:
    query = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    passage = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, -1.0]], dtype=np.float32)
    assert colbert_score(query, passage) == pytest.approx((1.0 + 0.8) / 2)


@pytest.mark.parametrize("shapes", [((2, 3), (4, 2)), ((0, 2), (1, 2)), ((2, 2), (0, 2)), ((2,), (2, 2))])
def test_colbert_score_rejects_bad_shapes(shapes: tuple[tuple[int, ...], tuple[int, ...]]) -> None:
    with pytest.raises(ValueError, match="colbert_score needs"):
        colbert_score(np.ones(shapes[0], dtype=np.float32), np.ones(shapes[1], dtype=np.float32))


def test_colbert_score_equals_flagembedding(colbert: ColbertReranker) -> None:
    (query,) = colbert.encoder.encode_queries([QUESTION])
    assert query.colbert is not None
    for passage in colbert.encoder.encode_passages([hit.chunk.text for hit in HITS]):
        assert passage.colbert is not None
        reference = float(colbert.encoder.model.colbert_score(query.colbert, passage.colbert))
        assert colbert_score(query.colbert, passage.colbert) == pytest.approx(reference, rel=1e-6, abs=1e-7)


def test_colbert_orders_by_colbert_score(colbert: ColbertReranker) -> None:
    (query,) = colbert.encoder.encode_queries([QUESTION])
    passages = colbert.encoder.encode_passages([hit.chunk.text for hit in HITS])
    scores = [colbert_score(query.colbert, passage.colbert)  # type: ignore[arg-type]
              for passage in passages]
    assert len(set(scores)) == len(scores)
    assert colbert.rerank(QUESTION, HITS, k=4) == _expected(HITS, scores, 4)


def test_colbert_from_encoder_shares_the_model(colbert: ColbertReranker) -> None:
    plain = replace(colbert.encoder, colbert=False)
    with pytest.raises(ValueError, match=r"use ColbertReranker.from_encoder\(encoder\)"):
        ColbertReranker(plain)
    assert ColbertReranker.from_encoder(plain) == colbert


# --- the contract, for both local rerankers --------------------------------------------------------


@pytest.fixture(params=["cross_encoder", "colbert"])
def local(request: pytest.FixtureRequest) -> Reranker:
    reranker: Reranker = request.getfixturevalue(request.param)
    return reranker


def test_contract_truncates_keeps_legs_and_ranks_from_one(local: Reranker) -> None:
    full = local.rerank(QUESTION, HITS, k=len(HITS) + 5)
    assert len(full) == len(HITS) and [hit.score for hit in full] == sorted((h.score for h in full), reverse=True)
    assert [hit.leg("rerank") for hit in full] == [LegScore("rerank", r, h.score) for r, h in enumerate(full, 1)]
    originals = {hit.key: hit for hit in HITS}
    assert all(hit.legs[:-1] == originals[hit.key].legs for hit in full)
    assert local.rerank(QUESTION, HITS, k=2) == full[:2]


def test_contract_empty_input_and_bad_k(local: Reranker) -> None:
    assert local.rerank(QUESTION, [], k=3) == []
    with pytest.raises(ValueError, match=r"^rerank k must be >= 1, got 0$"):
        local.rerank(QUESTION, HITS, k=0)


def test_importing_rerankers_loads_no_heavy_package() -> None:
    code = ("import sys, rag.search.rerankers.cross_encoder, rag.search.rerankers.colbert, rag.search.rerankers.cohere; "
            "print(sorted({'torch', 'sentence_transformers', 'FlagEmbedding', 'cohere'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# --- Cohere against a local server -----------------------------------------------------------------

KEY = "co-test-key-5f0c2a9e"
RATE_LIMITED: dict[str, JsonValue] = {"message": "You are using a Trial key, which is limited to 10 API calls / minute."}
# The stub asks for short waits, which the SDK honours, so retries take milliseconds.
FAST_RETRY = {"retry-after-ms": "20"}
URL = "https://api.cohere.com"


@dataclass
class Reply:
    status: int
    body: dict[str, JsonValue]
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Request:
    path: str
    authorization: str | None
    body: Any


@dataclass
class CohereStub:
    url: str = ""
    replies: list[Reply] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)


def _success(*pairs: tuple[int, float]) -> Reply:
    results: list[JsonValue] = [{"index": i, "relevance_score": s} for i, s in pairs]
    meta: JsonValue = {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}
    return Reply(200, {"id": "5c1a4d8e-rerank", "results": results, "meta": meta})


def _handler(stub: CohereStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            stub.requests.append(Request(self.path, self.headers.get("Authorization"), body))
            reply = stub.replies.pop(0)
            time.sleep(reply.delay)
            data = json.dumps(reply.body).encode()
            try:
                self.send_response(reply.status)
                for name, value in {"Content-Type": "application/json", **reply.headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[CohereStub]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    state = CohereStub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def _cohere(stub: CohereStub, monkeypatch: pytest.MonkeyPatch, timeout: float = 5.0) -> CohereReranker:
    monkeypatch.setenv("COHERE_API_KEY", KEY)
    return CohereReranker.load(base_url=stub.url, timeout=timeout)


def test_cohere_maps_results_back_to_hits(stub: CohereStub, monkeypatch: pytest.MonkeyPatch) -> None:
    stub.replies.append(_success((4, 0.93), (0, 0.91), (2, 0.12)))
    reranker: Reranker = _cohere(stub, monkeypatch)
    assert reranker.rerank(QUESTION, HITS, k=3) == _expected([HITS[4], HITS[0], HITS[2]], [0.93, 0.91, 0.12], 3)
    documents: list[str] = [text for _, text in TEXTS]
    assert stub.requests == [Request("/v2/rerank", f"Bearer {KEY}",
                                     {"model": "rerank-v3.5", "query": QUESTION, "documents": documents, "top_n": 3})]
    assert KEY not in repr(reranker)


def test_cohere_retries_after_429(stub: CohereStub, monkeypatch: pytest.MonkeyPatch) -> None:
    stub.replies += [Reply(429, RATE_LIMITED, FAST_RETRY), _success((1, 0.7))]
    assert _cohere(stub, monkeypatch).rerank(QUESTION, HITS, k=1) == _expected([HITS[1]], [0.7], 1)
    assert len(stub.requests) == 2


def test_cohere_unauthorized_hides_the_key(stub: CohereStub, monkeypatch: pytest.MonkeyPatch) -> None:
    stub.replies.append(Reply(401, {"message": "invalid api token"}))
    with pytest.raises(GenerationError) as error:
        _cohere(stub, monkeypatch).rerank(QUESTION, HITS, k=2)
    message = "Cohere rejected the API key (HTTP 401: invalid api token); check the key in $COHERE_API_KEY"
    assert str(error.value) == message and KEY not in str(error.value)
    assert type(error.value.__cause__).__name__ == "UnauthorizedError"


def test_cohere_gives_up_after_repeated_500(stub: CohereStub, monkeypatch: pytest.MonkeyPatch) -> None:
    stub.replies += [Reply(500, {"message": "internal server error"}, FAST_RETRY)] * 3
    with pytest.raises(GenerationError) as error:
        _cohere(stub, monkeypatch).rerank(QUESTION, HITS, k=2)
    assert str(error.value) == "Cohere failed to rerank (HTTP 500: internal server error) after 2 retries; retry later"
    assert len(stub.requests) == 3


def test_cohere_timeout(stub: CohereStub, monkeypatch: pytest.MonkeyPatch) -> None:
    stub.replies.append(replace(_success((0, 0.5)), delay=1.0))
    with pytest.raises(GenerationError) as error:
        _cohere(stub, monkeypatch, timeout=0.2).rerank(QUESTION, HITS, k=1)
    assert str(error.value) == f"Cohere rerank at {stub.url} timed out (ReadTimeout); retry later or raise the timeout"


def test_cohere_needs_the_key() -> None:
    with pytest.raises(ConfigError) as error:
        CohereReranker.load(environ={"COHERE_API_KEY": "  "})
    assert str(error.value) == "set COHERE_API_KEY to use the cohere reranker, or choose another reranker"


def test_cohere_empty_input_and_bad_k(stub: CohereStub, monkeypatch: pytest.MonkeyPatch) -> None:
    reranker = _cohere(stub, monkeypatch)
    assert reranker.rerank(QUESTION, [], k=2) == []
    with pytest.raises(ValueError, match=r"^rerank k must be >= 1, got 0$"):
        reranker.rerank(QUESTION, HITS, k=0)
    assert stub.requests == []


def _sdk_errors() -> list[BaseException]:
    import cohere
    import httpx

    names = ("BadRequestError", "UnauthorizedError", "ForbiddenError", "NotFoundError", "TooManyRequestsError",
             "InternalServerError", "ServiceUnavailableError", "GatewayTimeoutError", "InvalidTokenError")
    errors: list[BaseException] = [getattr(cohere, name)(body={"message": "x"}) for name in names]
    request = httpx.Request("POST", f"{URL}/v2/rerank")
    return [*errors, cohere.core.ApiError(status_code=200, body="not json"),
            httpx.ConnectError("refused", request=request), httpx.ReadTimeout("slow", request=request)]


def test_cohere_mapping_covers_the_sdk_errors() -> None:
    for exc in _sdk_errors():
        with pytest.raises(GenerationError) as error, _cohere_errors("COHERE_API_KEY", URL, "rerank-v3.5"):
            raise exc
        assert error.value.__cause__ is exc
