"""SQL injection through every string a user (or a document, or a model's tool call) controls.

tests/test_retrieve.py runs five classic attacks through the Filter fields, the query and search's
collection. This file adds more attack shapes (dollar quoting, Unicode escapes, comments, jsonb
operators, a timed pg_sleep) against a canary table, and the paths that test leaves out: ingest's
collection, document titles, URIs and front-matter keys read back and filtered on, the question of
ask() and of a conversation, a model's search tool call, and the same strings on the command line.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import sql
from typer.testing import CliRunner

from rag.answer.dialogue import Reply, Role, ToolCall
from rag.cli.app import app
from rag.config import Config
from rag.errors import ConfigError
from rag.rosetta import Rosetta
from rag.types import CollectionStatus, Filter
from tests.fakes import HashEncoder, ScriptedGenerator, cite_first

ATTACKS = [
    "'; DROP TABLE {s}.canary; --",
    "x'); DELETE FROM {s}.documents; --",
    "\"; DROP SCHEMA {s} CASCADE; --",
    "' UNION SELECT word, word FROM {s}.canary --",
    "$$; TRUNCATE {s}.chunks; $$",
    "$tag$ DROP TABLE {s}.canary $tag$",
    "'; SELECT pg_sleep(3); --",
    "\\'; UPDATE {s}.canary SET word = 'pwned'; --",
    "U&'\\0027'; DROP TABLE {s}.canary; --",
    "E'\\x27'; DROP TABLE {s}.canary; --",
    "*/ DROP TABLE {s}.canary; /*",
    "%' OR '1'='1",
    "') OR d.metadata @> '{{}}' OR ('",
    "{{\"a\": 1}}'::jsonb ?| array['a']; --",
    "'; COPY {s}.canary TO PROGRAM 'touch /tmp/rosetta-pwned'; --",
]
PWNED = Path("/tmp/rosetta-pwned")
SLEEP_BOUND_S = 2.0  # every attack runs well under the 3 s pg_sleep some of them ask for

# Documents whose names, titles and front-matter keys and values are attacks; each has its own tag value.
HOSTILE_DOCUMENTS = {
    "quote's \"name\"; DROP TABLE x.md": {
        "title": "Robert'); DROP TABLE {s}.canary;--", "k'; DROP TABLE {s}.canary; --": "v' OR '1'='1"},
    "percent %_ underscore.md": {"title": "100% _sure_ \\ backslash", "%": "_", "a\"b": "$$ $tag$"},
    "dollar $$ and -- comment.md": {"title": "$$; TRUNCATE {s}.chunks; $$", "') OR ('1'='1": "*/ /*"},
}
BODY = "The air filter must be replaced every six months; the red light means it is blocked."


def _hostile_docs(root: Path, schema: str) -> dict[str, dict[str, str]]:
    """Write the hostile documents under ``root``; return each one's front matter by file name."""
    root.mkdir()
    written = {}
    for name, matter in HOSTILE_DOCUMENTS.items():
        filled = {key.format(s=schema): value.format(s=schema) for key, value in matter.items()}
        (root / name).write_text(f"---\n{yaml.safe_dump(filled, allow_unicode=True)}---\n{BODY}\n")
        written[name] = filled
    return written


@pytest.fixture
def documents(tmp_path: Path, config: Config) -> dict[str, dict[str, str]]:
    return _hostile_docs(tmp_path / "hostile", config.db.schema)


@pytest.fixture
def scripted() -> ScriptedGenerator:
    return ScriptedGenerator([])


@pytest.fixture
def rosetta(config: Config, tmp_path: Path, documents: dict[str, dict[str, str]], demo_copy: Path,
            scripted: ScriptedGenerator) -> Iterator[Rosetta]:
    with Rosetta.open(config, encoder=HashEncoder(dim=64), generator=scripted) as opened:
        opened.ingest([tmp_path / "hostile", demo_copy / "de"])
        _plant_canary(config)
        yield opened


