"""Plugins: a package built here (an encoder, a connector and one that fails to import) is installed for real
with pip into a folder of its own, found through its entry points, listed, selected and used from the CLI
and from Python; its options are checked; other commands never import it.

The package is put on ``sys.path`` (``PYTHONPATH`` for subprocesses) only inside the tests that use it, so
nothing leaks into other tests.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import cast

import pytest
from typer.testing import CliRunner

from rag.cli.app import app
from rag.config import Config, EncoderKind, ModelConfig, PluginSetting, load_config
from rag.encoders import E5SmallEncoder
from rag.errors import ConfigError
from rag.plugins import Option, Plugin, PluginContext, PluginKind, build, build_part, check_options, load
from rag.rosetta import Rosetta
from rag.types import Encoder

ROOT = Path(__file__).resolve().parent.parent

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "rosetta-test-plugins"
version = "0.3.0"

[project.entry-points."rosetta.encoders"]
bagofwords = "rosetta_testplug:encoder"
broken = "rosetta_testplug_broken:plugin"

[project.entry-points."rosetta.connectors"]
recfile = "rosetta_testplug:connector"

[tool.setuptools]
py-modules = ["rosetta_testplug", "rosetta_testplug_broken"]
"""

PLUGIN = '''\
"""A hashed bag-of-words encoder and a GNU recutils (.rec) connector for Rosetta."""

import hashlib
import os
from pathlib import Path

import numpy as np

from rag.encoders.lexical import LexicalEncoder, terms
from rag.errors import ConnectorError
from rag.plugins import Option, Plugin
from rag.types import Document, Encoding

if os.environ.get("ROSETTA_TEST_MARKERS"):  # lets a test see whether this module was imported
    Path(os.environ["ROSETTA_TEST_MARKERS"], "rosetta_testplug").touch()


class BagOfWordsEncoder:
    def __init__(self, dim, salt):
        self.dim, self.salt, self.lexical = dim, salt, LexicalEncoder()

    name = "bagofwords"
    lexical_idf = True

    @property
    def sparse_dim(self):
        return self.lexical.dim

    def _vector(self, text):
        vector = np.zeros(self.dim, dtype=np.float32)
        for term in terms(text):
            digest = hashlib.blake2b((self.salt + term).encode(), digest_size=8).digest()
            vector[int.from_bytes(digest, "big") % self.dim] += 1.0
        norm = np.linalg.norm(vector)
        return vector / norm if norm else np.eye(self.dim, dtype=np.float32)[0]

    def encode_passages(self, texts):
        return [Encoding(self._vector(t), s) for t, s in zip(texts, self.lexical.passages(texts))]

    def encode_queries(self, texts):
        return [Encoding(self._vector(t), s) for t, s in zip(texts, self.lexical.queries(texts))]

    def count_tokens(self, text):
        return len(terms(text)) + 2


encoder = Plugin(
    "bagofwords",
    lambda options, context: BagOfWordsEncoder(options.integer("dim"), options.text("salt")),
    options=(Option("dim", int, 64, "dense dimension"), Option("salt", str, "", "hash salt")),
    help="hashed bag of words (no model)",
)


class RecConnector:
    def __init__(self, target):
        self.path = Path(target)

    def sources(self):
        if self.path.suffix != ".rec" or not self.path.is_file():
            raise ConnectorError(f"{self.path}: not a .rec file")
        yield self.path.resolve().as_uri()

    def load(self, uri):
        blocks = [b for b in self.path.read_text(encoding="utf-8").split("\\n\\n") if b.strip()]
        values = [" ".join(line.split(":", 1)[1].strip() for line in b.splitlines() if ":" in line) for b in blocks]
        return [Document(uri=uri, text="\\n\\n".join(values), title=self.path.stem)]


connector = Plugin("recfile", lambda options, context: RecConnector, help="GNU recutils .rec files")
'''

BROKEN = '''\
import os
from pathlib import Path

if os.environ.get("ROSETTA_TEST_MARKERS"):
    Path(os.environ["ROSETTA_TEST_MARKERS"], "rosetta_testplug_broken").touch()
raise ImportError("rosetta_testplug_broken needs libfrobnicate")
'''

