"""PostgreSQL not there yet, or refusing: `salespulse run` waits for a database that is starting (a container
started beside it) and answers /healthz "starting" meanwhile; the commands say in one line why they cannot use it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import asyncpg
import pytest

from bot.cli.main import main
from bot.db import wait_for_database
from queries import locks
from tests.conftest import STRIPE_SECRET, with_database
from tests.test_replicas import free_port

ROOT = Path(__file__).resolve().parents[1]


async def _open_upstream(dsn: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw connection to the server `dsn` names: TCP, or the Unix socket of the embedded server."""
    parts = urlsplit(dsn)
    port = parts.port or 5432
    if parts.hostname:
        return await asyncio.open_connection(parts.hostname, port)
    folder = parse_qs(parts.query)["host"][0]
    return await asyncio.open_unix_connection(f"{folder}/.s.PGSQL.{port}")


@contextlib.asynccontextmanager
async def proxy(port: int, upstream_dsn: str) -> AsyncIterator[None]:
    """A TCP port on 127.0.0.1 that forwards to the test server: PostgreSQL "coming up" where nothing listened."""
    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await _open_upstream(upstream_dsn)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()


def through(port: int, dsn: str) -> str:
    """`dsn`'s user and database, reached on 127.0.0.1:port."""
    parts = urlsplit(dsn)
    return f"postgresql://{parts.username or 'postgres'}@127.0.0.1:{port}{parts.path}"


