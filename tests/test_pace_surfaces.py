"""Today's pace line where the rhythm half put it besides /sales: the App Home tab and the evening report."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from zoneinfo import ZoneInfo

import pytest

from bot.alerts.jobs import AlertJobs
from bot.alerts.leader import Leadership
from bot.answers.gather import gather_health
from bot.answers.snapshots import sales_snapshot
from bot.blocks.health import health_message
from bot.blocks.pace import pace_text
from bot.currency import CurrencyChoice
from bot.home.render import render_home
from bot.periods import parse_period
from tests.blockkit import assert_valid_message, assert_valid_view
from tests.conftest import Bot, FakeClock, post_report, start_bot
from tests.fakes import FakeSlack

NY = ZoneInfo("America/New_York")
EVENING = dt.datetime(2026, 6, 9, 19, 0, tzinfo=NY)  # a Tuesday, an hour after the evening report's time
HOUR_AGO = dt.timedelta(hours=1)


@pytest.fixture
async def store(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[Bot]:
    """A New York store with three weeks of 2 orders an hour from 08:00 to 22:00, and 10 orders today."""
    async with start_bot(dsn, fake_slack, clock=FakeClock(EVENING.astimezone(dt.UTC)),
                         STORE_TIMEZONE="America/New_York") as bot:
        day = EVENING.date()
        history = [dt.datetime.combine(day - dt.timedelta(days=d), dt.time(h, m), tzinfo=NY)
                   for d in range(1, 22) for h in range(8, 22) for m in (10, 40)]
        today = [dt.datetime.combine(day, dt.time(9 + n), tzinfo=NY) for n in range(10)]
        await bot.deps.pool.execute(
            "INSERT INTO orders (id, payment_status, amount_total, currency, created_at, status_at)"
            " SELECT 'pi_h_' || g, 'completed', 2500, 'USD', t, t FROM unnest($1::timestamptz[]) WITH ORDINALITY"
            " AS x(t, g)", history + today)
        yield bot


async def test_app_home_shows_todays_pace(store: Bot) -> None:
    """The Home tab carries the pace line: 10 orders by 19:00 where 22 are usual is on pace for under 28."""
    home = await render_home(store.deps, buttons=True)
    assert_valid_view(home)
    text = json.dumps(home, ensure_ascii=False)
    assert "📈 On pace for" in text and "a usual Tuesday is $700.00" in text


async def test_evening_report_shows_todays_pace(store: Bot) -> None:
    """The evening report posted at 19:00 says today's pace against a usual Tuesday."""
    await post_report(store)
    [report] = [c for c in store.slack_api.posted() if "Evening report" in (c.get("text") or "")]
    assert_valid_message(report)
    text = json.dumps(report["blocks"], ensure_ascii=False)
    assert "📈 On pace for" in text and "a usual Tuesday is $700.00" in text


# Each hour from 08:00 to 22:00 of three weeks: a $25.00 order and a €20.00 one that settled for $22.00.
CURRENCIES = """
INSERT INTO orders (id, payment_status, amount_total, currency, created_at, status_at, settled_amount, fee, net)
SELECT 'pi_' || c || '_' || g, 'completed', a, c, t, t, s, 0, s
  FROM unnest($1::timestamptz[]) WITH ORDINALITY AS x(t, g),
       (VALUES ('USD', 2500, 2500::bigint), ('EUR', 2000, 2200::bigint)) AS v(c, a, s)
"""


