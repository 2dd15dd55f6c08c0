"""The retrieval harness end to end on a tiny XQuAD: session Postgres, the hashing fake encoder."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from evals.cli import eval_app, render
from evals.report import Leg, Report, System
from evals.retrieval import DatasetKind, run
from rag.config import Config
from rag.words import TERMS_VERSION
from tests.fakes import HashEncoder
from tests.test_evals import write_xquad

METRIC_KEYS = {"ndcg@10", "recall@1", "recall@5", "recall@10", "mrr@10", "n"}


def _run(config: Config, tmp_path: Path, encoder: HashEncoder, systems: tuple[System, ...], legs: tuple[Leg, ...]
         ) -> Report:
    return run(DatasetKind.XQUAD, write_xquad(tmp_path / "xquad"), config, tmp_path / "out", ("en", "de"),
               ("en", "de"), legs, systems, encoder=encoder)


def test_harness_writes_metrics_and_heatmap(config: Config, tmp_path: Path) -> None:
    report = _run(config, tmp_path, HashEncoder(), (System.ROSETTA,), tuple(Leg))
    data = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert set(data) == {"pairs", "summary", "skipped", "config"}
    assert len(data["pairs"]) == 2 * 2 * 3
    assert all(set(p) == {"system", "query_lang", "doc_lang", "leg"} | METRIC_KEYS for p in data["pairs"])
    assert set(data["summary"]) == {"rosetta/dense", "rosetta/sparse", "rosetta/hybrid"}
    for leg in data["summary"].values():
        assert set(leg) == {"cross_lingual", "monolingual"}
        assert set(leg["cross_lingual"]) == METRIC_KEYS and leg["monolingual"]["n"] == 6
        assert leg["monolingual"]["recall@10"] == 1.0
    assert data["skipped"] == ["rosetta/hybrid+rerank: no reranker configured (set ROSETTA_RERANKER)"]
    assert data["config"]["collections"] == {"en": "eval-xquad-en", "de": "eval-xquad-de"}
    assert data["config"]["terms"] == TERMS_VERSION  # the lexical splitting the numbers were measured with
    assert (tmp_path / "out" / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = io.StringIO()
    render(report, Console(file=text, width=100))
    assert "rosetta" in text.getvalue() and "hybrid+rerank: no reranker" in text.getvalue()


def test_a_second_run_encodes_nothing(config: Config, tmp_path: Path) -> None:
    encoder = HashEncoder()
    first = _run(config, tmp_path, encoder, (System.ROSETTA,), (Leg.DENSE,))
    calls = len(encoder.calls)
    second = _run(config, tmp_path, encoder, (System.ROSETTA,), (Leg.DENSE,))
    assert len(encoder.calls) == calls
    assert second.pairs == first.pairs


def test_llamaindex_peer_on_the_same_passages_and_encodings(config: Config, tmp_path: Path) -> None:
    encoder = HashEncoder()
    _run(config, tmp_path, encoder, (System.ROSETTA,), (Leg.DENSE,))
    calls = len(encoder.calls)
    report = _run(config, tmp_path, encoder, (System.LLAMAINDEX,), (Leg.DENSE, Leg.HYBRID))
    assert len(encoder.calls) == calls  # every passage and query came from Rosetta's cache
    summary = report.summary()
    assert set(summary) == {(System.LLAMAINDEX, Leg.DENSE), (System.LLAMAINDEX, Leg.HYBRID)}
    assert summary[(System.LLAMAINDEX, Leg.DENSE)][1].recall10 == 1.0
    assert summary[(System.LLAMAINDEX, Leg.HYBRID)][1].recall10 == 1.0


def test_cli_reports_a_bad_option_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(eval_app, ["retrieval", "--dataset", "squad", "--data", str(tmp_path),
                                           "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "error: unknown dataset in 'squad'; choose from: xquad, beir, manuals" in result.output
