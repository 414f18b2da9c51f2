"""When the daily reports happen: one morning and one evening per store-local day, DST days included,
caught up for a few hours after downtime, and an APScheduler trigger that fires at those instants."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.base import BaseTrigger

from bot.config import Settings

# A report due while the bot was down is still sent this long after its time (marked late); after that
# it would be stale news (yesterday's evening report the next afternoon), so it is noted as missed instead
# (only when the bot was down all that time: bot.reports.reporter asks the report job's heartbeats).
CATCH_UP_WINDOW: Final = dt.timedelta(hours=6)
# Sent more than this after its time, a report says it is late.
LATE_AFTER: Final = dt.timedelta(minutes=10)


class ReportKind(StrEnum):
    """The two daily reports."""

    MORNING = "morning"
    EVENING = "evening"


class LateCause(StrEnum):
    """Why a report goes out after its time, as its "⏰ Sent late" line says."""

    DOWN = "down"  # the report job did not run at its time, although salespulse had run before it
    FIRST_START = "first start"  # salespulse first ran after its time: a new install was not "not running"
    ON_DEMAND = "on demand"  # made by hand (`salespulse report`), whatever happened at its time


@dataclass(frozen=True, slots=True)
class Slot:
    """One report of one store-local day and the instant it is due."""

    kind: ReportKind
    day: dt.date
    scheduled_at: dt.datetime  # UTC

    @property
    def deadline(self) -> dt.datetime:
        """Until when it is still news: after that, a report not sent because the bot was down is missed."""
        return self.scheduled_at + CATCH_UP_WINDOW

    def is_late(self, now: dt.datetime) -> bool:
        """Whether sending it at `now` is noticeably after its time."""
        return now - self.scheduled_at > LATE_AFTER


def local_instant(day: dt.date, at: dt.time, tz: ZoneInfo) -> dt.datetime:
    """The instant local wall-clock time `at` happens on `day`, in UTC: exactly one per day.

    On a spring-forward day a time inside the gap (02:30 in New York) does not exist; fold=0 reads it
    with the offset before the change, i.e. 03:30 in the new offset. On a fall-back day a repeated time
    (01:30) is taken at its first occurrence (PEP 495's fold=0). Either way: one instant, never none or two.
    """
    return dt.datetime.combine(day, at.replace(tzinfo=None, fold=0), tzinfo=tz).astimezone(dt.UTC)


CATCH_UP_JOB_ID: Final = "report-catch-up"  # the job that sends what is due, every few minutes (handlers/scheduled)
_RUNS_NOW = itertools.count(1)  # one-off catch-up runs each have their own id, so none is skipped for another


def job_id(kind: ReportKind) -> str:
    """The scheduler's id of a report's daily job."""
    return f"report-{kind.value}"


def reschedule(scheduler: BaseScheduler, settings: Settings) -> None:
    """Move the daily report jobs to the report times and zone in force (changed from Slack's Settings view), and
    run the catch-up job's work now: a report moved to a time already past today is due at once, not at the daily
    job's next run (tomorrow) nor at the catch-up's next tick. Every replica does so as it reloads the settings; the
    reports' claims send it once."""
    for kind in ReportKind:
        if scheduler.get_job(job_id(kind)) is not None:
            scheduler.reschedule_job(job_id(kind), trigger=DailyAt(report_time(kind, settings), settings.tz))
    catch_up = scheduler.get_job(CATCH_UP_JOB_ID)
    if catch_up is not None:
        # A one-off run of its own rather than the catch-up's next run brought forward: a catch-up run under way
        # (it waits up to a minute for its report's delivery) would have the scheduler skip that (max_instances 1).
        scheduler.add_job(catch_up.func, args=catch_up.args, kwargs=catch_up.kwargs,
                          id=f"{CATCH_UP_JOB_ID}-now-{next(_RUNS_NOW)}", name="report catch-up (settings changed)")


def report_time(kind: ReportKind, settings: Settings) -> dt.time:
    """The configured local time of a report."""
    return settings.morning_report_at if kind is ReportKind.MORNING else settings.evening_report_at


def slot_for(kind: ReportKind, day: dt.date, settings: Settings) -> Slot:
    """The report `kind` of local day `day`."""
    return Slot(kind, day, local_instant(day, report_time(kind, settings), settings.tz))


def recent_slots(now: dt.datetime, settings: Settings) -> list[Slot]:
    """Every report of yesterday and today (local) already due at `now`, oldest first."""
    today = now.astimezone(settings.tz).date()
    slots = [slot_for(kind, day, settings) for day in (today - dt.timedelta(days=1), today)
             for kind in ReportKind]
    return sorted((s for s in slots if s.scheduled_at <= now), key=lambda s: s.scheduled_at)


def due_slots(now: dt.datetime, settings: Settings) -> list[Slot]:
    """The reports of yesterday and today whose catch-up window is still open at `now`."""
    return [s for s in recent_slots(now, settings) if now < s.deadline]


class DailyAt(BaseTrigger):
    """Fires once per local day at a wall-clock time, via `local_instant` (so DST days fire exactly once).

    APScheduler 3.x's CronTrigger documents that a time inside the spring-forward gap is skipped that day,
    and has had DST bugs besides (agronholm/apscheduler#606, a skipped day; #1021, a loop on 3.11); a
    report must run once every day, so this trigger's arithmetic is ours, and tested.
    """

    __slots__ = ("at", "tz")

    def __init__(self, at: dt.time, tz: ZoneInfo) -> None:
        self.at = at
        self.tz = tz

    def get_next_fire_time(self, previous_fire_time: dt.datetime | None,
                           now: dt.datetime) -> dt.datetime | None:
        """The first daily instant after the previous fire time (or at/after `now` for the first one)."""
        start = previous_fire_time or now
        day = start.astimezone(self.tz).date() - dt.timedelta(days=1)
        while True:
            at = local_instant(day, self.at, self.tz)
            if (previous_fire_time is not None and at > previous_fire_time) or \
                    (previous_fire_time is None and at >= now):
                return at.astimezone(self.tz)
            day += dt.timedelta(days=1)

    def __str__(self) -> str:
        return f"daily at {self.at:%H:%M} {self.tz.key}"

    def __repr__(self) -> str:
        return f"<DailyAt {self.at:%H:%M} {self.tz.key}>"