RECORDS = """\
Part: HX-F07
Description: Luftfilter der Lüftungsanlage, alle drei Monate wechseln

Part: HX-P22
Description: Kondensatpumpe, jährlich reinigen
"""


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test plugin package, built from source and installed by pip into a folder of its own."""
    source = tmp_path_factory.mktemp("plugin-src")
    (source / "pyproject.toml").write_text(PYPROJECT)
    (source / "rosetta_testplug.py").write_text(PLUGIN)
    (source / "rosetta_testplug_broken.py").write_text(BROKEN)
    site = tmp_path_factory.mktemp("plugin-site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(site), str(source)], check=True, timeout=300)
    return site


@pytest.fixture
def installed(plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The plugin package importable in this process for one test; its modules are forgotten afterwards."""
    monkeypatch.syspath_prepend(str(plugin_site))
    yield plugin_site
    for module in ("rosetta_testplug", "rosetta_testplug_broken"):
        sys.modules.pop(module, None)


@pytest.fixture
def records(tmp_path: Path) -> Path:
    path = tmp_path / "parts.rec"
    path.write_text(RECORDS, encoding="utf-8")
    return path


def _env(config: Config) -> dict[str, str]:
    assert config.db.url is not None
    return {"ROSETTA_DATABASE_URL": config.db.url, "ROSETTA_SCHEMA": config.db.schema,
            "ROSETTA_DATA_DIR": str(config.db.data_dir), "NO_COLOR": "1", "COLUMNS": "400"}