def _plant_canary(config: Config) -> None:
    assert config.db.url is not None
    with psycopg.connect(config.db.url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {}.canary (word text)").format(sql.Identifier(config.db.schema)))
        conn.execute(sql.SQL("INSERT INTO {}.canary VALUES ('alive')").format(sql.Identifier(config.db.schema)))


def _canary(config: Config) -> list[tuple[str]]:
    assert config.db.url is not None
    with psycopg.connect(config.db.url) as conn:
        return conn.execute(sql.SQL("SELECT word FROM {}.canary").format(sql.Identifier(config.db.schema))).fetchall()


def _state(rosetta: Rosetta) -> tuple[tuple[CollectionStatus, ...], list[tuple[str]]]:
    return rosetta.status().collections, _canary(rosetta.config)


def test_titles_uris_and_front_matter_keys_with_quotes_round_trip_and_filter_exactly(
        rosetta: Rosetta, documents: dict[str, dict[str, str]], tmp_path: Path) -> None:
    for name, matter in documents.items():
        uri = (tmp_path / "hostile" / name).resolve().as_uri()
        for key, value in matter.items():
            hits = rosetta.search("air filter", k=10, where=Filter(metadata={f"front_matter.{key}": value}))
            # A dot in a key reads as a path step (documented on Filter), so such a key is not addressable.
            expected = set() if "." in key else {(uri, matter["title"])}
            assert {(hit.chunk.document_uri, hit.title) for hit in hits} == expected, key


def test_every_attack_through_filters_queries_and_collections_leaves_the_tables_intact(
        rosetta: Rosetta, documents: dict[str, dict[str, str]], tmp_path: Path) -> None:
    before = _state(rosetta)
    PWNED.unlink(missing_ok=True)
    titled = {matter["title"]: (tmp_path / "hostile" / name).resolve().as_uri() for name, matter in documents.items()}
    for template in ATTACKS:
        attack = template.format(s=rosetta.store.schema)
        started = time.perf_counter()
        for where in (Filter(languages=(attack,)), Filter(source=attack), Filter(metadata={attack: attack})):
            assert rosetta.search("air filter", k=5, where=where) == [], (attack, where)
        by_title = rosetta.search("air filter", k=5, where=Filter(metadata={"front_matter.title": attack}))
        assert {hit.chunk.document_uri for hit in by_title} == ({titled[attack]} if attack in titled else set())
        assert rosetta.search(attack, k=3)  # the query is only ever encoded, so it finds the nearest passages
        assert time.perf_counter() - started < SLEEP_BOUND_S, attack
        with pytest.raises(ConfigError, match=r"collection name .* is invalid: use 1-128 letters"):
            rosetta.ingest([tmp_path / "hostile"], collection=attack)
    assert _state(rosetta) == before and before[1] == [("alive",)]
    assert not PWNED.exists()  # the COPY ... TO PROGRAM attack (the server runs as a superuser) never ran


def test_questions_of_ask_and_of_a_conversation_are_data(rosetta: Rosetta, scripted: ScriptedGenerator) -> None:
    before = _state(rosetta)
    attacks = [template.format(s=rosetta.store.schema) for template in ATTACKS]
    scripted.script.extend([cite_first] * (4 * len(attacks)))
    for attack in attacks:
        assert rosetta.ask(attack, language="en").passages
        assert rosetta.session(language="en").ask(attack).passages
    asked = [request.question for request in scripted.requests]
    assert set(attacks) <= set(asked)
    assert _state(rosetta) == before


def test_a_model_searching_with_hostile_arguments_gets_bound_values_or_a_message(
        rosetta: Rosetta, scripted: ScriptedGenerator) -> None:
    before = _state(rosetta)
    attack = ATTACKS[0].format(s=rosetta.store.schema)
    calls = (ToolCall("c1", "search", {"query": attack, "languages": [attack]}),
             ToolCall("c2", "search", {"query": "filter", "collection": attack}))
    scripted.script.extend([Reply("", tool_calls=calls), cite_first, cite_first])
    answer = rosetta.ask("How often is the air filter replaced?", language="en")
    tool_results = [m.content for m in scripted.requests[1].messages if m.role is Role.TOOL]
    assert any("is invalid" in result and attack in result for result in tool_results), tool_results
    assert [step.where for step in answer.trace if step.query == attack] == [Filter(languages=(attack,))]
    assert _state(rosetta) == before


def test_the_command_line_passes_hostile_strings_as_values(config: Config, tmp_path: Path) -> None:
    assert config.db.url is not None
    env = {"ROSETTA_DATABASE_URL": config.db.url, "ROSETTA_SCHEMA": config.db.schema, "ROSETTA_ENCODER": "e5-small",
           "ROSETTA_DATA_DIR": str(config.db.data_dir), "ROSETTA_GENERATOR": "extractive", "NO_COLOR": "1",
           "COLUMNS": "300"}
    _hostile_docs(tmp_path / "hostile", config.db.schema)
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", str(tmp_path / "hostile"), "--collection", "cli"], env=env).exit_code == 0
    _plant_canary(config)
    attack = ATTACKS[0].format(s=config.db.schema)
    refused = runner.invoke(app, ["ingest", str(tmp_path / "hostile"), "--collection", attack], env=env)
    assert (refused.exit_code, refused.stderr.count("\n")) == (2, 1), refused.output
    assert refused.stderr.startswith("error: collection name")
    found = runner.invoke(app, ["search", attack, "--collection", "cli", "--lang", f"en,{attack}", "--json"], env=env)
    assert found.exit_code == 0 and json.loads(found.stdout)["hits"], found.output
    none = runner.invoke(app, ["search", "filter", "--collection", "cli", "--source", attack, "--json"], env=env)
    assert none.exit_code == 0 and json.loads(none.stdout)["hits"] == [], none.output
    answered = runner.invoke(app, ["ask", attack, "--collection", "cli", "--lang", "en", "--json"], env=env)
    assert answered.exit_code == 0, answered.output
    status = json.loads(runner.invoke(app, ["status", "--json"], env=env).stdout)
    assert [(c["name"], c["documents"]) for c in status["collections"]] == [("cli", len(HOSTILE_DOCUMENTS))]
    assert _canary(config) == [("alive",)]


def test_a_collection_name_with_a_trailing_newline_is_refused(rosetta: Rosetta) -> None:
    with pytest.raises(ConfigError, match="is invalid"):
        rosetta.ingest([], collection="test\n")


def test_a_query_holding_an_undecodable_byte_is_refused_clearly(rosetta: Rosetta) -> None:
    with pytest.raises(ValueError) as refused:  # a refusal naming the character, not a codec's own error
        rosetta.search(b"filter \xff".decode(errors="surrogateescape"), k=3)
    assert not isinstance(refused.value, UnicodeError)
    assert str(refused.value) == ("the query holds '\\udcff' at character 7, an undecodable byte, not text; decode "
                                  "the input as UTF-8 (or with errors='replace') first")
