"""Review r3 of the store's rhythm: two-sample outliers, the report's [rhythm] params, a store's evidence of
trading, and its first partial day."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.answers.snapshots import sales_snapshot
from bot.currency import CurrencyChoice
from bot.periods import parse_period
from bot.rhythm.model import RhythmParams, build
from bot.rhythm.pace import project
from queries.rhythm import HourCount
from tests.conftest import FakeClock, post_report, start_bot
from tests.fakes import FakeSlack

NY = ZoneInfo("America/New_York")


def _history(days: dict[dt.date, int], hours: range = range(9, 19)) -> list[HourCount]:
    """Each day's total spread evenly over `hours`."""
    out: list[HourCount] = []
    for d, total in days.items():
        per = total // len(hours)
        for h in hours:
            out.append(HourCount(d, h, "USD", per, per * 2500))
    return out


def test_two_weeks_black_friday_becomes_the_usual_friday() -> None:
    """A young store (exactly two weeks) had a Black Friday (400 orders) and a normal Friday (100). With two samples
    the 'outlier' filter drops the *normal* Friday and keeps Black Friday: a usual Friday is ~380 orders."""
    today = dt.date(2026, 12, 7)  # Monday
    first = dt.date(2026, 11, 23)  # 14 days earlier: two whole weeks
    days = {first + dt.timedelta(days=n): 100 for n in range(14)}
    days[dt.date(2026, 11, 27)] = 400  # Black Friday 2026
    rhythm = build(_history(days), today=today, first_day=first, params=RhythmParams(), tz=NY)
    assert rhythm is not None
    friday = rhythm.usual_day(4).orders
    # Keeping both days gives 250; leaving Black Friday out gives ~100. Never more than the plain mean.
    assert friday <= 250, f"usual Friday = {friday:.0f} orders from Fridays of 100 and 400 (Black Friday)"


def test_young_store_first_partial_day_halves_its_weekday() -> None:
    """The first day of history is the day the store opened (first sale 15:00): its morning counts as zero sales,
    so that weekday's usual morning is halved for a two-week-old store."""
    today = dt.date(2026, 12, 7)
    first = dt.date(2026, 11, 23)  # Monday, first sale at 15:00
    counts: list[HourCount] = []
    for n in range(14):
        d = first + dt.timedelta(days=n)
        for h in range(9, 19):
            if d == first and h < 15:
                continue  # not open yet
            counts.append(HourCount(d, h, "USD", 20, 20 * 2500))
    rhythm = build(counts, today=today, first_day=first, params=RhythmParams(), tz=NY)
    assert rhythm is not None
    monday_10 = rhythm.rates[0][10].orders
    assert monday_10 > 17, f"usual Monday 10:00 = {monday_10:.1f} orders/h where every open Monday sold 20"


async def test_report_pace_ignores_rhythm_params(dsn: str, fake_slack: FakeSlack, tmp_path: Path) -> None:
    """[rhythm] weeks = 2 in ALERT_RULES_FILE: /sales says a usual Tuesday from 2 weeks; the evening report
    at the same moment reads 8 weeks (DEFAULT_PARAMS) and says another number."""
    evening = dt.datetime(2026, 6, 9, 19, 0, tzinfo=NY)  # Tuesday
    rules = tmp_path / "rules.toml"
    rules.write_text("[rhythm]\nweeks = 2\n")
    async with start_bot(dsn, fake_slack, clock=FakeClock(evening.astimezone(dt.UTC)),
                         STORE_TIMEZONE="America/New_York", ALERT_RULES_FILE=str(rules)) as bot:
        day = evening.date()
        # 6 weeks: older 4 weeks 1 order/hour, last 2 weeks 2 orders/hour, 08:00-22:00
        hist: list[dt.datetime] = []
        for d in range(1, 43):
            per = (10, 40) if d <= 14 else (10,)
            hist += [dt.datetime.combine(day - dt.timedelta(days=d), dt.time(h, m), tzinfo=NY)
                     for h in range(8, 22) for m in per]
        await bot.deps.pool.execute(
            "INSERT INTO orders (id, payment_status, amount_total, currency, created_at, status_at)"
            " SELECT 'pi_h_' || g, 'completed', 2500, 'USD', t, t FROM unnest($1::timestamptz[]) WITH ORDINALITY"
            " AS x(t, g)", hist)
        now = evening.astimezone(dt.UTC)
        snap = await sales_snapshot(bot.deps.pool, period=parse_period("today", now=now, tz=NY), now=now, tz=NY,
                                    currency=CurrencyChoice.of(bot.deps.settings), rhythm=bot.deps.rhythm)
        assert snap.pace is not None
        await post_report(bot)
        [report] = [c for c in bot.slack_api.posted() if "Evening report" in (c.get("text") or "")]
        text = json.dumps(report["blocks"], ensure_ascii=False)
        usual = f"a usual Tuesday is ${snap.pace.usual_revenue / 100:,.2f}"
        assert usual in text, f"/sales: {usual!r}; report: {text[text.find('a usual'):text.find('a usual') + 40]!r}"


