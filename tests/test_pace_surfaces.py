"""Today's pace line where the rhythm half put it besides /sales: the App Home tab and the evening report."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from zoneinfo import ZoneInfo

import pytest

from bot.home.render import render_home
from tests.blockkit import assert_valid_message, assert_valid_view
from tests.conftest import Bot, FakeClock, post_report, start_bot
from tests.fakes import FakeSlack

NY = ZoneInfo("America/New_York")
EVENING = dt.datetime(2026, 6, 9, 19, 0, tzinfo=NY)  # a Tuesday, an hour after the evening report's time


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
    home = await render_home(store.deps)
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
