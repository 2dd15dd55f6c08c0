"""Config precedence and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.config import (
    Config,
    DbConfig,
    EncoderKind,
    IngestConfig,
    RetrievalConfig,
    load_config,
    parse_encoder,
)
from rag.errors import ConfigError
from rag.types import Storage


def test_defaults_without_environment_or_file(tmp_path: Path) -> None:
    config = load_config(environ={})
    assert config.models.encoder is EncoderKind.AUTO
    assert config.db.url is None
    assert config.collection == "default"


def test_precedence_override_beats_env_beats_file(tmp_path: Path) -> None:
    toml = tmp_path / "rosetta.toml"
    toml.write_text('collection = "from-file"\n[ingest]\nmax_tokens = 128\n[models]\nencoder = "bge-m3"\n')
    env = {"ROSETTA_CONFIG": str(toml), "ROSETTA_COLLECTION": "from-env", "ROSETTA_DATA_DIR": str(tmp_path)}
    config = load_config(environ=env, encoder="e5-small")
    assert config.collection == "from-env"
    assert config.ingest.max_tokens == 128
    assert config.models.encoder is EncoderKind.E5_SMALL
    assert config.db.data_dir == tmp_path
    assert load_config(environ=env, collection="explicit").collection == "explicit"


def test_database_url_is_not_in_repr() -> None:
    config = load_config(environ={"ROSETTA_DATABASE_URL": "postgresql://u:secret@db/x"})
    assert config.db.url == "postgresql://u:secret@db/x"
    assert "secret" not in repr(config)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: DbConfig(schema="bad-name; drop"), "db.schema must be a plain SQL identifier, got 'bad-name; drop'"),
        (lambda: IngestConfig(max_tokens=4), "ingest.max_tokens must be in [16, 8192], got 4"),
        (lambda: IngestConfig(sparse_max_terms=5000), "ingest.sparse_max_terms must be in [1, 1000], got 5000"),
        (lambda: RetrievalConfig(reference_prior=float("inf")), "retrieval.reference_prior must be a number >= 0, got inf"),
        (lambda: RetrievalConfig(reference_prior=-1.0), "retrieval.reference_prior must be a number >= 0, got -1.0"),
        (lambda: Config(collection="a b"), "collection name 'a b' is invalid: use 1-128 letters, digits, '_', '-' or '.'"),
        (lambda: parse_encoder("gpt 4!"), ("unknown encoder 'gpt 4!'; choose one of: auto, bge-m3, e5-small, "
                                            "openai-compatible, or an installed plugin's name (rosetta plugins "
                                            "lists them)")),
    ],
)
def test_invalid_values_raise_config_error(make: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make()  # type: ignore[operator]
    assert str(caught.value) == message


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text("[db\n")
    with pytest.raises(ConfigError, match=str(toml)):
        load_config(environ={"ROSETTA_CONFIG": str(toml)})


def test_unknown_setting_is_an_error(tmp_path: Path) -> None:
    toml = tmp_path / "x.toml"
    toml.write_text("[ingest]\nchunk_size = 3\n")
    with pytest.raises(ConfigError, match="unknown setting ingest.chunk_size"):
        load_config(environ={"ROSETTA_CONFIG": str(toml)})


def test_a_removed_setting_says_why_and_what_to_do(tmp_path: Path) -> None:
    toml = tmp_path / "x.toml"
    toml.write_text("[retrieval]\nlatent_language_weight = 0.3\n")
    with pytest.raises(ConfigError, match=r"^setting retrieval.latent_language_weight was removed: centred latent "
                                          r"terms in the language choice measured not to pay .*; delete the setting$"):
        load_config(environ={"ROSETTA_CONFIG": str(toml)})


def test_non_integer_env_value() -> None:
    with pytest.raises(ConfigError, match="ingest.max_tokens must be an integer, got 'many'"):
        load_config(environ={"ROSETTA_MAX_TOKENS": "many"})


def test_storage_comes_from_the_file_or_the_environment_and_is_unset_by_default(tmp_path: Path) -> None:
    toml = tmp_path / "rosetta.toml"
    toml.write_text('[ingest]\nstorage = "halfvec"\n')
    assert load_config(environ={}).ingest.storage is None  # a new collection gets DEFAULT_STORAGE
    assert load_config(environ={"ROSETTA_CONFIG": str(toml)}).ingest.storage is Storage.HALFVEC
    env = {"ROSETTA_CONFIG": str(toml), "ROSETTA_STORAGE": "bit+rescore"}
    assert load_config(environ=env).ingest.storage is Storage.BIT_RESCORE
    with pytest.raises(ConfigError, match=r"^unknown storage 'int8'; choose one of: vector, halfvec, bit\+rescore$"):
        load_config(environ={"ROSETTA_STORAGE": "int8"})
