"""`salespulse seed --subscriptions N`: synthetic subscriptions with their MRR ledger beside the seeded orders."""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
import pytest

from bot.cli.main import main
from queries import mrr


async def test_cli_seed_adds_subscriptions_when_asked(dsn: str, conn: asyncpg.Connection,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """--subscriptions 200: 200 subscriptions, each state's MRR that of its newest snapshot, and an MRR summary
    with new and churned MRR over the last 30 days."""
    monkeypatch.setenv("DATABASE_URL", dsn)
    code = await asyncio.to_thread(main, ["seed", "--orders", "50", "--days", "3", "--subscriptions", "200"])
    assert code == 0
    assert "seeded 200 subscriptions" in capsys.readouterr().err
    assert await conn.fetchval("SELECT count(*) FROM subscriptions") == 200
    mismatched = await conn.fetchval("""
        SELECT count(*) FROM subscriptions AS s
          JOIN subscription_events AS e ON e.event_id = s.last_event_id
         WHERE e.mrr_units <> s.mrr_units""")
    assert mismatched == 0
    now = dt.datetime.now(dt.UTC)
    got = await mrr.summary(conn, now=now, since=now - dt.timedelta(days=30))
    # The seed is random per run: a small currency (a handful of its 200 subscriptions) may see no new MRR in the
    # window, so new MRR is asked of the main one (ordered first, by MRR), which holds most of them.
    main_currency = got.currencies[0]
    assert got.active > 100 and main_currency.mrr > 0 and main_currency.new > 0 and got.trialing > 0
    assert all(c.mrr >= 0 and c.active >= 0 for c in got.currencies)


async def test_cli_seed_adds_no_subscriptions_by_default(dsn: str, conn: asyncpg.Connection,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --subscriptions the seed is orders only, as before."""
    monkeypatch.setenv("DATABASE_URL", dsn)
    assert await asyncio.to_thread(main, ["seed", "--orders", "20", "--days", "1"]) == 0
    assert await conn.fetchval("SELECT count(*) FROM subscriptions") == 0
