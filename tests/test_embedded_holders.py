"""The embedded PostgreSQL stops with the last run that used it, even after an earlier run was killed outright."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bot.db import HOLDERS_FILE, embedded_postgres, forget_dead_holders


def _dead_pid() -> int:
    """The pid of a process that has already exited."""
    out = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                         check=True)
    return int(out.stdout)


def _stop_left_server(pgdata: Path) -> None:
    """Stop a server the code under test left running, so a failing run leaks nothing."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGINT)  # fast shutdown
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.1)


def test_forget_dead_holders_keeps_live_ones(tmp_path: Path) -> None:
    killed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    killed.kill()  # kill -9, and not reaped yet: a zombie, as a killed run is until its parent waits for it
    try:
        for _ in range(100):
            if psutil.Process(killed.pid).status() == psutil.STATUS_ZOMBIE:
                break
            time.sleep(0.05)
        (tmp_path / HOLDERS_FILE).write_text(json.dumps([_dead_pid(), killed.pid, os.getpid()]))
        assert forget_dead_holders(tmp_path) == [os.getpid()]
        assert json.loads((tmp_path / HOLDERS_FILE).read_text()) == [os.getpid()]
    finally:
        killed.wait()
    (tmp_path / HOLDERS_FILE).write_text("not json")
    assert forget_dead_holders(tmp_path) == []  # left as it is: the library's file, in a shape we do not know
    assert (tmp_path / HOLDERS_FILE).read_text() == "not json"


def test_server_stops_after_a_killed_holder() -> None:
    with tempfile.TemporaryDirectory(prefix="salespulse-test-holders-") as folder:
        data_dir, pgdata = Path(folder), Path(folder) / "pgdata"
        try:
            with embedded_postgres(data_dir):  # the first run: creates the data directory
                pass
            assert not (pgdata / "postmaster.pid").exists()
            # A run that was killed with kill -9 is still listed as holding the server.
            (pgdata / HOLDERS_FILE).write_text(json.dumps([_dead_pid()]))
            with embedded_postgres(data_dir):
                assert (pgdata / "postmaster.pid").exists()
            assert not (pgdata / "postmaster.pid").exists(), "the server outlived the last run that used it"
        finally:
            _stop_left_server(pgdata)
