"""Do the reports tell the owner the truth? Figures so far stop at the hour they are made (what they compare with
and the pace too), a past day's report does not call that day "today", and a small change is not "no change"
(a reviewer's tests, and the cases around them)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from bot.blocks.common import change
from bot.blocks.pace import pace_text
from bot.blocks.reports import comparison_lines, report_message
from bot.cli.report import report_command
from bot.reports.figures import Comparison, EveningFigures, Window
from bot.reports.reporter import Reporter
from bot.reports.schedule import ReportKind, slot_for
from bot.rhythm.load import pace_today
from bot.rhythm.pace import Pace
from queries.sales import CurrencyTotal
from tests.blockkit import assert_valid_message
from tests.conftest import FakeClock, make_settings
from tests.report_seed import History, Order, at, insert
from tests.test_sales_currencies import snapshot
from tests.test_sales_currencies import text as sales_text

NY = ZoneInfo("America/New_York")
TUESDAY = dt.date(2026, 6, 9)


def order(n: int, when: dt.datetime, amount: int, currency: str = "USD", status: str = "completed") -> Order:
    return Order(f"pi_rev_{n}", status, amount, currency, f"b{n}@x.test", "Course", when)


async def steady_store(pool: asyncpg.Pool, day: dt.date) -> None:
    """2 orders of $25.00 an hour, 08:00-22:00, on each of the 21 days before `day`, and on `day` until noon."""
    history = [dt.datetime.combine(day - dt.timedelta(days=d), dt.time(h, m), tzinfo=NY)
               for d in range(1, 22) for h in range(8, 22) for m in (10, 40)]
    today = [dt.datetime.combine(day, dt.time(h, m), tzinfo=NY) for h in range(8, 12) for m in (10, 40)]
    await pool.execute(
        "INSERT INTO orders (id, payment_status, amount_total, currency, created_at, status_at)"
        " SELECT 'pi_h_' || g, 'completed', 2500, 'USD', t, t FROM unnest($1::timestamptz[]) WITH ORDINALITY"
        " AS x(t, g)", history + today)


def noon(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(12), tzinfo=NY).astimezone(dt.UTC)


async def test_evening_figures_so_far_give_the_pace_as_of_now(pool: asyncpg.Pool, tmp_path: Path) -> None:
    """`salespulse report evening` at 12:00 posts the figures so far. Today has sold by noon exactly what a usual
    day does (8 orders): it is on pace for a usual day (28), as /sales says at 12:00. The preview's pace line must
    say the same, not project the day as if 8 orders were all that sold by 18:00."""
    await steady_store(pool, TUESDAY)
    now = noon(TUESDAY)
    settings = make_settings(STORE_TIMEZONE="America/New_York", SALESPULSE_DATA_DIR=str(tmp_path))
    r = Reporter(pool=pool, settings=settings, slack=None, clock=lambda: now)
    f = await r.figures(slot_for(ReportKind.EVENING, TUESDAY, settings), now=now)
    async with pool.acquire() as conn:
        at_noon = await pace_today(conn, now=now, tz=NY)
    assert at_noon is not None and at_noon.projected_orders == 28  # what /sales and the App Home say at 12:00
    text = json.dumps(report_message(f, tz=NY).blocks, ensure_ascii=False)
    assert "figures so far" in text
    assert isinstance(f, EveningFigures) and f.pace is not None
    assert (f.pace.projected_orders, pace_text(f.pace)) == (28, pace_text(at_noon)), pace_text(f.pace)


async def test_evening_figures_so_far_compare_with_last_week_at_the_same_time(pool: asyncpg.Pool,
                                                                             tmp_path: Path) -> None:
    """The same store at 12:00: today's 8 orders are exactly last Tuesday's 8 by noon. The figures so far must not
    say "▼ 60%" by comparing them with last Tuesday until 18:00 (20 orders), and say which hour they stop at."""
    await steady_store(pool, TUESDAY)
    now = noon(TUESDAY)
    settings = make_settings(STORE_TIMEZONE="America/New_York", SALESPULSE_DATA_DIR=str(tmp_path))
    r = Reporter(pool=pool, settings=settings, slack=None, clock=lambda: now)
    f = await r.figures(slot_for(ReportKind.EVENING, TUESDAY, settings), now=now)
    msg = report_message(f, tz=NY)
    assert_valid_message(msg.as_payload())
    text = json.dumps(msg.blocks, ensure_ascii=False)
    assert "figures so far" in text
    assert "8 orders (▼ 60%)" not in text, text
    assert "8 orders (= 0%)" in text, text
    assert "⏳ Made at Tue 12:00, before its time (18:00 EDT): figures so far" in text, text
    assert "*Today until 12:00 EDT* · against Tue 2 Jun" in text, text


async def test_morning_figures_so_far_cover_the_night_until_now(pool: asyncpg.Pool, tmp_path: Path) -> None:
    """`salespulse report morning` at 07:00: the night runs from last evening's report to 07:00, not to 09:00."""
    await insert(pool, History(orders=[order(1, at(NY, 2026, 6, 8, 20), 1000),
                                       order(2, at(NY, 2026, 6, 9, 6, 30), 2000),
                                       # Only a fake clock puts an order after "now": it shows where the night stops.
                                       order(3, at(NY, 2026, 6, 9, 8), 4000)]))
    now = at(NY, 2026, 6, 9, 7)
    settings = make_settings(STORE_TIMEZONE="America/New_York", SALESPULSE_DATA_DIR=str(tmp_path))
    r = Reporter(pool=pool, settings=settings, slack=None, clock=lambda: now)
    f = await r.figures(slot_for(ReportKind.MORNING, TUESDAY, settings), now=now)
    text = json.dumps(report_message(f, tz=NY).blocks, ensure_ascii=False)
    assert "⏳ Made at Tue 07:00, before its time (09:00 EDT): figures so far" in text, text
    assert "*Overnight* (Mon 18:00 → Tue 07:00 EDT)\\n2 orders · $30.00" in text, text
    on_time = await r.figures(slot_for(ReportKind.MORNING, TUESDAY, settings), now=at(NY, 2026, 6, 9, 9, 0, 30))
    assert "*Overnight* (Mon 18:00 → Tue 09:00 EDT)\\n3 orders · $70.00" in json.dumps(
        report_message(on_time, tz=NY).blocks, ensure_ascii=False)