@pytest.mark.parametrize(("store_currency", "usual"), [("USD", "$658.00"), (None, "$350.00")])
async def test_the_pace_is_in_the_store_currency_as_the_totals_beside_it(dsn: str, fake_slack: FakeSlack,
                                                                         store_currency: str | None,
                                                                         usual: str) -> None:
    """With a store currency, today's pace counts every currency as /sales does (what settled, in it), against usual
    days counted the same way; without one, the largest currency's own orders, as before."""
    async with start_bot(dsn, fake_slack, clock=FakeClock(EVENING.astimezone(dt.UTC)),
                         STORE_TIMEZONE="America/New_York", STORE_CURRENCY=store_currency) as bot:
        day = EVENING.date()
        hours = [dt.datetime.combine(day - dt.timedelta(days=d), dt.time(h, 30), tzinfo=NY)
                 for d in range(1, 22) for h in range(8, 22)]
        today = [dt.datetime.combine(day, dt.time(9 + n, 15), tzinfo=NY) for n in range(5)]
        await bot.deps.pool.execute(CURRENCIES, hours + today)
        await bot.deps.pool.execute(  # a euro sale not converted yet: an order, no revenue in dollars yet
            "INSERT INTO orders (id, payment_status, amount_total, currency, created_at, status_at)"
            " VALUES ('pi_unread', 'completed', 9900, 'EUR', $1, $1)", EVENING.astimezone(dt.UTC) - HOUR_AGO)
        snap = await sales_snapshot(bot.deps.pool, period=parse_period("", now=bot.deps.clock(), tz=NY),
                                    now=bot.deps.clock(), tz=NY, currency=CurrencyChoice.of(bot.deps.settings),
                                    rhythm=bot.deps.rhythm)
        assert snap.pace is not None
        assert snap.pace.orders == 11 and snap.pace.usual_orders == 28
        assert f"a usual Tuesday is {usual}" in pace_text(snap.pace)
        if store_currency:
            assert snap.store is not None and snap.pace.revenue == snap.store.gross == 5 * (2500 + 2200)
            assert "(USD orders)" not in pace_text(snap.pace)
        else:  # the dollars of dollar orders, and it says so: euros sold too
            assert snap.pace.revenue == 5 * 2500 and "* (USD orders) — a usual" in pace_text(snap.pace)
        jobs = AlertJobs(bot.deps, leadership=Leadership(dsn))
        try:
            await jobs.tick()  # the alert rules read the same cached rhythm: no rebuild between them and /sales
        finally:
            await jobs.leadership.release()
        assert bot.deps.rhythm_cache.hits == 1


async def test_health_judges_order_silence_by_the_rhythm_once_there_is_one(store: Bot) -> None:
    """19:30, the last order at 18:00: over the guide's hour, but at 2 an hour an hour and a half without one is
    usual (P ≈ 5 %), so a store with a rhythm is not called degraded — until `sales_stopped` fires."""
    clock = store.deps.clock
    assert isinstance(clock, FakeClock)
    clock.advance(minutes=30)
    health = await gather_health(store.deps)
    assert (health.rhythm, health.order_silence_suspicious, health.degraded) == (True, False, False)
    await store.deps.pool.execute(
        "INSERT INTO alerts (fingerprint, rule, family, severity, labels, title, summary, started_at, last_seen_at)"
        " VALUES ('sales_stopped', 'sales_stopped', 'sales', 'critical', '{}', 'Sales stopped', 'No sale', $1, $1)",
        clock())
    health = await gather_health(store.deps)
    assert health.order_silence_suspicious and health.degraded
    assert "unusually long for this hour" in json.dumps(health_message(health, tz=NY).as_payload(), ensure_ascii=False)


async def test_health_keeps_the_guides_hour_without_a_rhythm(bot: Bot) -> None:
    """No history, no rhythm: an order two hours old is flagged in business hours, as the original guide says."""
    at = bot.deps.clock() - dt.timedelta(hours=2)
    await bot.deps.pool.execute("INSERT INTO orders (id, payment_status, amount_total, currency, created_at,"
                                " status_at) VALUES ('pi_old', 'completed', 2500, 'USD', $1, $1)", at)
    plain = await gather_health(bot.deps)
    assert plain.rhythm is False
    assert plain.order_silence_suspicious == plain.in_business_hours  # an hour old counts only in business hours
