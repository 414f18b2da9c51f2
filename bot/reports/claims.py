"""What a report's record claims: the names of its period (its lock and dedupe keys), and which day it stands for.

A record is keyed by kind and local date, but a local date is a different stretch of time in another zone: after
the store's zone changes from Asia/Tokyo to America/Los_Angeles, Tokyo's Wednesday ended before Los Angeles' began.
A record stands for a report of the zone in force only if their two days began less than half a day apart (Berlin's
Wednesday is Paris' or London's, Tokyo's is not Los Angeles'); otherwise that report is due, and takes the row over.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Final
from zoneinfo import ZoneInfo

from bot.config import Settings
from bot.periods import local_midnight
from bot.reports.schedule import ReportKind, Slot, slot_for
from queries import report_schedule_changes as changes
from queries import reports as q
from queries.executor import Executor

log = logging.getLogger(__name__)

# Two local days that began less than this apart are one day for the reports (more than half of it in common).
SAME_DAY_WITHIN: Final = dt.timedelta(hours=12)
# Stale reports already logged as dropped, so a run every 5 minutes says it once (per process); kept small.
_DROPPED: set[tuple[str, dt.date, dt.datetime]] = set()
_DROPPED_KEPT: Final = 64
# The settings that move the reports' times (as audited, by environment variable name).
SCHEDULE_KEYS: Final = ("STORE_TIMEZONE", "MORNING_REPORT_AT", "EVENING_REPORT_AT")


def period(slot: Slot) -> str:
    """The report's name, "report:evening:2026-06-09": its message's dedupe key, and its period's lock."""
    return f"report:{slot.kind.value}:{slot.day.isoformat()}"


def preview_prefix(slot: Slot) -> str:
    """How the dedupe keys of the report's early versions (figures so far) begin; the instant made follows."""
    return f"report-preview:{slot.kind.value}:{slot.day.isoformat()}:"


def missed_key(slot: Slot) -> str:
    """The dedupe key of the notice that the report was not sent at its time."""
    return f"report-missed:{slot.kind.value}:{slot.day.isoformat()}"


def stands_for(row: q.RecordedReport, slot: Slot, tz: ZoneInfo) -> bool:
    """Whether `row`, recorded for the kind and local date of `slot`, is that report under the zone `tz` in force:
    its day began less than SAME_DAY_WITHIN from this one (a row from before migration 0048, whose day and zone are
    not known: it was due less than SAME_DAY_WITHIN from this report's time; Tokyo's Wednesday evening, 02:00 in
    Los Angeles, is not LA's Wednesday evening although due on LA's Wednesday)."""
    if row.day_start is None:
        return abs(row.scheduled_at - slot.scheduled_at) < SAME_DAY_WITHIN
    return abs(row.day_start - local_midnight(slot.day, tz)) < SAME_DAY_WITHIN


async def recorded_row(db: Executor, slot: Slot) -> q.RecordedReport | None:
    """The row recorded for the kind and local date of `slot`, whichever day it stands for."""
    return next((r for r in await q.recorded(db, days=[slot.day]) if r.kind == slot.kind.value), None)


async def claim(conn: Executor, slot: Slot, *, tz: ZoneInfo, status: str, at: dt.datetime, late: bool,
                source: str, chart_status: str = "none", chart_png: bytes | None = None) -> str | None:
    """Record the report of `slot` (the caller holds its period's lock): None when it stands recorded already;
    otherwise what its dedupe keys end with: nothing, or, taking over another zone's day (whose message holds the
    plain keys), "@" and the time recorded."""
    row = await recorded_row(conn, slot)
    if not await q.record(conn, kind=slot.kind.value, local_date=slot.day, status=status,
                          scheduled_at=slot.scheduled_at, recorded_at=at, late=late, source=source,
                          chart_status=chart_status, chart_png=chart_png, day_start=local_midnight(slot.day, tz),
                          same_day_within=SAME_DAY_WITHIN):
        return None
    if row is None or stands_for(row, slot, tz):
        return ""
    log.info("the %s report for %s takes over the record of another zone's %s (due %s)", slot.kind.value,
             slot.day, row.local_date, row.scheduled_at.isoformat())
    return f"@{at.isoformat()}"


async def schedule_changed_since(db: Executor, slot: Slot, settings: Settings) -> bool:
    """Whether the reports' times are known to have changed since `slot` was due: from Slack's Settings (their
    audit), or in the environment (a restart), seen as a report recorded since then, or the one recorded for the
    slot's kind and date, due at another time than `settings` give it. Not known: a report not recorded although the
    job ran at its time was cut off (the host went down after the run's heartbeat)."""
    if await changes.changed_from_slack(db, since=slot.scheduled_at, keys=SCHEDULE_KEYS):
        return True
    rows = await changes.recorded_since(db, at=slot.scheduled_at)
    if (own := await recorded_row(db, slot)) is not None:
        rows.append(own)
    return any(slot_for(ReportKind(r.kind), r.local_date, settings).scheduled_at != r.scheduled_at for r in rows)


def log_dropped(slot: Slot) -> None:
    """Say (once) that a report put in the past by a settings change is not sent: it would be stale news."""
    key = (slot.kind.value, slot.day, slot.scheduled_at)
    if key in _DROPPED:
        return
    if len(_DROPPED) >= _DROPPED_KEPT:
        _DROPPED.clear()
    _DROPPED.add(key)
    log.info("the %s report for %s (due %s under the Settings now in force) is not sent: past its catch-up window,"
             " it would be stale news", slot.kind.value, slot.day, slot.scheduled_at.isoformat())
