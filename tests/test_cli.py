"""The rosetta command: JSON shapes, tables, exit codes and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli.app import app
from rag.config import Config
from rag.store.storage import DEFAULT_STORAGE


@pytest.fixture
def env(config: Config) -> dict[str, str]:
    assert config.db.url is not None
    return {"ROSETTA_DATABASE_URL": config.db.url, "ROSETTA_SCHEMA": config.db.schema,
            "ROSETTA_ENCODER": "e5-small", "ROSETTA_DATA_DIR": str(config.db.data_dir), "NO_COLOR": "1",
            "COLUMNS": "400"}


def test_ingest_then_status_as_json(env: dict[str, str], demo_copy: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", str(demo_copy), "--collection", "demo", "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["collection"], report["encoder"], report["failed"]) == ("demo", "e5-small", 0)
    assert sorted(f["language"] for f in report["files"]) == ["de", "en", "es", "ja", "zh"]
    assert {f["status"] for f in report["files"]} == {"added"}

    status = json.loads(runner.invoke(app, ["status", "--json"], env=env).stdout)
    (collection,) = status["collections"]
    assert set(collection) == {"name", "documents", "chunks", "languages", "document_languages", "encoder", "dim",
                               "storage"}
    assert (collection["name"], collection["documents"], collection["encoder"], collection["storage"]) == (
        "demo", 5, "e5-small", DEFAULT_STORAGE.value)
    assert sum(collection["languages"].values()) == collection["chunks"] == report["chunks"]
    assert set(status["database"]) == {"url", "embedded", "server_version", "pgvector_version", "size_bytes"}
    assert status["database"]["pgvector_version"] >= "0.7"


def test_ingest_table_and_non_zero_exit_when_a_file_fails(env: dict[str, str], demo_copy: Path) -> None:
    (demo_copy / "empty.md").write_text("")
    result = CliRunner().invoke(app, ["ingest", str(demo_copy / "de"), str(demo_copy / "empty.md")], env=env)
    assert result.exit_code == 1
    assert "wartungshandbuch.md" in result.stdout and "added" in result.stdout
    assert "empty.md" in result.stdout and "failed" in result.stdout
    assert "1 added, 1 failed" in result.stdout


def test_status_table_lists_languages(env: dict[str, str], demo_copy: Path) -> None:
    runner = CliRunner()
    runner.invoke(app, ["ingest", str(demo_copy / "ja"), "--collection", "jp"], env=env)
    result = runner.invoke(app, ["status"], env=env)
    assert result.exit_code == 0
    assert "jp" in result.stdout and "ja:" in result.stdout and "e5-small (384-d)" in result.stdout


def test_storage_is_chosen_by_the_first_ingest_shown_by_status_and_another_refused(
        env: dict[str, str], demo_copy: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["ingest", str(demo_copy / "ja"), "--collection", "jp", "--storage", "halfvec"], env=env)
    assert first.exit_code == 0, first.output
    assert runner.invoke(app, ["ingest", str(demo_copy / "ja"), "--collection", "jp"], env=env).exit_code == 0
    table = runner.invoke(app, ["status"], env=env).stdout
    assert [line.split("│")[-2].strip() for line in table.splitlines() if "jp" in line] == ["halfvec"]
    other = runner.invoke(app, ["ingest", str(demo_copy / "ja"), "--collection", "jp", "--storage", "bit+rescore"],
                          env=env)
    assert other.exit_code == 2
    assert other.stderr.strip() == (
        "error: collection 'jp' stores its dense vectors as halfvec; it cannot be ingested into with storage "
        "bit+rescore (a collection's storage is chosen when it is created). Drop --storage (ROSETTA_STORAGE, "
        "ingest.storage) to use the collection's own, or choose another --collection")
    unknown = runner.invoke(app, ["ingest", str(demo_copy / "ja"), "--storage", "int8"], env=env)
    assert (unknown.exit_code, unknown.stderr.strip()) == (
        2, "error: unknown storage 'int8'; choose one of: vector, halfvec, bit+rescore")


def test_rag_errors_are_one_red_line_with_exit_code_2(env: dict[str, str], demo_copy: Path) -> None:
    result = CliRunner().invoke(app, ["--encoder", "gpt 4!", "status"], env=env)
    assert result.exit_code == 2
    assert result.stderr.strip() == ("error: unknown encoder 'gpt 4!'; choose one of: auto, bge-m3, e5-small, "
                                     "openai-compatible, or an installed plugin's name (rosetta plugins lists them)")


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["search", "  "], "error: the query is empty; type what to search for, in any language"),
     (["search", "Luftfilter", "--k", "0"], "error: k must be at least 1, got 0"),
     (["ask", " "], "error: the question is empty; type a question in any language")],
)  # fmt: skip
def test_bad_arguments_are_one_red_line_with_exit_code_2(env: dict[str, str], demo_copy: Path, argv: list[str],
                                                          message: str) -> None:
    runner = CliRunner()
    runner.invoke(app, ["ingest", str(demo_copy / "de"), "--collection", "demo"], env=env)
    result = runner.invoke(app, [*argv, "--collection", "demo"], env=env)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == message


def test_ingest_on_ray_with_no_actors_is_one_red_line_before_anything_runs(env: dict[str, str],
                                                                          demo_copy: Path) -> None:
    result = CliRunner().invoke(app, ["ingest", str(demo_copy), "--ray", "local", "--ray-actors", "0"], env=env)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == "error: RayExecutor needs at least one actor, got actors=0"


def test_unreachable_database_names_the_url_without_its_password(env: dict[str, str]) -> None:
    env = {**env, "ROSETTA_DATABASE_URL": "postgresql://me:hunter2@127.0.0.1:9/none?connect_timeout=2"}
    result = CliRunner().invoke(app, ["status"], env=env)
    assert result.exit_code == 2
    assert "cannot connect to postgresql://me:***@127.0.0.1:9/none" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_search_prints_hits_with_legs_as_json_and_as_a_table(env: dict[str, str], demo_copy: Path) -> None:
    runner = CliRunner()
    runner.invoke(app, ["ingest", str(demo_copy), "--collection", "demo"], env=env)
    result = runner.invoke(app, ["search", "What does error code E22 mean?", "--collection", "demo", "--k", "2",
                                 "--json"], env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    top = data["hits"][0]
    assert (data["query"], data["collection"], len(data["hits"])) == ("What does error code E22 mean?", "demo", 2)
    assert set(top) == {"rank", "score", "chunk_id", "uri", "title", "page", "heading", "language", "start",
                        "end", "text", "legs"}
    assert top["heading"][-1] == "Fehlercodes" and "E22" in top["text"]
    # English question, German passage: only the code E22 counts across languages (sparse:shared).
    assert {leg["leg"] for leg in top["legs"]} == {"dense", "sparse:shared"}
    filtered = json.loads(runner.invoke(app, ["search", "garantía", "--collection", "demo", "--lang", "ja", "--json"],
                                        env=env).stdout)
    assert {hit["language"] for hit in filtered["hits"]} == {"ja"}
    table = runner.invoke(app, ["search", "Luftfilter", "--collection", "demo", "--k", "1", "--mode", "sparse"],
                          env=env)
    assert "sparse#1" in table.stdout and "Luftfilter" in table.stdout


def test_search_in_a_missing_collection_is_one_line(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["search", "x", "--collection", "nowhere"], env=env)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: collection 'nowhere' does not exist")


def test_ask_answers_in_the_question_language_with_the_german_source_cited(env: dict[str, str], demo_copy: Path
                                                                           ) -> None:
    runner = CliRunner()
    runner.invoke(app, ["ingest", str(demo_copy / "de"), str(demo_copy / "en"), "--collection", "demo"], env=env)
    env = {**env, "OPENAI_API_KEY": "", "COHERE_API_KEY": ""}  # auto -> the offline extractive generator
    result = runner.invoke(app, ["ask", "How often must the air filter be replaced?", "--collection", "demo",
                                 "--json"], env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert "generator: extractive (no LLM configured" in result.stderr
    assert (data["generator"], data["language"], data["detected_language"], data["ok"]) == ("extractive", "en",
                                                                                            "en", True)
    first = data["citations"][0]
    assert first["uri"].endswith("wartungshandbuch.md") and first["language"] == "de" and first["verified"]
    assert "Luftfilter" in first["quote"] and first["heading"][-1] == "Luftfilter"
    assert data["text"].startswith("No language model is configured")
    table = runner.invoke(app, ["ask", "¿Cada cuánto tiempo hay que cambiar el filtro de aire?", "--collection",
                                "demo"], env=env)
    assert table.exit_code == 0, table.output
    assert table.stdout.startswith("No hay ningún modelo de lenguaje configurado")
    assert "Sources" in table.stdout and "wartungshandbuch.md" in table.stdout and "✓" in table.stdout


def test_ask_with_an_unreachable_llm_is_one_red_line(env: dict[str, str], demo_copy: Path) -> None:
    runner = CliRunner()
    runner.invoke(app, ["ingest", str(demo_copy / "de"), "--collection", "demo"], env=env)
    env = {**env, "ROSETTA_LLM_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "sk-test-SECRET-123"}
    result = runner.invoke(app, ["ask", "Wie oft?", "--collection", "demo"], env=env)
    assert result.exit_code == 2
    *notices, error = result.stderr.strip().splitlines()
    assert notices == ["generator: openai (OPENAI_API_KEY is set)"]
    assert error.startswith("error: ") and "127.0.0.1:9" in error and "SECRET" not in result.output + result.stderr
