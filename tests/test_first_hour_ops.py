"""First-hour and operations papercuts: a blank STORE_TIMEZONE, a HOST nothing can listen on, a host name that does
not resolve, Bolt's warning at every start, and the console's message ts across a restart."""

from __future__ import annotations

import asyncio
import io
import logging
from decimal import Decimal

import pytest

from bot.cli.main import main
from bot.config import SettingsError, load_settings
from bot.db import wait_for_database
from bot.delivery.senders import ConsoleSender
from tests.conftest import start_bot
from tests.fakes import FakeSlack

UNRESOLVABLE = "db.salespulse.invalid"  # RFC 2606: .invalid never resolves


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """An empty directory (no .env) and no Slack, database or listen settings from the machine."""
    monkeypatch.chdir(str(tmp_path))
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "DATABASE_URL", "HOST", "PORT",
                 "STORE_TIMEZONE", "STRIPE_API_KEY", "SLACK_SALES_WEBHOOK_URL", "SLACK_ALERT_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_store_timezone_means_the_default(monkeypatch: pytest.MonkeyPatch, blank: str) -> None:
    """`STORE_TIMEZONE=` in a copied .env template is unset, like the other optional settings: UTC, not refused."""
    monkeypatch.setenv("STORE_TIMEZONE", blank)
    assert load_settings().store_timezone == "UTC"
    monkeypatch.setenv("STORE_TIMEZONE", "Nowhere/City")  # a wrong zone is still refused
    with pytest.raises(SettingsError, match="STORE_TIMEZONE: unknown IANA time zone 'Nowhere/City'"):
        load_settings()


@pytest.mark.parametrize(("name", "default"), [
    ("PORT", 3000), ("BUSINESS_HOURS", "09:00-21:00"), ("BUSINESS_DAYS", "Mon–Sun"), ("MORNING_REPORT_AT", "09:00"),
    ("EVENING_REPORT_AT", "18:00"), ("SLACK_API_URL", "https://slack.com/api/"),
    ("STRIPE_API_URL", "https://api.stripe.com"), ("ALERT_CHECK_INTERVAL_SECONDS", 60),
    ("SALE_SETTLE_SECONDS", 5.0), ("SUBSCRIPTION_RENEWALS", "coalesce")])
def test_every_blank_setting_with_a_default_means_the_default(monkeypatch: pytest.MonkeyPatch, name: str,
                                                              default: object) -> None:
    """A copied .env template leaves `NAME=` lines blank: each means its default, as a blank token means unset,
    rather than stopping the start on "expected HH:MM" or "not a valid integer"."""
    monkeypatch.setenv(name, " ")
    value = getattr(load_settings(), name.lower())
    assert _shown(value) == str(default), (name, value)


def _shown(value: object) -> str:
    """A window, a day set or a time as the README writes its default."""
    if isinstance(value, frozenset):
        return "Mon–Sun" if value == frozenset(range(7)) else repr(value)
    if hasattr(value, "start") and hasattr(value, "end"):
        return f"{value.start:%H:%M}-{value.end:%H:%M}"
    return f"{value:%H:%M}" if hasattr(value, "hour") else str(value)


@pytest.mark.parametrize("host", ["999.1.1.1", "no-such-host.salespulse.invalid"])
async def test_check_refuses_a_host_nothing_can_listen_on(dsn: str, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str], host: str) -> None:
    """HOST=999.1.1.1 is no IP address and no name: `run` cannot listen there, so `check` fails naming it."""
    monkeypatch.setenv("DATABASE_URL", dsn)
    monkeypatch.setenv("HOST", host)
    assert await asyncio.to_thread(main, ["check"]) == 1
    out = capsys.readouterr().out
    [line] = [line for line in out.splitlines() if line.strip().startswith("listen address:")]
    assert "FAILED" in line and f"HOST {host!r}" in line and "not an IP address or a name" in line, out
    assert "postgres:         ok" in out  # every other check still runs


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "0.0.0.0"])
async def test_check_accepts_a_host_that_is_an_address_or_a_name(dsn: str, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str],
                                                                 host: str) -> None:
    monkeypatch.setenv("DATABASE_URL", dsn)
    monkeypatch.setenv("HOST", host)
    assert await asyncio.to_thread(main, ["check"]) == 0
    out = capsys.readouterr().out
    assert any(line.strip().startswith("listen address:   ok") for line in out.splitlines()), out


