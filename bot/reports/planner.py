"""What the report job does at a run about each report of yesterday and today that is due and not recorded yet:
send it (late, and why, or not), note it missed, or drop it; read from the report job's heartbeats."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg

from bot.config import Settings
from bot.reports import claims
from bot.reports.claims import log_dropped
from bot.reports.schedule import LATE_AFTER, LateCause, Slot
from queries import report_beats


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run does about a report not recorded yet: send it (saying it is late, or not), or note it missed."""

    slot: Slot
    missed: bool
    late: bool
    cause: LateCause = LateCause.DOWN  # why it is late, when it is


async def plan(pool: asyncpg.Pool, settings: Settings, now: dt.datetime, *, slots: list[Slot],
               done: set[tuple[str, dt.date]]) -> list[Plan]:
    """What to do at `now` about each of `slots` (due, oldest first) not in `done` (recorded already).

    The heartbeats say whether the bot was running: a report is late ("when salespulse was not running") only
    if the job did not run at its time, and missed only if it did not run at all before its deadline; one due
    before salespulse ever ran (a new install) is late, but not for that reason. A report that was not recorded
    although the job ran then was put there by a settings change (a time moved earlier, another zone), or that run
    was cut off: it goes out now, once, as a plain report — past its deadline only if it is today's latest (local);
    yesterday's, or a morning the evening has followed, would be stale news and is dropped if a settings change is
    known since its time, else noted as missed."""
    today = now.astimezone(settings.tz).date()
    plans = []
    for slot in (s for s in slots if (s.kind.value, s.day) not in done):
        if now < slot.deadline:
            at_its_time = min(now, slot.scheduled_at + LATE_AFTER)
            late = slot.is_late(now) and not await _ran(pool, slot.scheduled_at, at_its_time)
            cause = await _cause(pool, slot) if late else LateCause.DOWN
            plans.append(Plan(slot, missed=False, late=late, cause=cause))
        elif not await _ran(pool, slot.scheduled_at, slot.deadline):
            plans.append(Plan(slot, missed=True, late=False))
        elif (slot.day != today or slot != slots[-1]) and \
                await _ran(pool, slot.scheduled_at, slot.scheduled_at + LATE_AFTER):
            if not await claims.schedule_changed_since(pool, slot, settings):
                plans.append(Plan(slot, missed=True, late=False))  # the run at its time was cut off
            else:
                log_dropped(slot)  # a settings change put it there, long past
        else:  # today's latest, or the bot came back (and so planned it) before its deadline
            plans.append(Plan(slot, missed=False, late=False))
    return plans


async def _ran(pool: asyncpg.Pool, start: dt.datetime, end: dt.datetime) -> bool:
    return await report_beats.ran_between(pool, start=start, end=end)


async def _cause(pool: asyncpg.Pool, slot: Slot) -> LateCause:
    """Why a report the job did not run for at its time is late: downtime, or salespulse had never run before it
    (the first start of a new install; the run planning it writes its heartbeat after, so it does not count)."""
    return LateCause.DOWN if await report_beats.ran_before(pool, at=slot.scheduled_at) else LateCause.FIRST_START
