"""The zone moved back across the date line from Slack's Settings: reports keyed by local date skip a whole day.
A record stands for the report of its local date in the zone in force only if the two days began less than half a
day apart (bot/reports/claims.py); past its catch-up window, a report a settings change put there is sent only if it
is today's latest."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg

from bot.blocks import settings as view
from bot.config import Settings
from bot.reports.claims import claim
from bot.reports.reporter import Reporter
from bot.reports.schedule import ReportKind, slot_for
from queries import reports as q
from tests.conftest import FakeClock, make_settings, start_bot
from tests.fakes import FakeSlack
from tests.report_seed import at
from tests.settings_forms import ADMIN, open_settings, put, state_of, submit
from tests.test_report_schedule_fixes import tick  # the report job every 5 minutes

TOKYO = ZoneInfo("Asia/Tokyo")
LA = ZoneInfo("America/Los_Angeles")
BERLIN = ZoneInfo("Europe/Berlin")
LONDON = ZoneInfo("Europe/London")


async def test_changing_the_zone_to_one_behind_does_not_leave_a_day_unreported(dsn: str, fake_slack: FakeSlack) -> None:
    """A store set up in Asia/Tokyo by mistake runs Wednesday 10 and Thursday 11 June's morning; at Thursday 10:00
    JST (Wednesday 18:00 in Los Angeles) the admin sets America/Los_Angeles. LA's Wednesday evening report and
    Thursday morning report are skipped — Tokyo's Wednesday evening and Thursday morning "already sent that day" —
    so the bot is silent for 24 hours after the change (the next report is Thursday's evening), and an order at
    Wednesday 20:00 LA (03:00 UTC Thursday) is in no report's window: Tokyo's Thursday morning covered the night up
    to 00:00 UTC, LA's Thursday evening starts at LA's Thursday midnight, and Friday morning's night at 18:00
    Thursday."""
    clock = FakeClock(at(TOKYO, 2026, 6, 8, 8, 0))
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="Asia/Tokyo", SALESPULSE_ADMINS=ADMIN) as bot:
        before = await tick(bot, clock, at(TOKYO, 2026, 6, 11, 10, 0))
        assert [(k, d) for k, d, *_ in before][-3:] == [("morning", dt.date(2026, 6, 10)),
                                                        ("evening", dt.date(2026, 6, 10)),
                                                        ("morning", dt.date(2026, 6, 11))]
        state = state_of(await open_settings(bot))
        put(state, view.TZ, value="America/Los_Angeles")
        assert await submit(bot, state) == (200, {})
        order_at = at(LA, 2026, 6, 10, 20, 0)
        await bot.deps.pool.execute("INSERT INTO orders (id, payment_status, amount_total, currency, created_at,"
                                    " status_at) VALUES ('pi_night', 'completed', 12345, 'USD', $1, $1)", order_at)
        after = await tick(bot, clock, at(LA, 2026, 6, 12, 10, 0))
        # Within the 24 hours after the change, at least one report goes out (LA's evening, or Thursday's morning).
        first = [(k, d) for k, d, *_ in after][:1]
        assert first and first != [("evening", dt.date(2026, 6, 11))], after
        # Each LA report at its time: Wednesday's evening at once (due at the change), then every one.
        assert [(k, d, status, late) for k, d, status, late in after] == [
            ("evening", dt.date(2026, 6, 10), "sent", False), ("morning", dt.date(2026, 6, 11), "sent", False),
            ("evening", dt.date(2026, 6, 11), "sent", False), ("morning", dt.date(2026, 6, 12), "sent", False)]
        rows = await bot.deps.pool.fetch("SELECT dedupe_key, payload FROM outbox WHERE kind = 'report' ORDER BY id")
        texts = [r["payload"]["text"] for r in rows]
        assert any("123.45" in t for t in texts), (after, texts)
        # Both Wednesday evenings and both Thursday mornings were posted (the LA ones under keys of their own).
        keys = [r["dedupe_key"] for r in rows]
        assert sum(k.startswith("report:evening:2026-06-10") for k in keys) == 2
        assert sum(k.startswith("report:morning:2026-06-11") for k in keys) == 2
        # LA's Thursday morning tells the night from LA's Wednesday evening on: the order at 20:00 is in it.
        [thursday] = [r["payload"]["text"] for r in rows if r["dedupe_key"].startswith("report:morning:2026-06-11@")]
        assert "Thu 11 Jun" in thursday and "123.45" in thursday
        assert await bot.deps.pool.fetchval("SELECT count(*) FROM outbox WHERE kind = 'report_missed'") == 0


async def test_setting_the_zone_the_morning_after_install_does_not_post_yesterdays_evening_report(
        dsn: str, fake_slack: FakeSlack) -> None:
    """Installed on the default UTC zone on Tuesday 9 June at 17:30 Los Angeles time (00:30 UTC Wednesday); the owner
    sets America/Los_Angeles on Wednesday at 10:00. LA's Tuesday 18:00 evening report was due 16 hours ago, while the
    bot ran (its heartbeats), under no record (UTC's Tuesday evening came before the install): the bot posts
    "🌆 Evening report · Tue 9 Jun" now, as a plain on-time report — the stale news the 6-hour catch-up window is there
    to prevent ("yesterday's evening report the next afternoon"), beside Wednesday's reports."""
    clock = FakeClock(at(LA, 2026, 6, 9, 17, 30))
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="UTC", SALESPULSE_ADMINS=ADMIN) as bot:
        before = await tick(bot, clock, at(LA, 2026, 6, 10, 10, 0))
        assert [(k, d) for k, d, *_ in before] == [("morning", dt.date(2026, 6, 10))]  # UTC's, at 02:00 LA
        state = state_of(await open_settings(bot))
        put(state, view.TZ, value="America/Los_Angeles")
        assert await submit(bot, state) == (200, {})
        after = await tick(bot, clock, at(LA, 2026, 6, 10, 10, 30))
        assert ("evening", dt.date(2026, 6, 9)) not in [(k, d) for k, d, *_ in after], after
        # UTC's Wednesday morning (07:00 apart) stands for LA's; Wednesday's evening goes out at its time.
        assert after == []
        evening = await tick(bot, clock, at(LA, 2026, 6, 10, 18, 30))
        assert evening == [("evening", dt.date(2026, 6, 10), "sent", False)]
        assert await bot.deps.pool.fetchval("SELECT count(*) FROM outbox WHERE kind = 'report_missed'") == 0


async def run_every_5_minutes(reporter: Reporter, clock: FakeClock, until: dt.datetime) -> None:
    """The report job's runs (and heartbeats) until `until`."""
    while clock.now < until:
        await reporter.run_due()
        clock.advance(minutes=5)


def reporter(pool: asyncpg.Pool, settings: Settings, clock: FakeClock) -> Reporter:
    return Reporter(pool=pool, settings=settings, slack=None, clock=clock)


async def test_two_replicas_taking_over_another_zones_day_post_one_report(pool: asyncpg.Pool, tmp_path: Path) -> None:
    """After the change to Los Angeles, two replicas run the job at 18:00 LA at once: both find Tokyo's Wednesday
    evening standing for another day, one takes its row over and posts LA's, the other finds it taken."""
    clock = FakeClock(at(TOKYO, 2026, 6, 9, 8, 0))
    data = {"SALESPULSE_DATA_DIR": str(tmp_path)}
    await run_every_5_minutes(reporter(pool, make_settings(STORE_TIMEZONE="Asia/Tokyo", **data), clock),
                              clock, at(TOKYO, 2026, 6, 11, 10, 0, 30))
    la = make_settings(STORE_TIMEZONE="America/Los_Angeles", **data)
    runs = await asyncio.gather(reporter(pool, la, clock).run_due(), reporter(pool, la, clock).run_due())
    assert sorted([(s.slot.kind.value, s.slot.day, s.status) for s in run] for run in runs) == [
        [], [("evening", dt.date(2026, 6, 10), "sent")]]
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE dedupe_key LIKE 'report:evening:2026-06-10%'") == 2
    row = await pool.fetchrow("SELECT scheduled_at, day_start FROM reports WHERE kind = 'evening'"
                              " AND local_date = '2026-06-10'")
    assert (row["scheduled_at"], row["day_start"]) == (at(LA, 2026, 6, 10, 18, 0), at(LA, 2026, 6, 10, 0, 0))


async def test_a_zone_an_hour_away_keeps_the_days_reports(pool: asyncpg.Pool, tmp_path: Path) -> None:
    """Berlin's Wednesday is London's: moved from Europe/Berlin to Europe/London at 19:00 Berlin (18:00 London, the
    evening report's time there) after Berlin's evening report, the day's reports are not sent again; Thursday's
    come at London's times."""
    clock = FakeClock(at(BERLIN, 2026, 6, 10, 8, 0))
    data = {"SALESPULSE_DATA_DIR": str(tmp_path)}
    await run_every_5_minutes(reporter(pool, make_settings(STORE_TIMEZONE="Europe/Berlin", **data), clock),
                              clock, at(BERLIN, 2026, 6, 10, 19, 0))
    london = reporter(pool, make_settings(STORE_TIMEZONE="Europe/London", **data), clock)
    assert await london.run_due() == []
    done = []
    while clock.now < at(LONDON, 2026, 6, 11, 18, 30):
        done += [(s.slot.kind.value, s.slot.day, s.status, s.slot.scheduled_at) for s in await london.run_due()]
        clock.advance(minutes=5)
    assert done == [("morning", dt.date(2026, 6, 11), "sent", at(LONDON, 2026, 6, 11, 9, 0)),
                    ("evening", dt.date(2026, 6, 11), "sent", at(LONDON, 2026, 6, 11, 18, 0))]


async def test_a_record_from_before_the_day_start_column_stands_for_a_report_due_within_half_a_day(
        pool: asyncpg.Pool) -> None:
    """A row recorded before migration 0048 (no day_start, its zone not known) stands for the report of its local
    date in the zone in force if it was due less than half a day from that report's time; otherwise it is taken
    over, once."""
    settings = make_settings(STORE_TIMEZONE="America/Los_Angeles")
    slot = slot_for(ReportKind.MORNING, dt.date(2026, 6, 11), settings)
    half_day = dt.timedelta(hours=12)
    for due, taken in ((slot.scheduled_at - half_day + dt.timedelta(minutes=1), False),
                       (slot.scheduled_at + half_day - dt.timedelta(minutes=1), False),
                       (slot.scheduled_at - half_day, True), (slot.scheduled_at + half_day, True)):
        await pool.execute("DELETE FROM reports")
        assert await q.record(pool, kind="morning", local_date=slot.day, status="sent", scheduled_at=due,
                              recorded_at=due, late=False, source="scheduler", chart_status="none", chart_png=None)
        async with pool.acquire() as conn:
            got = await claim(conn, slot, tz=LA, status="sent", at=slot.scheduled_at, late=False, source="scheduler")
            again = await claim(conn, slot, tz=LA, status="sent", at=slot.scheduled_at, late=False, source="scheduler")
        assert (got is not None, again) == (taken, None)


async def test_rows_from_before_0048_still_skip_a_day_after_a_zone_change(pool: asyncpg.Pool, tmp_path: Path) -> None:
    """The store ran in Asia/Tokyo before the upgrade (its reports rows have no day_start); after upgrading, the
    admin fixes the zone to America/Los_Angeles (Thursday 10:00 JST = Wednesday 18:00 LA). Tokyo's Wednesday
    evening (09:00 UTC Wed, 02:00 LA Wed) was read as "due on LA's Wednesday", so LA's Wednesday evening and
    Thursday morning were skipped; such a row now stands only for a report due less than half a day from it."""
    clock = FakeClock(at(TOKYO, 2026, 6, 9, 8, 0))
    data = {"SALESPULSE_DATA_DIR": str(tmp_path)}
    await run_every_5_minutes(reporter(pool, make_settings(STORE_TIMEZONE="Asia/Tokyo", **data), clock),
                              clock, at(TOKYO, 2026, 6, 11, 10, 0, 30))
    await pool.execute("UPDATE reports SET day_start = NULL")  # recorded before migration 0048
    la = reporter(pool, make_settings(STORE_TIMEZONE="America/Los_Angeles", **data), clock)
    done = []
    while clock.now < at(LA, 2026, 6, 11, 12, 0):
        done += [(s.slot.kind.value, s.slot.day, s.status) for s in await la.run_due()]
        clock.advance(minutes=5)
    assert done == [("evening", dt.date(2026, 6, 10), "sent"), ("morning", dt.date(2026, 6, 11), "sent")], done