def test_two_weeks_black_friday_pages_low_today_on_a_normal_friday() -> None:
    """Two weeks later (day 18 of the store) a perfectly normal Friday (10 orders an hour, 60 by 15:00) is judged
    against Black Friday: sales_low_today warns 'unusually low' and the pace says ▼ ~74%."""
    from bot.blocks.pace import pace_text
    from bot.rhythm.judge import LowTodayParams, low_today
    today = dt.date(2026, 12, 11)  # Friday
    first = dt.date(2026, 11, 23)
    days = {first + dt.timedelta(days=n): 100 for n in range((today - first).days)}
    days[dt.date(2026, 11, 27)] = 400
    rhythm = build(_history(days), today=today, first_day=first, params=RhythmParams(), tz=NY)
    assert rhythm is not None
    now = dt.datetime(2026, 12, 11, 15, 0, tzinfo=NY)
    verdict = low_today(rhythm, LowTodayParams(), orders=60, now=now, tz=NY)
    line = pace_text(project(rhythm, orders=60, revenue=60 * 2500, now=now, tz=NY))
    assert verdict is None, f"normal Friday paged: {verdict.summary!r}; pace: {line!r}"


def test_one_old_order_makes_a_three_day_old_store_have_a_rhythm() -> None:
    """'Two whole weeks of sales' is measured from the first order ever: one live test order 60 days before launch
    and 3 days of real trading (100 a day) give a rhythm (fixed no_sales rule switched off) whose usual day is ~1/8
    of the real one."""
    today = dt.date(2026, 12, 7)
    first = today - dt.timedelta(days=60)
    days = {today - dt.timedelta(days=n): 100 for n in (1, 2, 3)}
    counts = [*_history(days), HourCount(first, 12, "USD", 1, 2500)]
    rhythm = build(counts, today=today, first_day=first, params=RhythmParams(), tz=NY)
    usual = None if rhythm is None else [round(rhythm.usual_day(w).orders) for w in range(7)]
    assert rhythm is None, f"rhythm from 3 days of sales; usual day per weekday: {usual}"


def test_a_week_without_sales_restarts_the_history() -> None:
    """Three weeks of trading, then a closed fortnight, then four days: the rhythm would read the closure as usual
    days of nothing; the store has four days of evidence, so no rhythm."""
    today = dt.date(2026, 12, 7)
    first = today - dt.timedelta(days=39)
    days = {first + dt.timedelta(days=n): 100 for n in range(21)}
    days |= {today - dt.timedelta(days=n): 100 for n in (1, 2, 3, 4)}
    assert build(_history(days), today=today, first_day=first, params=RhythmParams(), tz=NY) is None


def test_three_samples_still_leave_out_an_outlier() -> None:
    """Three Fridays (100, 100, 400): the median is a real one, so Black Friday is left out."""
    today = dt.date(2026, 12, 14)
    first = today - dt.timedelta(days=21)
    days = {first + dt.timedelta(days=n): 100 for n in range(21)}
    days[dt.date(2026, 11, 27)] = 400
    rhythm = build(_history(days), today=today, first_day=first, params=RhythmParams(), tz=NY)
    assert rhythm is not None and round(rhythm.usual_day(4).orders) == 100