def test_check_names_the_database_host_it_cannot_resolve(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A DATABASE_URL whose host does not resolve: 'Name or service not known' alone never said which name."""
    monkeypatch.setenv("DATABASE_URL", f"postgresql://app:dbsupersecret@{UNRESOLVABLE}:5432/shop")
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    [line] = [line for line in out.splitlines() if "postgres:" in line]
    assert "FAILED" in line and repr(UNRESOLVABLE) in line, out
    assert "supersecret" not in out


@pytest.mark.parametrize("hosts", [UNRESOLVABLE, f"127.0.0.1:1,{UNRESOLVABLE}"])
def test_migrate_names_the_database_host_it_cannot_resolve(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str], hosts: str) -> None:
    """Every command's one line names the host that failed to resolve (asyncpg raises the last host's error)."""
    monkeypatch.setenv("DATABASE_URL", f"postgresql://app:dbsupersecret@{hosts}/shop")
    assert main(["migrate"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("salespulse migrate: cannot use PostgreSQL — gaierror:") and repr(UNRESOLVABLE) in err, err
    assert "supersecret" not in err


async def test_start_names_the_database_host_it_cannot_resolve() -> None:
    """`run` waits for PostgreSQL, then says what it waited for: the error it logs and raises names the host."""
    import socket

    with pytest.raises(socket.gaierror) as info:
        await wait_for_database(f"postgresql://app@{UNRESOLVABLE}/shop", within=0)
    assert repr(UNRESOLVABLE) in str(info.value)


async def test_the_start_logs_no_warning_about_an_unused_token(dsn: str, fake_slack: FakeSlack,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """SLACK_BOT_TOKEN in the process environment (a container, systemd): Bolt read it beside the client it is given
    and logged 'As you gave client as well, token will be unused' at every start."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    async with start_bot(dsn, fake_slack) as bot:
        assert bot.deps.settings.slack_bot_token is not None
    said = [f"{r.name}: {r.getMessage()}" for r in caplog.records if "unused" in r.getMessage()]
    assert said == []


async def test_a_new_console_post_never_takes_the_ts_of_one_from_before_a_restart() -> None:
    """The local feed restores the previous run's messages with their ts; the console's next post must not reuse
    one (a counter from 1 did: an edit or reply meant for the old message found the new one), and, as in Slack,
    a later message has a later ts."""
    before = ConsoleSender(stream=io.StringIO())
    restored = [(await before.post("sales", {"text": f"sale {n}"})).ts for n in range(3)]
    after = ConsoleSender(stream=io.StringIO())  # the next start
    new = [(await after.post("sales", {"text": f"sale {n}"})).ts for n in range(3, 6)]
    assert all(ts is not None for ts in restored + new)
    assert not set(new) & set(restored)
    numbers = [Decimal(str(ts)) for ts in restored + new]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers), restored + new
    seconds, _, micros = str(new[0]).partition(".")
    assert len(micros) == 6 and int(seconds) > 1_000_000_000  # Slack's shape: epoch seconds '.' microseconds


async def test_check_refuses_a_host_that_is_not_this_machines(dsn: str, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """HOST=192.0.2.1 is an IP address, but another machine's (TEST-NET-1): `run` would fail to bind it."""
    monkeypatch.setenv("DATABASE_URL", dsn)
    monkeypatch.setenv("HOST", "192.0.2.1")
    assert await asyncio.to_thread(main, ["check"]) == 1
    out = capsys.readouterr().out
    [line] = [line for line in out.splitlines() if line.strip().startswith("listen address:")]
    assert line.strip() == ("listen address:   FAILED — HOST '192.0.2.1' (192.0.2.1) is not an address of this"
                            " machine: Cannot assign requested address"), out
