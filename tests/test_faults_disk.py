"""A read-only or full data directory at start: one clear error naming the path and the fix, from the API and the CLI.

Root can write into a chmod-ed directory, so the faults are real tmpfs mounts: read-only (``-o ro``) and tiny
(8 MB, where Postgres' initdb runs out of space). Tests skip, saying why, where mounting is not permitted.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rag.config import Config, DbConfig
from rag.errors import StoreError
from rag.rosetta import Rosetta

Mount = Callable[[str, str], Path]


def _unmount(target: Path) -> None:
    if subprocess.run(["umount", str(target)], capture_output=True, check=False).returncode != 0:
        subprocess.run(["umount", "-l", str(target)], check=True)  # busy: detach now, free when released


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Mount]:
    """Mounts a tmpfs at ``tmp_path/name`` with the given options; every mount is undone at teardown."""
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (with CAP_SYS_ADMIN) and mount(8)")
    mounted: list[Path] = []

    def mount(name: str, options: str) -> Path:
        target = tmp_path / name
        target.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()}); needs CAP_SYS_ADMIN")
        mounted.append(target)
        return target

    try:
        yield mount
    finally:
        for target in reversed(mounted):
            _unmount(target)


def _read_only_message(data_dir: Path) -> str:
    return (f"data directory {data_dir} is not usable (Read-only file system); set ROSETTA_DATA_DIR or --data-dir "
            "to a writable directory")


def _full_disk_pattern(data_dir: Path) -> str:
    pg = re.escape(str(data_dir / "pg"))
    return (rf"could not start the embedded Postgres in {pg}: could not [^;]+: No space left on device; only "
            r"\d+\.\d MB are free there and a new database needs about 40 MB: free disk space, or set "
            r"ROSETTA_DATA_DIR \(--data-dir\) to a disk with room, or ROSETTA_DATABASE_URL to use another server")


def _open(data_dir: Path) -> StoreError:
    with pytest.raises(StoreError) as caught:
        Rosetta.open(Config(db=DbConfig(url=None, data_dir=data_dir)))
    return caught.value


def test_a_read_only_data_dir_is_one_error_naming_it(tmpfs: Mount) -> None:
    mounted = tmpfs("ro", "ro,size=1m")
    assert str(_open(mounted)) == _read_only_message(mounted)
    assert str(_open(mounted / "rosetta")) == _read_only_message(mounted / "rosetta")


def test_a_full_disk_at_first_start_is_one_error_naming_it(tmpfs: Mount) -> None:
    mounted = tmpfs("full", "size=8m")
    error = _open(mounted)
    assert re.fullmatch(_full_disk_pattern(mounted), str(error)), str(error)
    assert isinstance(error.__cause__, subprocess.CalledProcessError)


def _status(data_dir: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("ROSETTA_")}
    # A wide terminal, so rich keeps the one error line on one line.
    env |= {"ROSETTA_DATA_DIR": str(data_dir), "COLUMNS": "1000", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "rag.cli", *flags, "status"], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_the_cli_prints_one_red_line_and_exits_2(tmpfs: Mount, fault: str) -> None:
    mounted = tmpfs(fault, "ro,size=1m" if fault == "read-only" else "size=8m")
    result = _status(mounted)
    assert (result.returncode, result.stdout) == (2, "")
    message = result.stderr.removeprefix("error: ").removesuffix("\n")
    assert result.stderr == f"error: {message}\n"
    expected = re.escape(_read_only_message(mounted)) if fault == "read-only" else _full_disk_pattern(mounted)
    assert re.fullmatch(expected, message), result.stderr
