"""The built wheel: it carries the prompts, ``py.typed`` and the license, installs into a clean venv, and the
``rosetta`` there runs from the wheel's own files, not from this source tree.

The clean venv sees the dependencies of the running one through a ``.pth`` line (pip would otherwise download
them all again); the wheel's packages sit in its own site-packages, ahead of that line, and the commands run
from a temporary directory, so the source tree is on no path. Building and installing take ~10 s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What a source distribution holds: the packages and the files pyproject.toml names.
SOURCES = ("rag", "connectors", "evals", "prompts", "pyproject.toml", "README.md", "LICENSE")
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the sources (a build in the work tree could pick up a stale build/)."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("dist")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(source)], check=True, capture_output=True, text=True)
    (built,) = out.glob("rosetta_rag-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed and the running venv's packages visible behind it."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True, text=True)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    paths = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "zz_dependencies.pth").write_text("".join(f"{path}\n" for path in paths))
    return venv


def _run(venv: Path, *args: str, env: dict[str, str] | None = None) -> str:
    clean = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"} | (env or {})
    done = subprocess.run(list(args), check=False, cwd=venv.parent, env=clean | {"NO_COLOR": "1", "COLUMNS": "200"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_wheel_carries_the_prompts_py_typed_and_the_license(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (license_name,) = [n for n in names if n.endswith("/LICENSE") and ".dist-info/" in n]
        license_text = archive.read(license_name)
    prompts = {f"prompts/{p.name}" for p in (ROOT / "prompts").iterdir() if p.suffix in (".txt", ".toml", ".py")}
    assert len(prompts) > 5 and prompts <= names, sorted(prompts - names)
    assert {"rag/py.typed", "connectors/py.typed", "evals/py.typed"} <= names
    assert license_text == (ROOT / "LICENSE").read_bytes()
    assert not [n for n in names if n.startswith("tests/") or "__pycache__" in n]


def test_the_installed_wheel_runs_rosetta_from_its_own_files(venv: Path) -> None:
    code = "import rag, connectors, prompts; print(rag.__file__, connectors.__file__, prompts.__file__)"
    files = _run(venv, str(venv / "bin" / "python"), "-c", code).split()
    assert all(Path(f).is_relative_to(venv) for f in files), files
    assert _run(venv, str(venv / "bin" / "rosetta"), "--version") == f"rosetta {VERSION}\n"
    assert _run(venv, str(venv / "bin" / "python"), "-m", "rag", "--version") == f"rosetta {VERSION}\n"
    usage = _run(venv, str(venv / "bin" / "rosetta"), "--help")
    assert "Usage: rosetta [OPTIONS] COMMAND [ARGS]..." in usage
    assert all(word in usage for word in ("ingest", "search", "ask", "--install-completion", "--verbose"))


def test_shell_completion_of_the_installed_command(venv: Path) -> None:
    rosetta = str(venv / "bin" / "rosetta")
    # Typer detects the shell from the parent process (sh under make); its test switch takes the shell named.
    script = _run(venv, rosetta, "--show-completion", "bash", env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert "complete -o default -F _rosetta_completion rosetta" in script
    completed = _run(venv, rosetta, env={"_ROSETTA_COMPLETE": "complete_bash", "COMP_WORDS": "rosetta se",
                                         "COMP_CWORD": "1"})
    assert completed.split() == ["search", "serve", "server"]
