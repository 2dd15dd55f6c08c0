"""The language-detection and one-shot command benchmarks at a tiny size: their behaviour, not speed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals import bench_cli
from evals.bench_lang import measure

# (language file, paragraph, question); the "de" file holds one English paragraph and question.
XQUAD = {
    "en": [("The air filter has to be cleaned every six months and replaced after two years.",
            "How often should the air filter be replaced?")],
    "de": [("Der Luftfilter muss alle sechs Monate gereinigt und nach zwei Jahren ersetzt werden.",
            "Wie oft muss der Luftfilter ersetzt werden?"),
           ("The warranty covers the battery for three years from the date of purchase.",
            "How long is the battery under warranty?")],
}


def _write_xquad(root: Path) -> None:
    for lang, items in XQUAD.items():
        paragraphs = [{"context": c, "qas": [{"id": f"{lang}{i}", "question": q, "answers": []}]}
                      for i, (c, q) in enumerate(items)]
        data = {"data": [{"title": "t", "paragraphs": paragraphs}]}
        (root / f"xquad.{lang}.json").write_text(json.dumps(data), encoding="utf-8")


def test_bench_lang_scores_against_the_file_language_and_the_reference(tmp_path: Path) -> None:
    _write_xquad(tmp_path)
    report = measure(tmp_path, ("en", "de"), (1, 4))
    for kind in ("questions", "paragraphs"):
        row = report["results"][kind]
        assert row["texts"] == 3
        # The English text filed under "de" is detected as English by every detector: 2 of 3 right.
        for name in ("reference", "candidates=1", "candidates=4"):
            assert row[name] == {"accuracy": round(2 / 3, 4), "agreement": 1.0, "undetermined": 0}, name


def test_bench_lang_labels_manual_chunks_as_ingest_does(tmp_path: Path) -> None:
    _write_xquad(tmp_path)
    manuals = tmp_path / "manuals"
    (manuals / "ja").mkdir(parents=True)
    (manuals / "en").mkdir()
    (manuals / "ja" / "sdk.md").write_text(
        "# SDK\n\nOpenTelemetry は多くのプログラミング言語向けに SDK を提供しています。\n\n"
        "## 言語\n\n- [Go](/docs/go/)\n- [Java](/docs/java/)\n", encoding="utf-8")
    (manuals / "en" / "glossary.md").write_text(
        "# Glossary\n\nTerms used throughout the documentation of the collector.\n\n"
        "## HTTP\n\nShort for [Hypertext Transfer Protocol][http].\n", encoding="utf-8")
    report = measure(tmp_path, ("en", "de"), (4,), manuals)["manuals"]
    # Every chunk carries its folder's language (the link list: its Japanese page's), and no fragment
    # needed an accurate model.
    assert report["chunks"] >= 4 and report["folder_accuracy"] == 1.0
    assert report["accurate_models"] == []


def test_bench_cli_times_each_command_and_rejects_a_failing_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    bench_cli.main(["--runs", "1", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "bench_cli.json").read_text())
    commands = report["commands"]
    assert list(commands) == ["python -c 'import rag'"] + [
        f"rosetta {name} ({mode})" for mode in ("cold", "kept") for name in ("status", "search", "ask")]
    floor = commands["python -c 'import rag'"]
    for name, row in commands.items():
        assert len(row["runs"]) == 1 and row["median_s"] > 0, name
        # Every command imports rag first, so none can stay below the floor's memory.
        assert row["median_rss_mb"] >= floor["median_rss_mb"] * 0.9, name
    assert "| `rosetta search (kept)` |" in capsys.readouterr().out
    monkeypatch.setattr(bench_cli, "ROOT", tmp_path)  # no demo/manuals there: the ingest fails
    with pytest.raises(SystemExit, match="ingest .* exited with"):
        bench_cli.measure(tmp_path / "again", 1, None)


def test_bench_lang_scores_short_questions_from_a_file_and_names_a_bad_line(tmp_path: Path) -> None:
    _write_xquad(tmp_path)
    short = tmp_path / "short.tsv"
    short.write_text("# language, tab, question\nja\tHX-BK1とは？\nes\t¿Qué es el HX-BK1?\nde\tHX-BK1?\n",
                     encoding="utf-8")
    row = measure(tmp_path, ("en", "de"), (4,), short=short)["results"]["short questions"]
    # The code alone has no language: 2 of 3 right, 1 undetermined.
    assert row["texts"] == 3
    assert row["candidates=4"] == {"accuracy": round(2 / 3, 4), "agreement": 1.0, "undetermined": 1}
    short.write_text("ja\tHX-BK1とは？\nes ¿Qué es?\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"short.tsv:2: expected a language code, a tab and a question"):
        measure(tmp_path, ("en", "de"), (4,), short=short)
