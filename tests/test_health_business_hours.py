"""/health's "last order" silence without a rhythm counts the night as business hours."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

from bot.answers.gather import gather_health
from bot.blocks.health import health_message
from tests.conftest import FakeClock, start_bot
from tests.fakes import FakeSlack

NY = ZoneInfo("America/New_York")


async def test_health_does_not_call_the_night_an_hour_in_business_hours(dsn: str, fake_slack: FakeSlack) -> None:
    """Business hours 09:00-21:00 (the default). The last order came Monday 20:50, ten minutes before closing;
    /health is asked Tuesday 09:05, five minutes after opening: only 15 minutes of business hours have passed
    without an order (the no_order_1h rule, which says the same thing, agrees), yet /health flags it
    "over an hour in business hours" and the JSON API and dashboard say the store is degraded every morning."""
    now = dt.datetime(2026, 6, 9, 9, 5, tzinfo=NY)  # a Tuesday
    clock = FakeClock(now.astimezone(dt.UTC))
    async with start_bot(dsn, fake_slack, clock=clock,
                         STORE_TIMEZONE="America/New_York") as bot:
        last = dt.datetime(2026, 6, 8, 20, 50, tzinfo=NY)
        await bot.deps.pool.execute("INSERT INTO orders (id, payment_status, amount_total, currency, created_at,"
                                    " status_at) VALUES ('pi_eve', 'completed', 2500, 'USD', $1, $1)", last)
        health = await gather_health(bot.deps)
        assert health.rhythm is False and health.in_business_hours
        text = json.dumps(health_message(health, tz=NY).as_payload(), ensure_ascii=False)
        assert "over an hour in business hours" not in text
        assert not health.order_silence_suspicious
        assert not health.degraded
        assert health.order_silence == dt.timedelta(minutes=15)

        # At 10:20, an hour and a half of business hours without an order: that is worth a look.
        clock.now = dt.datetime(2026, 6, 9, 10, 20, tzinfo=NY).astimezone(dt.UTC)
        health = await gather_health(bot.deps)
        assert health.order_silence_suspicious and health.degraded
        text = json.dumps(health_message(health, tz=NY).as_payload(), ensure_ascii=False)
        assert "Last order* Mon 20:50 (13 h ago) — 1 h 30 min of business hours without one" in text


async def test_health_does_not_count_closed_days_as_silence(dsn: str, fake_slack: FakeSlack) -> None:
    """Open Monday to Friday: the last order Friday 20:30, /health asked Monday 09:40. Half an hour of Friday and 40
    minutes of Monday are silent business time (70 minutes, flagged); the weekend between is not (61 hours)."""
    clock = FakeClock(dt.datetime(2026, 6, 15, 9, 20, tzinfo=NY).astimezone(dt.UTC))  # a Monday
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="America/New_York",
                         BUSINESS_DAYS="mon-fri") as bot:
        friday = dt.datetime(2026, 6, 12, 20, 30, tzinfo=NY)
        await bot.deps.pool.execute("INSERT INTO orders (id, payment_status, amount_total, currency, created_at,"
                                    " status_at) VALUES ('pi_fri', 'completed', 2500, 'USD', $1, $1)", friday)
        health = await gather_health(bot.deps)
        assert (health.order_silence, health.order_silence_suspicious) == (dt.timedelta(minutes=50), False)
        clock.advance(minutes=20)
        health = await gather_health(bot.deps)
        assert (health.order_silence, health.order_silence_suspicious) == (dt.timedelta(minutes=70), True)