async def test_a_past_days_evening_report_does_not_call_that_day_today(dsn: str, pool: asyncpg.Pool, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Tue 1 Dec's evening report, printed (or posted after its "was not sent" notice) on Thu 3 Dec: its attention
    section already says "that day", and its figures are headed with that day too; on Tuesday itself, "Today"."""
    await insert(pool, History(orders=[order(1, at(NY, 2026, 12, 1, 10), 1000)]))
    settings = make_settings(DATABASE_URL=dsn, STORE_TIMEZONE="America/New_York", SALESPULSE_DATA_DIR=str(tmp_path))
    clock = FakeClock(at(NY, 2026, 12, 3, 12, 0))
    assert await report_command(settings, which="evening", date="2026-12-01", dry_run=True, clock=clock) == 0
    out = capsys.readouterr().out
    assert "Needed attention at 18:00 that day" in out
    assert "Today until" not in out, out
    assert "*Tue 1 Dec until 18:00 EST* · against Tue 24 Nov" in out, out
    on_the_day = at(NY, 2026, 12, 1, 18, 0, 30)
    r = Reporter(pool=pool, settings=settings, slack=None, clock=lambda: on_the_day)
    f = await r.figures(slot_for(ReportKind.EVENING, dt.date(2026, 12, 1), settings), now=on_the_day)
    assert "*Today until 18:00 EST* · against Tue 24 Nov" in json.dumps(report_message(f, tz=NY).blocks,
                                                                       ensure_ascii=False)


def test_a_half_percent_rise_is_not_shown_as_no_change() -> None:
    """$1,005 against $1,000 is up 0.5%; "= 0%" tells the owner nothing changed. And 2.5% rounds to 3% (half up,
    as the averages round), not to 2% (Python's round() is half-to-even)."""
    assert change(100_500, 100_000) != "= 0%"
    assert change(102_500, 100_000) == "▲ 3%"


@pytest.mark.parametrize(("current", "previous", "shown"), [
    (100_500, 100_000, "▲ 1%"), (99_500, 100_000, "▼ 1%"), (100_499, 100_000, "▲ <1%"), (99_501, 100_000, "▼ <1%"),
    (100_001, 100_000, "▲ <1%"),
    (100_000, 100_000, "= 0%"), (102_500, 100_000, "▲ 3%"), (97_500, 100_000, "▼ 3%"),
    (101_500, 100_000, "▲ 2%"), (102_499, 100_000, "▲ 2%"), (1, 3, "▼ 67%"), (3, 2, "▲ 50%"), (0, 4, "▼ 100%"),
    (10**20 + 1, 10**20, "▲ <1%"),  # integers throughout: a float would lose the 1
    (5, 0, "new"), (0, 0, "—")])
def test_changes_round_half_up_and_say_when_under_one_percent(current: int, previous: int, shown: str) -> None:
    assert change(current, previous) == shown


def test_a_change_under_one_percent_is_escaped_for_slack() -> None:
    """"<" starts a link in Slack's mrkdwn: the reports, /sales (and the App Home, which shows it) and the pace line
send it as "&lt;", as Slack asks. (The dashboard sets it as text: it needs no escaping.)"""
    window = Window(at(NY, 2026, 6, 9, 0), at(NY, 2026, 6, 9, 18))
    lines = comparison_lines(Comparison(window=window, current=(CurrencyTotal("USD", 1001, 100_100),),
                                        previous=(CurrencyTotal("USD", 1000, 100_000),)))
    assert lines == ["• *USD* 1,001 orders (▲ &lt;1%) · $1,001.00 (▲ &lt;1%) · avg $1.00 (was $1.00)"], lines
    shown = sales_text(snapshot([CurrencyTotal("USD", 1001, 100_100)], [CurrencyTotal("USD", 1000, 100_000)]))
    assert "1,001  ▲ &lt;1%" in shown and "$1,001.00  ▲ &lt;1%" in shown and "<1%" not in shown, shown
    pace = Pace("USD", "Tuesday", orders=10, revenue=50_000, projected_orders=30, projected_revenue=390_100,
                usual_orders=30, usual_revenue=390_000)
    assert pace_text(pace) == "📈 On pace for *$3,901.00* — a usual Tuesday is $3,900.00 (▲ &lt;1%)", pace_text(pace)