def _rosetta(plugin_site: Path, markers: Path, config: Config, *argv: str) -> subprocess.CompletedProcess[str]:
    """``rosetta ARGV`` in a fresh interpreter with the plugin package on PYTHONPATH."""
    env = {**os.environ, **_env(config), "PYTHONPATH": str(plugin_site), "ROSETTA_TEST_MARKERS": str(markers)}
    return subprocess.run([sys.executable, "-m", "rag.cli", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_rosetta_plugins_lists_ours_and_the_installed_package_and_its_broken_plugin(
        plugin_site: Path, config: Config, tmp_path: Path) -> None:
    result = _rosetta(plugin_site, tmp_path, config, "plugins", "--json")
    assert result.returncode == 1, result.stderr  # a plugin failed to load
    found = {(p["kind"], p["name"]): p for p in json.loads(result.stdout)}
    assert found["encoder", "bagofwords"] == {
        "name": "bagofwords", "kind": "encoder", "group": "rosetta.encoders", "package": "rosetta-test-plugins",
        "version": "0.3.0", "help": "hashed bag of words (no model)", "error": None,
        "options": [{"name": "dim", "type": "int", "default": 64, "help": "dense dimension"},
                    {"name": "salt", "type": "str", "default": "", "help": "hash salt"}]}
    assert found["connector", "recfile"]["package"] == "rosetta-test-plugins"
    assert found["encoder", "broken"]["error"] == (
        "encoder plugin 'broken' (rosetta_testplug_broken:plugin, package rosetta-test-plugins 0.3.0) failed to "
        "import: ImportError: rosetta_testplug_broken needs libfrobnicate; reinstall or uninstall "
        "rosetta-test-plugins")
    ours = {name for (kind, name), p in found.items() if p["package"] == "rosetta-rag"}
    assert ours == {"e5-small", "bge-m3", "openai-compatible", "cross-encoder", "colbert", "cohere", "openai",
                    "extractive", "files", "web"}
    table = _rosetta(plugin_site, tmp_path, config, "plugins")
    assert "bagofwords" in table.stdout and "dim (int, default 64): dense dimension" in table.stdout
    assert "libfrobnicate" in table.stdout


def test_other_commands_import_no_plugin_and_a_broken_one_fails_only_when_selected(
        plugin_site: Path, config: Config, tmp_path: Path, records: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    status = _rosetta(plugin_site, markers, config, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert sorted(p.name for p in markers.iterdir()) == []  # listing entry points imported nothing
    broken = _rosetta(plugin_site, markers, config, "--encoder", "broken", "ingest", str(records))
    assert broken.returncode == 2
    assert broken.stderr.strip() == (
        "error: encoder plugin 'broken' (rosetta_testplug_broken:plugin, package rosetta-test-plugins 0.3.0) "
        "failed to import: ImportError: rosetta_testplug_broken needs libfrobnicate; reinstall or uninstall "
        "rosetta-test-plugins")
    assert sorted(p.name for p in markers.iterdir()) == ["rosetta_testplug_broken"]  # only the selected one


def test_the_cli_ingests_a_type_only_the_plugin_reads_and_searches_with_the_plugin_encoder(
        installed: Path, config: Config, records: Path) -> None:
    runner, env = CliRunner(), {**_env(config), "ROSETTA_ENCODER": "bagofwords"}
    plain = runner.invoke(app, ["ingest", str(records), "--collection", "parts", "--json"], env=env)
    assert plain.exit_code == 1 and json.loads(plain.stdout)["failed"] == 1  # the files connector has no .rec
    result = runner.invoke(app, ["ingest", str(records), "--collection", "parts", "--connector", "recfile", "--json"],
                           env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["encoder"], report["failed"], [f["status"] for f in report["files"]]) == ("bagofwords", 0, ["added"])
    search = runner.invoke(app, ["search", "Kondensatpumpe reinigen", "--collection", "parts", "--json"], env=env)
    assert search.exit_code == 0, search.output
    hit = json.loads(search.stdout)["hits"][0]
    assert hit["uri"] == records.resolve().as_uri() and "Kondensatpumpe" in hit["text"]
    status = json.loads(runner.invoke(app, ["status", "--json"], env=env).stdout)
    assert [(c["name"], c["encoder"], c["dim"]) for c in status["collections"]] == [("parts", "bagofwords", 64)]
    missing = runner.invoke(app, ["--encoder", "nosuch", "search", "x", "--collection", "parts"], env=env)
    assert missing.exit_code == 2
    assert missing.stderr.startswith("error: no encoder named 'nosuch'; installed encoders: bagofwords, bge-m3, "
                                     "broken, e5-small, openai-compatible (pip install a plugin")


def test_python_uses_the_plugins_with_their_options(installed: Path, config: Config, records: Path) -> None:
    chosen = replace(config, models=ModelConfig(encoder="bagofwords"),
                     plugins=(PluginSetting("bagofwords", "dim", "32"), PluginSetting("bagofwords", "salt", "x")))
    with Rosetta.open(chosen) as rosetta:
        assert (rosetta.encoder().name, rosetta.encoder().dim) == ("bagofwords", 32)
        report = rosetta.ingest([records], connector="recfile")
        assert (report.failed, report.chunks > 0) == (0, True)
        assert "HX-F07" in rosetta.search("Luftfilter wechseln", k=1)[0].chunk.text
    notices: list[str] = []
    auto = replace(chosen, models=ModelConfig(encoder=EncoderKind.AUTO))
    with Rosetta.open(auto, notice=notices.append) as rosetta:  # auto reopens it with the plugin that built it
        assert (rosetta.encoder().name, rosetta.encoder().dim) == ("bagofwords", 32)
    assert notices == ["encoder: bagofwords (recorded by collection 'test')"]


def _toy(options: tuple[Option, ...]) -> Plugin[str]:
    return Plugin("toy", lambda opts, context: repr(dict(opts.values)), options=options)


@pytest.mark.parametrize(
    ("given", "message"),
    [({"dimm": 3}, "plugin 'toy' has no option 'dimm'; its options: dim, name, ratio, strict"),
     ({"dim": "many"}, "plugin 'toy' option 'dim' must be an integer, got 'many'"),
     ({"dim": True}, "plugin 'toy' option 'dim' must be an integer, got True"),
     ({"strict": "perhaps"}, "plugin 'toy' option 'strict' must be a boolean, got 'perhaps'"),
     ({"ratio": "x"}, "plugin 'toy' option 'ratio' must be a number, got 'x'"),
     ({}, "plugin 'toy' needs option 'name' (who to greet); set it under [plugins.toy] in the config file")],
)  # fmt: skip
def test_options_are_checked_naming_the_plugin_and_the_option(given: dict[str, str | int | bool], message: str
                                                              ) -> None:
    toy = _toy((Option("dim", int, 8), Option("ratio", float, 0.5), Option("strict", bool, False),
                Option("name", str, None, "who to greet")))
    with pytest.raises(ConfigError) as caught:
        check_options(toy, given)
    assert str(caught.value) == message


def test_options_are_parsed_from_text_and_defaults_filled_in() -> None:
    toy = _toy((Option("dim", int, 8), Option("name", str, None), Option("ratio", float, 0.5),
                Option("strict", bool, False)))
    options = check_options(toy, {"dim": "16", "name": "Ada", "strict": "yes", "ratio": 2})
    assert dict(options.values) == {"dim": 16, "name": "Ada", "ratio": 2.0, "strict": True}
    assert (options.integer("dim"), options.number("ratio"), options.flag("strict")) == (16, 2.0, True)
    with pytest.raises(ValueError, match="option 'dim': default 'eight' is not an integer"):
        Option("dim", int, "eight")


def test_plugin_options_come_from_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[models]\nencoder = "bagofwords"\n\n[plugins.bagofwords]\ndim = 16\nsalt = "s"\n')
    config = load_config(config_file=path, environ={})
    assert (config.models.encoder, config.plugins) == (
        "bagofwords", (PluginSetting("bagofwords", "dim", 16), PluginSetting("bagofwords", "salt", "s")))


def test_ours_are_found_and_built_through_the_same_entry_points(config: Config) -> None:
    assert load(PluginKind.ENCODER, "e5-small").name == "e5-small"
    encoder = build(PluginKind.ENCODER, "e5-small", PluginContext(config))
    assert isinstance(encoder, E5SmallEncoder)
    wrong = replace(config, plugins=(PluginSetting("e5-small", "dim", 3),))
    with pytest.raises(ConfigError, match="plugin 'e5-small' has no option 'dim'; its options: none"):
        build(PluginKind.ENCODER, "e5-small", PluginContext(wrong))


def test_the_readme_plugin_example_installs_and_encodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        config: Config) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("A complete encoder plugin"):readme.index("## Storage")]
    files = dict(re.findall(r"```(?:toml|python)\n# (\S+)\n(.*?)```", section, re.DOTALL))
    assert set(files) == {"pyproject.toml", "rosetta_bow.py"}
    source = tmp_path / "rosetta-bow"
    source.mkdir()
    for name, body in files.items():
        (source / name).write_text(body, encoding="utf-8")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(site), str(source)], check=True, timeout=300)
    monkeypatch.syspath_prepend(str(site))
    try:
        chosen = replace(config, plugins=(PluginSetting("bow", "dim", 16),))
        encoder = cast(Encoder, build_part(PluginKind.ENCODER, "bow", PluginContext(chosen)))
        assert (encoder.name, encoder.dim, encoder.encode_queries(["air filter"])[0].dense.shape) == ("bow", 16, (16,))
    finally:
        sys.modules.pop("rosetta_bow", None)


@pytest.mark.parametrize(("environ", "margin"), [({}, 0.1), ({"ROSETTA_EXTRACTIVE_MARGIN": "0.05"}, 0.05),
                                                 ({"ROSETTA_EXTRACTIVE_MARGIN": "-1"}, None)])
def test_the_extractive_margin_comes_from_the_config_and_a_negative_one_turns_it_off(
        environ: dict[str, str], margin: float | None) -> None:
    from rag.answer.generators import ExtractiveGenerator
    from tests.fakes import HashEncoder

    context = PluginContext(load_config(environ=environ), encoder=HashEncoder())
    generator = build(PluginKind.GENERATOR, "extractive", context)
    assert isinstance(generator, ExtractiveGenerator) and generator.margin == margin
    with pytest.raises(ConfigError, match=r"^generation.extractive_margin must be a number \(negative: no margin\), "
                                          r"got nan$"):
        load_config(environ={"ROSETTA_EXTRACTIVE_MARGIN": "nan"})
