"""Logs: -v/-vv and ROSETTA_LOG_LEVEL pick the level, lines go to stderr (``--json`` on stdout stays JSON),
one line per ingested document and per search, with their timings."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli.app import app
from rag.config import Config, log_level, secret_values
from rag.errors import ConfigError

TIME = r"\d\d\d\d-\d\d-\d\d \d\d:\d\d:\d\d,\d\d\d"


@pytest.mark.parametrize(("verbose", "environ", "level"), [
    (0, {}, logging.WARNING),
    (1, {}, logging.INFO),
    (2, {}, logging.DEBUG),
    (3, {}, logging.DEBUG),
    (0, {"ROSETTA_LOG_LEVEL": "debug"}, logging.DEBUG),
    (0, {"ROSETTA_LOG_LEVEL": " Error "}, logging.ERROR),
    (1, {"ROSETTA_LOG_LEVEL": "ERROR"}, logging.INFO),  # the flag wins over the environment
])
def test_log_level_from_flags_and_environment(verbose: int, environ: dict[str, str], level: int) -> None:
    assert log_level(verbose, environ) == level


def test_an_unknown_log_level_names_the_variable_and_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        log_level(0, {"ROSETTA_LOG_LEVEL": "loud"})
    assert str(caught.value) == "ROSETTA_LOG_LEVEL='loud' is not a log level; use one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
    result = CliRunner().invoke(app, ["status"], env={"ROSETTA_LOG_LEVEL": "loud", "NO_COLOR": "1", "COLUMNS": "200",
                                                      "ROSETTA_DATA_DIR": str(tmp_path)})
    assert (result.exit_code, result.stderr) == (2, f"error: {caught.value}\n")


def test_secret_values_are_the_key_token_and_password_variables() -> None:
    environ = {"OPENAI_API_KEY": "sk-abcdefgh", "ROSETTA_API_KEYS": "token-one-1, token-two-2,", "PGPASSWORD": "pw-1234567",
               "GITHUB_TOKEN": "ghp_12345678", "HOME": "/root/secret-home", "SHORT_KEY": "1234"}
    assert secret_values(environ) == {"sk-abcdefgh", "token-one-1", "token-two-2", "pw-1234567", "ghp_12345678"}


@pytest.fixture
def env(config: Config) -> dict[str, str]:
    assert config.db.url is not None
    return {"ROSETTA_DATABASE_URL": config.db.url, "ROSETTA_SCHEMA": config.db.schema, "ROSETTA_ENCODER": "e5-small",
            "ROSETTA_DATA_DIR": str(config.db.data_dir), "NO_COLOR": "1", "COLUMNS": "400"}


def _log_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if re.match(TIME, line)]


def test_verbose_logs_one_line_per_document_and_search_on_stderr(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    for name, text in (("a.md", "# Filter\n\nThe air filter is replaced every six months.\n"),
                       ("b.md", "# Pumpe\n\nDie Pumpe startet, wenn der Druck fällt.\n")):
        (tmp_path / "docs" / name).write_text(text)
    runner = CliRunner()
    ingested = runner.invoke(app, ["-v", "ingest", str(tmp_path / "docs"), "--collection", "logs", "--json"], env=env)
    assert ingested.exit_code == 0, ingested.output
    assert json.loads(ingested.stdout)["chunks"] == 2  # stdout holds the JSON and nothing else
    lines = _log_lines(ingested.stderr)
    documents = [line for line in lines if " INFO    rag.ingest: ingest added " in line]
    assert [re.sub(rf"^{TIME} ", "", re.sub(r"\d+\.\d+ s$", "S s", line)) for line in documents] == [
        f"INFO    rag.ingest: ingest added {(tmp_path / 'docs' / name).as_uri()}: 1 chunks, S s" for name in ("a.md", "b.md")]
    assert any(re.search(r"rag.ingest: ingest into logs done: 2 sources, 2 chunks written, 0 failed, [\d.]+ s$", line)
               for line in lines), lines
    assert not [line for line in lines if " DEBUG " in line]

    searched = runner.invoke(app, ["search", "How often is the air filter replaced?", "--collection", "logs", "--k", "1",
                                   "--json"],
                             env={**env, "ROSETTA_LOG_LEVEL": "INFO"})
    assert searched.exit_code == 0, searched.output
    assert json.loads(searched.stdout)["hits"][0]["uri"] == (tmp_path / "docs" / "a.md").as_uri()
    (search,) = [line for line in _log_lines(searched.stderr) if "rag.search.retriever" in line]
    assert re.fullmatch(rf"{TIME} INFO    rag.search.retriever: search logs: k 1, hybrid, 1 hits from legs "
                        r"dense,sparse, \d+\.\d ms", search), search


def test_debug_adds_the_query_and_the_connection_and_the_default_logs_nothing(env: dict[str, str],
                                                                              tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Filter\n\nThe air filter is replaced every six months.\n")
    runner = CliRunner()
    quiet = runner.invoke(app, ["ingest", str(tmp_path / "a.md"), "--collection", "logs"], env=env)
    assert quiet.exit_code == 0 and _log_lines(quiet.stderr) == [], quiet.stderr
    searched = runner.invoke(app, ["-vv", "search", "air filter", "--collection", "logs", "--json"], env=env)
    assert searched.exit_code == 0, searched.output
    debug = [line for line in _log_lines(searched.stderr) if " DEBUG " in line]
    assert any(line.endswith("rag.search.retriever: search logs: query 'air filter'") for line in debug), debug
    assert any("rag.store.database: connected to postgresql://postgres:***@" in line for line in debug), debug
