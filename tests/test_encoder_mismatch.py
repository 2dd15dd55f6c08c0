"""A collection is only ever searched with the encoder that built it, even when another has its dimensions."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli.app import app
from rag.config import Config
from rag.errors import SchemaMismatch
from rag.rosetta import Rosetta
from tests.fakes import HashEncoder

MESSAGE = ("collection 'test' was built with encoder hash-a (16-d); it cannot be opened with hash-b (16-d). "
           "Use --encoder hash-a (ROSETTA_ENCODER, or the encoder passed to Rosetta.open) to match it, "
           "or choose another --collection")


@pytest.fixture
def built(config: Config, demo_copy: Path) -> Config:
    with Rosetta.open(config, encoder=HashEncoder(dim=16, label="hash-a")) as rosetta:
        rosetta.ingest([demo_copy / "de"])
    return config


def test_search_ask_and_chat_refuse_an_encoder_of_the_same_dimension(built: Config) -> None:
    with Rosetta.open(built, encoder=HashEncoder(dim=16, label="hash-b")) as rosetta:
        with pytest.raises(SchemaMismatch) as searched:
            rosetta.search("Luftfilter")
        with pytest.raises(SchemaMismatch) as asked:
            rosetta.ask("Wie oft wird der Luftfilter gewechselt?")
        with pytest.raises(SchemaMismatch) as chatted:
            rosetta.session().ask("Wie oft wird der Luftfilter gewechselt?")
    assert str(searched.value) == str(asked.value) == str(chatted.value) == MESSAGE


def test_the_encoder_that_built_it_still_searches(built: Config) -> None:
    with Rosetta.open(built, encoder=HashEncoder(dim=16, label="hash-a")) as rosetta:
        assert rosetta.search("Luftfilter", rerank=False)


def test_the_command_line_names_both_encoders(config: Config, demo_copy: Path) -> None:
    # hash-384 has e5-small's dense and sparse dimensions: only the recorded name tells them apart.
    with Rosetta.open(config, encoder=HashEncoder(dim=384, label="hash-384")) as rosetta:
        rosetta.ingest([demo_copy / "de"])
    assert config.db.url is not None
    env = {"ROSETTA_DATABASE_URL": config.db.url, "ROSETTA_SCHEMA": config.db.schema, "ROSETTA_ENCODER": "e5-small",
           "ROSETTA_DATA_DIR": str(config.db.data_dir), "NO_COLOR": "1", "COLUMNS": "400"}
    runner = CliRunner()
    for command in (["search", "Luftfilter"], ["ask", "Luftfilter?"]):
        result = runner.invoke(app, [*command, "--collection", "test"], env=env)
        assert result.exit_code == 2, result.output
        assert result.stderr.strip() == (
            "error: collection 'test' was built with encoder hash-384 (384-d); it cannot be opened with e5-small "
            "(384-d). Use --encoder hash-384 (ROSETTA_ENCODER, or the encoder passed to Rosetta.open) to match "
            "it, or choose another --collection")
