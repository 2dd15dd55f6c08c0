"""BGE-M3 on ONNX Runtime against FlagEmbedding on the tiny BGE-M3-format model: equal outputs in fp32, a
quantised graph in int8, exports cached and rebuilt when the checkpoint changes, and the runtime choice."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

if os.environ.get("ROSETTA_TEST_REQUIRE_BGE_M3") == "1":  # `make test` installs the extra: a broken one fails
    import FlagEmbedding  # noqa: F401
    import onnxruntime  # noqa: F401
else:
    pytest.importorskip("FlagEmbedding", reason="the bge-m3 extra (torch + FlagEmbedding) is not installed")
    pytest.importorskip("onnxruntime", reason="the bge-m3 extra (onnxruntime) is not installed")

from rag.config import Config, EncoderKind, ModelConfig, Precision, Runtime, load_config
from rag.encoders import BgeM3Options, load_bge_m3
from rag.encoders.bge_m3 import BgeM3Encoder
from rag.encoders.bge_m3_onnx import BgeM3OnnxEncoder, checkpoint_key
from rag.errors import ConfigError, EncoderError
from rag.rosetta import Rosetta
from rag.types import Encoding

TEXTS = [
    "Der Filter wird monatlich gewechselt.",
    "フィルターは毎月交換します。",
    "เปลี่ยนไส้กรองทุกเดือน",
    "the filter the filter Filter",
    "x",
    "Die Pumpe startet, wenn der Druck fällt. " * 40,  # beyond max_length: truncated
]
MAX_LENGTH = 64


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def reference(tiny_bge_m3: Path) -> list[Encoding]:
    flag = BgeM3Encoder.load(str(tiny_bge_m3), device="cpu", max_length=MAX_LENGTH, colbert=True)
    return flag.encode_passages(TEXTS)


def _onnx(model: Path, cache: Path, precision: Precision = Precision.FP32, **kwargs: Any) -> BgeM3OnnxEncoder:
    return BgeM3OnnxEncoder.load(str(model), precision=precision, cache_dir=cache, max_length=MAX_LENGTH,
                                 colbert=True, **kwargs)


def _dense_sparse_colbert(encoding: Encoding) -> tuple[Any, Mapping[int, float], Any]:
    assert encoding.sparse is not None and encoding.colbert is not None
    return encoding.dense, encoding.sparse.weights, encoding.colbert


@pytest.mark.parametrize("batch_size", [1, 4])  # 4: texts of different lengths padded in one batch
def test_fp32_equals_flagembedding(tiny_bge_m3: Path, cache: Path, reference: list[Encoding],
                                   batch_size: int) -> None:
    encoder = _onnx(tiny_bge_m3, cache, batch_size=batch_size)
    for text, mine, theirs in zip(TEXTS, encoder.encode_passages(TEXTS), reference, strict=True):
        dense, sparse, colbert = _dense_sparse_colbert(mine)
        ref_dense, ref_sparse, ref_colbert = _dense_sparse_colbert(theirs)
        np.testing.assert_allclose(dense, ref_dense, atol=1e-4, err_msg=text)
        assert set(sparse) == set(ref_sparse), text
        assert sparse == pytest.approx(ref_sparse, abs=1e-4), text
        assert colbert.shape == ref_colbert.shape, text
        np.testing.assert_allclose(colbert, ref_colbert, atol=1e-4, err_msg=text)


def test_identity_and_token_counts_match_flagembedding(tiny_bge_m3: Path, cache: Path) -> None:
    flag = BgeM3Encoder.load(str(tiny_bge_m3), device="cpu", max_length=MAX_LENGTH)
    encoder = _onnx(tiny_bge_m3, cache)
    assert (encoder.name, encoder.dim, encoder.sparse_dim) == (flag.name, flag.dim, flag.sparse_dim)
    assert [encoder.count_tokens(t) for t in TEXTS] == [flag.count_tokens(t) for t in TEXTS]
    assert encoder.count_tokens(TEXTS[-1]) > MAX_LENGTH  # counted before truncation, as FlagEmbedding does
    assert encoder.encode_queries([]) == []
    with pytest.raises(TypeError, match="wrap it in a list"):
        encoder.encode_queries("one string")


def test_int8_is_a_quantised_graph_that_agrees_with_fp32(tiny_bge_m3: Path, cache: Path,
                                                          reference: list[Encoding]) -> None:
    import onnx

    encoder = _onnx(tiny_bge_m3, cache, Precision.INT8)
    graph = onnx.load(str(cache / checkpoint_key(tiny_bge_m3) / "model-int8.onnx")).graph
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= {node.op_type for node in graph.node}
    assert encoder.cache_name == f"{encoder.name}#int8"  # never served fp32 cache entries, nor feeds them
    for mine, theirs in zip(encoder.encode_passages(TEXTS), reference, strict=True):
        assert float(mine.dense @ theirs.dense) > 0.95


def test_exports_are_reused_and_redone_when_the_checkpoint_changes(tiny_bge_m3: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_bge_m3, model)
    cache = tmp_path / "cache"
    _onnx(model, cache)
    [exported] = [p for p in cache.iterdir() if not p.name.startswith(".")]
    first = (exported / "model-fp32.onnx").stat().st_mtime_ns
    _onnx(model, cache)
    assert (exported / "model-fp32.onnx").stat().st_mtime_ns == first  # not exported again
    (model / "sparse_linear.pt").write_bytes((model / "sparse_linear.pt").read_bytes() + b"")
    os.utime(model / "sparse_linear.pt", ns=(first + 10**9, first + 10**9))
    _onnx(model, cache)
    assert len([p for p in cache.iterdir() if not p.name.startswith(".")]) == 2  # a new export for new heads


def test_a_checkpoint_without_a_fast_tokenizer_is_refused(tiny_bge_m3: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_bge_m3, model)
    (model / "tokenizer.json").unlink()
    with pytest.raises(EncoderError, match=r"lacks tokenizer\.json, which the ONNX encoder reads"):
        _onnx(model, tmp_path / "cache")


def test_runtime_choice(tiny_bge_m3: Path, cache: Path) -> None:
    model = str(tiny_bge_m3)
    assert isinstance(load_bge_m3(model, None, 4, BgeM3Options(onnx_cache=cache)), BgeM3OnnxEncoder)
    assert isinstance(load_bge_m3(model, "cpu", 4, BgeM3Options(runtime=Runtime.TORCH, onnx_cache=cache)),
                      BgeM3Encoder)
    with pytest.raises(EncoderError, match="precision int8 runs on ONNX Runtime"):
        load_bge_m3(model, "cpu", 4, BgeM3Options(Precision.INT8, Runtime.TORCH, cache))
    with pytest.raises(EncoderError, match="precision fp16 runs on torch"):
        load_bge_m3(model, "cpu", 4, BgeM3Options(Precision.FP16, Runtime.ONNX, cache))


def test_precision_and_runtime_are_configurable() -> None:
    config = load_config(environ={"ROSETTA_PRECISION": "INT8", "ROSETTA_RUNTIME": "onnx"})
    assert (config.models.precision, config.models.runtime) == (Precision.INT8, Runtime.ONNX)
    with pytest.raises(ConfigError, match="unknown precision 'int4'; choose one of: fp32, int8, fp16"):
        load_config(environ={"ROSETTA_PRECISION": "int4"})


def test_rosetta_ingests_and_searches_on_onnx_int8(config: Config, tiny_bge_m3: Path, demo_copy: Path) -> None:
    models = ModelConfig(encoder=EncoderKind.BGE_M3, bge_m3_model=str(tiny_bge_m3), precision=Precision.INT8)
    config = Config(db=config.db, models=models, collection="onnx")
    notices: list[str] = []
    with Rosetta.open(config, notice=notices.append) as rosetta:
        report = rosetta.ingest([demo_copy / "de"])
        hits = rosetta.search("Wie oft wird der Luftfilter gewechselt?", k=3)
        encoder = rosetta.encoder()
    assert report.failed == 0 and report.chunks > 0
    assert len(hits) == 3 and {hit.chunk.language for hit in hits} == {"de"}
    assert encoder.name == f"bge-m3:{tiny_bge_m3.resolve()}"
    target = config.db.data_dir / "models" / "onnx" / checkpoint_key(tiny_bge_m3)
    assert (target / "model-int8.onnx").is_file()
    assert notices == [f"encoder: exporting {tiny_bge_m3.resolve()} to ONNX (int8), once, into {target}"]


def test_an_export_with_a_file_per_tensor_is_saved_with_one_data_file(tiny_bge_m3: Path, cache: Path,
                                                                       tmp_path: Path) -> None:
    import onnx

    from rag.encoders.bge_m3_onnx import _single_file

    # What the exporter writes for a graph over 2 GB (the real BGE-M3): a file per tensor beside the graph.
    scattered = tmp_path / "raw"
    scattered.mkdir()
    _onnx(tiny_bge_m3, cache)
    model = onnx.load(str(cache / checkpoint_key(tiny_bge_m3) / "model-fp32.onnx"))
    onnx.save_model(model, str(scattered / "model-fp32.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=False, size_threshold=0)
    assert len(list(scattered.iterdir())) > 10
    out = tmp_path / "final" / "model-fp32.onnx"
    out.parent.mkdir()
    _single_file(scattered / "model-fp32.onnx", out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["model-fp32.onnx", "model-fp32.onnx.data"]
    shutil.rmtree(scattered)
    reloaded = onnx.load(str(out))
    assert [t.name for t in reloaded.graph.initializer] == [t.name for t in model.graph.initializer]
