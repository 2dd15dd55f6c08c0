"""BgeM3Encoder on the tiny BGE-M3-format model, loaded through ``BgeM3Encoder.load`` like users load it."""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

if os.environ.get("ROSETTA_TEST_REQUIRE_BGE_M3") == "1":  # `make test` installs the extra: a broken one fails
    import FlagEmbedding  # noqa: F401
else:
    pytest.importorskip("FlagEmbedding", reason="the bge-m3 extra (torch + FlagEmbedding) is not installed")

from rag.encoders.bge_m3 import BgeM3Encoder, lexical_weights
from rag.errors import EncoderError
from rag.types import Encoder

TEXTS = {
    "de": "Der Filter wird monatlich gewechselt.",
    "ja": "フィルターは毎月交換します。",
    "th": "เปลี่ยนไส้กรองทุกเดือน",
}
# "▁t", "he", "▁filt", "er" each occur twice (and "er" a third time) at different positions.
REPEATED = "the filter the filter Filter"
HEADS_MESSAGE = (
    "{dir} lacks {missing}; a BGE-M3 checkpoint must contain sparse_linear.pt and colbert_linear.pt "
    "(copy them from BAAI/bge-m3 or use a complete checkpoint)"
)


@pytest.fixture(scope="module")
def encoder(tiny_bge_m3: Path) -> BgeM3Encoder:
    return BgeM3Encoder.load(str(tiny_bge_m3))


@pytest.fixture(scope="module")
def colbert_encoder(tiny_bge_m3: Path) -> BgeM3Encoder:
    return BgeM3Encoder.load(str(tiny_bge_m3), colbert=True)


@pytest.fixture(scope="module")
def tokenizer(tiny_bge_m3: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_bge_m3))


def _special_ids(tokenizer: Any) -> set[int]:
    # The tokens FlagEmbedding's _process_token_weights drops.
    return {tokenizer.cls_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id}


def test_identity_follows_the_model(encoder: BgeM3Encoder, tiny_bge_m3: Path, tokenizer: Any) -> None:
    protocol: Encoder = encoder
    assert (protocol.name, protocol.dim, protocol.sparse_dim) == (
        f"bge-m3:{tiny_bge_m3.resolve()}",
        32,
        len(tokenizer),
    )


@pytest.mark.parametrize("language", sorted(TEXTS))
def test_encodes_each_script(encoder: BgeM3Encoder, tokenizer: Any, language: str) -> None:
    text = TEXTS[language]
    [encoding] = encoder.encode_passages([text])
    ids = tokenizer(text)["input_ids"]
    assert encoding.dense.shape == (32,) and encoding.dense.dtype == np.float32
    assert np.linalg.norm(encoding.dense) == pytest.approx(1.0, abs=1e-5)
    assert encoding.sparse is not None and encoding.sparse.dim == len(tokenizer)
    assert encoding.sparse.weights and set(encoding.sparse.weights) <= set(ids) - _special_ids(tokenizer)
    assert all(weight > 0 for weight in encoding.sparse.weights.values())
    assert encoding.colbert is None


def test_colbert_has_one_unit_row_per_token_after_cls(colbert_encoder: BgeM3Encoder, tokenizer: Any) -> None:
    encodings = colbert_encoder.encode_passages(list(TEXTS.values()))
    for text, encoding in zip(TEXTS.values(), encodings):
        assert encoding.colbert is not None and encoding.colbert.dtype == np.float32
        assert encoding.colbert.shape == (len(tokenizer(text)["input_ids"]) - 1, 32)
        np.testing.assert_allclose(np.linalg.norm(encoding.colbert, axis=1), 1.0, atol=1e-5)


def test_texts_are_truncated_to_max_length(tiny_bge_m3: Path) -> None:
    short = BgeM3Encoder.load(str(tiny_bge_m3), max_length=8, colbert=True)
    [encoding] = short.encode_passages(["Filter " * 40])
    assert _required(encoding.colbert).shape == (7, 32)
    assert short.count_tokens("Filter " * 40) > 8


def test_queries_and_passages_encode_alike(encoder: BgeM3Encoder) -> None:
    [query] = encoder.encode_queries([TEXTS["de"]])
    [passage] = encoder.encode_passages([TEXTS["de"]])
    np.testing.assert_array_equal(query.dense, passage.dense)
    assert query.sparse == passage.sparse


def test_empty_input_and_a_bare_string(encoder: BgeM3Encoder) -> None:
    assert encoder.encode_passages([]) == []
    with pytest.raises(TypeError, match="wrap it in a list"):
        encoder.encode_queries(TEXTS["de"])


def _reference(directory: Path, tokenizer: Any, text: str) -> tuple[np.ndarray, np.ndarray, list[int], Any]:
    """Dense, ColBERT vectors, token ids and per-position lexical weights computed from scratch."""
    import torch
    from transformers import AutoModel

    backbone = AutoModel.from_pretrained(str(directory)).eval()
    sparse_head, colbert_head = torch.nn.Linear(32, 1), torch.nn.Linear(32, 32)
    sparse_head.load_state_dict(torch.load(directory / "sparse_linear.pt", weights_only=True))
    colbert_head.load_state_dict(torch.load(directory / "colbert_linear.pt", weights_only=True))
    ids = tokenizer(text)["input_ids"]
    with torch.no_grad():
        states = backbone(input_ids=torch.tensor([ids])).last_hidden_state[0]
        dense = torch.nn.functional.normalize(states[0], dim=-1)
        colbert = torch.nn.functional.normalize(colbert_head(states[1:]), dim=-1)
        weights = torch.relu(sparse_head(states)).squeeze(-1)
    return dense.numpy(), colbert.numpy(), ids, weights.tolist()


