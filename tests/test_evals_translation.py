"""The harness's human translator: a parallel dataset's own translations stand in for an LLM's."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evals.cli import eval_app
from evals.datasets import load_xquad
from evals.mixed import run
from evals.report import Leg
from evals.retrieval import DatasetKind
from evals.translation import ParallelTranslator, TranslatorKind
from rag.config import Config, RetrievalConfig
from rag.errors import ConfigError
from tests.fakes import HashEncoder
from tests.test_evals import write_xquad


def test_a_query_is_translated_by_its_id(tmp_path: Path) -> None:
    translator = ParallelTranslator(load_xquad(write_xquad(tmp_path), ["en", "de"]))
    assert translator.translate("How often is the filter changed?", "de") == "Wie oft wird der Filter gewechselt?"
    assert translator.translate("Was wandelt Photosynthese um?", "en") == "What does photosynthesis turn light into?"
    with pytest.raises(ConfigError, match="'Who are you\\?' is not a query of xquad"):
        translator.translate("Who are you?", "de")
    with pytest.raises(ConfigError, match="query q0 of xquad has no th version; add th to --query-langs"):
        translator.translate("How often is the filter changed?", "th")
    gaps = load_xquad(write_xquad(tmp_path), ["en", "de"])
    gaps = replace(gaps, queries={**gaps.queries, "de": gaps.queries["de"][1:]})
    with pytest.raises(ConfigError, match="query q0 of xquad has no de version \\(the dataset's translations have "
                                          "gaps\\)"):
        ParallelTranslator(gaps).translate("How often is the filter changed?", "de")


def test_a_mixed_pool_with_human_translations_records_them_and_they_reach_search(config: Config,
                                                                                 tmp_path: Path) -> None:
    # The hashing encoder matches words only, so an English question finds a German paragraph only through
    # its German translation.
    config = replace(config, retrieval=RetrievalConfig(translate_dense=True))
    data = write_xquad(tmp_path / "xquad")
    scores = {}
    for kind in TranslatorKind:
        report = run(DatasetKind.XQUAD, data, config, tmp_path / kind.value, ("en", "de"), ("en", "de"),
                     (Leg.HYBRID,), seeds=(0, 1), encoder=HashEncoder(dim=1024), translating=kind)
        assert report.config["translator"] == kind.value
        assert report.config["rosetta"]["translate_dense"] is True  # type: ignore[index,call-overload]
        cross = [m.split.cross for m in report.mixed if m.split.cross.n]
        scores[kind] = sum(s.recall1 * s.n for s in cross) / sum(s.n for s in cross)
    assert scores[TranslatorKind.HUMAN] == 1.0 and scores[TranslatorKind.NONE] < 1.0


@pytest.mark.parametrize("command", ["retrieval", "answers"])
def test_an_unknown_translator_is_refused_with_the_choices(tmp_path: Path, command: str) -> None:
    result = CliRunner().invoke(eval_app, [
        command, "--data", str(write_xquad(tmp_path / "xquad")), "--out", str(tmp_path / "out"), "--query-langs",
        "en", "--doc-langs", "de", "--translator", "google", "--data-dir", str(tmp_path / "db")],
        env={"NO_COLOR": "1", "COLUMNS": "200"})
    assert result.exit_code == 2
    assert "unknown translator in 'google'; choose from: none, human" in result.output
