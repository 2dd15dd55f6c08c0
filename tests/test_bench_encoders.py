"""The BGE-M3 CPU benchmark on the tiny BGE-M3-format model: its behaviour (each variant runs in its own
process, agreement is computed on the same passages), not its speed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

if os.environ.get("ROSETTA_TEST_REQUIRE_BGE_M3") != "1":
    pytest.importorskip("FlagEmbedding", reason="the bge-m3 extra (torch + FlagEmbedding) is not installed")
    pytest.importorskip("onnxruntime", reason="the bge-m3 extra (onnxruntime) is not installed")

from evals.bench_encoders import VARIANTS, manual_chunks, measure
from tests.conftest import DEMO


@pytest.mark.slow  # three processes load torch and ONNX Runtime: ~1 min; `make soak`
def test_bench_encoders_runs_every_variant_on_the_same_passages(tiny_bge_m3: Path, tmp_path: Path) -> None:
    shutil.copytree(tiny_bge_m3, tmp_path / "bge-m3-shaped")  # present: the bench does not build its own
    report = measure(DEMO, tmp_path, passages=4, batch_size=2)
    assert report["passages"] == 4 and list(report["variants"]) == list(VARIANTS)
    for row in report["variants"].values():
        assert row["passages_per_s"] > 0 and row["peak_rss_mb"] > 0 and row["mean_tokens"] > 2
    agreement = report["agreement"]
    assert agreement["onnx_fp32_vs_flagembedding_max_abs_dense"] < 1e-4
    assert agreement["onnx_fp32_vs_flagembedding_max_abs_sparse"] < 1e-4
    assert agreement["int8_vs_fp32_dense_cosine_min"] > 0.9
    assert set(report["exports"]) == {"fp32", "int8"}


def test_the_sample_spreads_over_the_corpus() -> None:
    every = manual_chunks(DEMO, 10_000)
    sample = manual_chunks(DEMO, 4)
    assert len(sample) == 4 and set(sample) < set(every)
    assert sample[0] == every[0] and sample[-1] != every[3]  # a stride, not the first four