def test_matches_a_from_scratch_computation(
    colbert_encoder: BgeM3Encoder, tiny_bge_m3: Path, tokenizer: Any
) -> None:
    texts = [*TEXTS.values(), REPEATED]
    # One batch, so shorter texts are padded: the outputs must not depend on it.
    encodings = colbert_encoder.encode_passages(texts)
    for text, encoding in zip(texts, encodings):
        dense, colbert, ids, weights = _reference(tiny_bge_m3, tokenizer, text)
        expected = lexical_weights(ids, weights, _special_ids(tokenizer))
        np.testing.assert_allclose(encoding.dense, dense, atol=1e-5)
        np.testing.assert_allclose(_required(encoding.colbert), colbert, atol=1e-5)
        assert _required(encoding.sparse).weights == pytest.approx(expected, abs=1e-5)


def test_repeated_tokens_take_their_max(
    colbert_encoder: BgeM3Encoder, tiny_bge_m3: Path, tokenizer: Any
) -> None:
    [encoding] = colbert_encoder.encode_passages([REPEATED])
    _, _, ids, weights = _reference(tiny_bge_m3, tokenizer, REPEATED)
    repeated = {token for token in ids if ids.count(token) > 1}
    per_position = {token: [w for i, w in zip(ids, weights) if i == token] for token in repeated}
    assert any(len(set(ws)) > 1 and max(ws) > 0 for ws in per_position.values())
    sparse = _required(encoding.sparse).weights
    for token, ws in per_position.items():
        assert sparse.get(token, 0.0) == pytest.approx(max(max(ws), 0.0), abs=1e-5)


def _required(value: Any) -> Any:
    assert value is not None
    return value


def test_lexical_weights_keep_the_max_and_drop_specials() -> None:
    ids = [0, 7, 9, 7, 5, 9, 2, 1]
    weights = [0.9, 0.2, 0.0, 0.6, -0.1, 0.3, 0.8, 0.7]
    assert lexical_weights(ids, weights, special_ids={0, 1, 2, 3}) == {7: 0.6, 9: 0.3}


@pytest.mark.parametrize(
    "missing", [("sparse_linear.pt",), ("colbert_linear.pt",), ("sparse_linear.pt", "colbert_linear.pt")]
)
def test_a_checkpoint_without_heads_is_refused(
    tiny_bge_m3: Path, tmp_path: Path, missing: tuple[str, ...]
) -> None:
    copy = Path(shutil.copytree(tiny_bge_m3, tmp_path / "incomplete")).resolve()
    for name in missing:
        (copy / name).unlink()
    with pytest.raises(EncoderError) as caught:
        BgeM3Encoder.load(str(copy))
    assert str(caught.value) == HEADS_MESSAGE.format(dir=copy, missing=" and ".join(missing))


def test_a_head_of_the_wrong_shape_is_refused(tiny_bge_m3: Path, tmp_path: Path) -> None:
    import torch

    copy = Path(shutil.copytree(tiny_bge_m3, tmp_path / "wrong-head")).resolve()
    torch.save(torch.nn.Linear(32, 2).state_dict(), copy / "sparse_linear.pt")
    with pytest.raises(EncoderError, match="(?s)^could not load BGE-M3 from .*size mismatch") as caught:
        BgeM3Encoder.load(str(copy))
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(EncoderError) as caught:
        BgeM3Encoder.load(str(tmp_path / "nowhere"))
    assert str(caught.value) == (
        f"BGE-M3 model directory {tmp_path / 'nowhere'} does not exist or is not a directory; "
        "pass a directory holding a BGE-M3 checkpoint or a hub id like BAAI/bge-m3"
    )


def test_an_uncached_hub_id_fails_fast_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError

    def refuse(*args: object) -> None:
        raise AssertionError("BgeM3Encoder.load tried to open a network connection")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # The hub reads these variables once, at import; patch the values it uses.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(socket.socket, "connect", refuse)
    started = time.monotonic()
    with pytest.raises(EncoderError) as caught:
        BgeM3Encoder.load("BAAI/bge-m3")
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert message.startswith("could not load BAAI/bge-m3: ")
    assert message.endswith("; download it on a machine with internet or pass a local path")
    assert isinstance(caught.value.__cause__, LocalEntryNotFoundError)


def test_max_length_beyond_the_model_is_refused(tiny_bge_m3: Path) -> None:
    with pytest.raises(ValueError) as caught:
        BgeM3Encoder.load(str(tiny_bge_m3), max_length=8193)
    assert str(caught.value) == (
        f"max_length 8193 exceeds the 8192 tokens the model in {tiny_bge_m3.resolve()} can read; "
        "pass max_length <= 8192"
    )


@pytest.mark.parametrize("text", [*TEXTS.values(), "", "Filter " * 40])
def test_count_tokens_matches_the_tokenizer(encoder: BgeM3Encoder, tokenizer: Any, text: str) -> None:
    assert encoder.count_tokens(text) == len(tokenizer(text)["input_ids"])


def test_missing_packages_are_named_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "FlagEmbedding" else real(name))
    with pytest.raises(EncoderError) as caught:
        BgeM3Encoder.load("BAAI/bge-m3")
    assert str(caught.value) == (
        "the BGE-M3 encoder needs packages that are not installed (FlagEmbedding); "
        "pip install torch (the build for your machine), then pip install 'rosetta-rag[bge-m3]'"
    )
