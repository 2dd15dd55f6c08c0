"""The embedded Postgres stays up between one-shot commands, stops when idle or asked, never under a user."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rag.store import keeper


def _env(keep_alive: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROSETTA_")}
    return env | {"ROSETTA_KEEP_ALIVE": keep_alive, "OMP_WAIT_POLICY": "PASSIVE"}


def _rosetta(data_dir: Path, *args: str, keep_alive: str = "60") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rag.cli", "--data-dir", str(data_dir), *args],
                          env=_env(keep_alive), capture_output=True, text=True, timeout=180, check=False)


def _until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A data directory whose keeper and server are stopped at the end, whatever the test did."""
    path = tmp_path / "data"
    yield path
    found = keeper.state(path)
    if found.keeper_pid is not None:
        os.kill(found.keeper_pid, signal.SIGTERM)
        _until(lambda: not keeper.keeper_running(found.pgdata), 30)
    server = keeper.state(path).server_pid
    if server is not None:  # a test that failed may leave it running: Postgres's fast shutdown
        os.kill(server, signal.SIGINT)
        _until(lambda: not keeper.state(path).server_running, 30)


def test_a_command_leaves_the_server_running_and_server_stop_stops_it(data_dir: Path) -> None:
    assert _rosetta(data_dir, "status").returncode == 0
    assert _until(lambda: keeper.state(data_dir).keeper_pid is not None, 30), "no keeper started"
    first = keeper.state(data_dir)
    assert first.server_running
    shown = " ".join(_rosetta(data_dir, "server", "status").stdout.split())  # unwrapped
    assert f"running (pid {first.server_pid}); kept by pid {first.keeper_pid}" in shown

    assert _rosetta(data_dir, "status").returncode == 0  # joins the same server
    assert keeper.state(data_dir).server_pid == first.server_pid

    stopped = _rosetta(data_dir, "server", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped" in stopped.stdout
    after = keeper.state(data_dir)
    assert after.keeper_pid is None and not after.server_running


def test_the_server_stops_by_itself_once_idle(data_dir: Path) -> None:
    assert _rosetta(data_dir, "status", keep_alive="1").returncode == 0
    log = data_dir / "pg" / keeper.LOG_NAME  # the keeper may come and go between two polls: its log says
    assert _until(lambda: "no client for 1 s; leaving" in log.read_text(), 60), log.read_text()
    assert _until(lambda: not keeper.state(data_dir).server_running, 30), "idle server still running"
    assert _until(lambda: not keeper.keeper_running(data_dir / "pg"), 30), "the keeper did not exit"


def test_keep_alive_zero_stops_the_server_with_the_command(data_dir: Path) -> None:
    assert _rosetta(data_dir, "status", keep_alive="0").returncode == 0
    assert not keeper.state(data_dir).server_running
    assert not keeper.keeper_running(data_dir / "pg")


# Connected for 6 s with a keep-alive of 1 s: the keeper must wait for this client to leave.
_HOLD = """
import sys, time
from pathlib import Path
from rag.config import load_config
from rag.rosetta import Rosetta
config = load_config(data_dir=Path(sys.argv[1]))
with Rosetta.open(config) as rosetta:
    print("open", flush=True)
    for _ in range(30):
        with rosetta.database.pool.connection() as conn:
            conn.execute("SELECT 1")
        time.sleep(0.2)
print("done", flush=True)
"""


def test_a_connected_client_keeps_its_server_and_keeper(data_dir: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(data_dir)], env=_env("1"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        assert _until(lambda: keeper.keeper_running(data_dir / "pg"), 30), "no keeper started"
        time.sleep(3)  # three idle times
        assert keeper.keeper_running(data_dir / "pg"), "the keeper left while a client was connected"
        out, err = holder.communicate(timeout=60)
    finally:
        holder.kill()
    assert holder.returncode == 0 and out.strip() == "done", err
    assert _until(lambda: not keeper.state(data_dir).server_running, 30), "idle server still running"


def test_a_killed_user_does_not_keep_the_server_forever(data_dir: Path) -> None:
    """pgserver never forgets a SIGKILLed process's pid; the keeper drops it, so the server still stops."""
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(data_dir)], env=_env("1"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
    assert _until(lambda: keeper.keeper_running(data_dir / "pg"), 30), "no keeper started"
    holder.kill()
    holder.wait()
    assert _until(lambda: not keeper.state(data_dir).server_running, 30), "server kept by a dead pid"


def test_server_stop_stops_a_server_kept_only_by_killed_commands(data_dir: Path) -> None:
    """Commands with keep-alive 0 start no keeper; one killed mid-command left its pid in pgserver's count,
    and nothing else would ever stop the server. ``rosetta server stop`` drops the dead pid and stops it."""
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(data_dir)], env=_env("0"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
    holder.kill()
    holder.wait()
    time.sleep(1)
    assert keeper.state(data_dir).server_running and not keeper.keeper_running(data_dir / "pg")
    result = _rosetta(data_dir, "server", "stop")
    assert result.returncode == 0, result.stderr
    assert "stopped" in result.stdout
    assert _until(lambda: not keeper.state(data_dir).server_running, 30)