async def test_the_wait_ends_when_postgresql_comes_up(dsn: str, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    waiting = asyncio.create_task(wait_for_database(through(port, dsn), within=30))
    await asyncio.sleep(1.2)
    assert not waiting.done()  # nothing listens yet: still trying
    async with proxy(port, dsn):
        await asyncio.wait_for(waiting, 10)
    assert "PostgreSQL is not reachable yet (ConnectionRefusedError" in caplog.text


async def test_the_wait_gives_up_after_its_time() -> None:
    started = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        await wait_for_database(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", within=1.0)
    assert time.monotonic() - started < 5


async def test_a_refused_role_is_not_waited_for(dsn: str) -> None:
    parts = urlsplit(dsn)  # the same server as another user: TCP, or the embedded server's socket
    where = f"{parts.hostname}:{parts.port}" if parts.hostname and parts.port else parts.hostname or ""
    refused = parts._replace(netloc=f"no_such_role@{where}").geturl()
    started = time.monotonic()
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):
        await wait_for_database(refused, within=30)
    assert time.monotonic() - started < 5


async def test_a_connection_parameter_asyncpg_refuses_is_not_waited_for(dsn: str) -> None:
    """A well-formed URI asyncpg still refuses (an unknown sslmode): said at once, not after a minute of tries."""
    started = time.monotonic()
    with pytest.raises(asyncpg.ClientConfigurationError, match="sslmode"):
        await wait_for_database(f"{dsn}{'&' if '?' in dsn else '?'}sslmode=sometimes", within=30)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("command", [["migrate"], ["seed", "--orders", "10"], ["report", "evening", "--dry-run"]])
async def test_commands_say_in_one_line_why_they_cannot_use_postgresql(
        command: list[str], server_dsn: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for url, why in ((f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", "ConnectionRefusedError"),
                     (with_database(server_dsn, "no_such_database"), 'database "no_such_database" does not exist'),
                     (f"{server_dsn}{'&' if '?' in server_dsn else '?'}sslmode=sometimes", "sslmode")):
        monkeypatch.setenv("DATABASE_URL", url)
        assert await asyncio.to_thread(main, command) == 1
        err = capsys.readouterr().err
        assert f"salespulse {command[0]}: cannot use PostgreSQL — " in err and why in err, err
        assert "Traceback" not in err and "Check DATABASE_URL" in err


async def _health(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    with contextlib.suppress(aiohttp.ClientError, OSError):
        async with session.get(f"{url}/healthz") as resp:
            return resp.status, await resp.text()
    return 0, ""


async def test_run_answers_starting_until_postgresql_is_up_and_stops_while_waiting(
        dsn: str, tmp_path: Path) -> None:
    db_port, http_port = free_port(), free_port()
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), "PYTHONPATH": str(ROOT),
           "DATABASE_URL": through(db_port, dsn), "HOST": "127.0.0.1", "PORT": str(http_port),
           "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET, "SALESPULSE_DATA_DIR": str(tmp_path / "data")}
    url, log = f"http://127.0.0.1:{http_port}", tmp_path / "run.log"

    async def start() -> asyncio.subprocess.Process:
        with log.open("ab") as out:
            return await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "run", cwd=tmp_path, env=env,
                                                        stdout=out, stderr=out)

    async def until(session: aiohttp.ClientSession, status: int, within: float) -> str:
        deadline = time.monotonic() + within
        while (got := await _health(session, url))[0] != status:
            assert time.monotonic() < deadline, f"/healthz never {status}: {got}\n{log.read_text()[-2000:]}"
            await asyncio.sleep(0.1)
        return got[1]

    async with aiohttp.ClientSession() as session:
        proc = await start()  # PostgreSQL never comes: a stop while waiting ends it cleanly
        assert "starting" in await until(session, 503, 15)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        proc = await start()  # PostgreSQL comes up a moment later: the same process becomes ready
        try:
            await until(session, 503, 15)
            await asyncio.sleep(1)
            async with proxy(db_port, dsn):
                await until(session, 200, 30)
                proc.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(proc.wait(), 20) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
    assert "PostgreSQL is not reachable yet" in log.read_text()


async def test_a_second_replica_waits_for_the_migrations_under_a_statement_timeout(
        dsn: str, server_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a database with a statement_timeout (usual on managed PostgreSQL), `migrate` waits for the replica holding
    the migration lock, however long it takes, instead of being cancelled by the timeout."""
    admin = await asyncpg.connect(server_dsn)
    await admin.execute(f"ALTER DATABASE \"{urlsplit(dsn).path.lstrip('/')}\" SET statement_timeout = '1s'")
    await admin.close()
    first = await asyncpg.connect(dsn, server_settings={"statement_timeout": "0"})  # the replica migrating for 3 s
    await first.execute("SELECT pg_advisory_lock($1)", locks.MIGRATION)
    monkeypatch.setenv("DATABASE_URL", dsn)
    migrating = asyncio.create_task(asyncio.to_thread(main, ["migrate"]))
    try:
        await asyncio.sleep(3)
        assert not migrating.done()  # still waiting for the lock, past the 1 s timeout
        await first.execute("SELECT pg_advisory_unlock($1)", locks.MIGRATION)
        assert await asyncio.wait_for(migrating, 30) == 0
    finally:
        await first.close()
        await asyncio.gather(migrating, return_exceptions=True)
    session = await asyncpg.connect(dsn)  # the database's timeout still holds everywhere else
    try:
        assert await session.fetchval("SHOW statement_timeout") == "1s"
    finally:
        await session.close()


@pytest.mark.parametrize("command", [["migrate"], ["run"], ["seed", "--orders", "10"]])
async def test_a_read_only_database_is_said_in_one_line(command: list[str], server_dsn: str, tmp_path: Path) -> None:
    """DATABASE_URL naming a read-only server (a hot standby, a database set read-only): `migrate`, `run` and `seed`
    exit 1 with one line saying what PostgreSQL refused, not an asyncpg traceback."""
    name = f"salespulse_ro_{os.getpid()}_{command[0]}"
    admin = await asyncpg.connect(server_dsn)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), "PYTHONPATH": str(ROOT),
           "DATABASE_URL": with_database(server_dsn, name), "HOST": "127.0.0.1", "PORT": str(free_port()),
           "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET}
    try:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", *command, cwd=tmp_path, env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    text = err.decode()
    assert proc.returncode == 1, text[-600:]
    assert "Traceback" not in text, text[-600:]
    assert (f"salespulse {command[0]}: PostgreSQL refused — ReadOnlySQLTransactionError: cannot execute CREATE TABLE"
            " in a read-only transaction") in text.splitlines()
