"""Daily reports, exactly once per local day: gather the figures in one snapshot, render, then record the
report and queue its message in one transaction; once the message is out, upload its chart to the thread."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import asyncpg
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks.reports import day_label, missed_message, report_message
from bot.clock import Clock
from bot.config import Settings
from bot.delivery.channels import ChannelDirectory
from bot.delivery.files import UploadResult, share_once, upload_content
from bot.delivery.senders import Status
from bot.deps import Deps
from bot.reports import planner
from bot.reports.chart import render_chart
from bot.reports.claims import claim, missed_key, period, preview_prefix, recorded_row, stands_for
from bot.reports.figures import Figures, gather
from bot.reports.planner import Plan
from bot.reports.schedule import LateCause, Slot, recent_slots
from bot.rhythm.load import RhythmSource
from queries import outbox, report_beats, report_periods
from queries import report_charts as charts
from queries import reports as q

log = logging.getLogger(__name__)

# A chart that keeps failing for transient reasons (Slack 5xx, network) is given up after this many tries.
MAX_CHART_ATTEMPTS: Final = 5
# The report job's heartbeats are read back to yesterday's first report at most (two days); kept a day longer.
HEARTBEATS_KEPT: Final = dt.timedelta(days=3)


@dataclass(frozen=True, slots=True)
class Sent:
    """A report (or a missed-report notice) recorded and queued by this call."""

    slot: Slot
    status: str  # sent | missed | preview
    outbox_id: int | None
    late: bool


@dataclass(frozen=True, slots=True)
class Staged:
    """A chart's file in Slack and where it goes; `fresh`: this run uploaded it, so nobody can have shared it yet."""

    file_id: str
    channel_id: str
    thread_ts: str
    attempts: int
    fresh: bool


@dataclass(frozen=True, slots=True)
class Reporter:
    """What the reports need: the pool, the settings, the Slack client (None: no upload) and the clock."""

    pool: asyncpg.Pool
    settings: Settings
    slack: AsyncWebClient | None
    clock: Clock
    channels: ChannelDirectory | None = None  # joins the reports channel when Slack says not_in_channel
    rhythm: RhythmSource | None = None  # the service's rhythm and [rhythm] params; None: the rules file's

    @classmethod
    def from_deps(cls, deps: Deps) -> Reporter:
        """The running service's reporter."""
        return cls(pool=deps.pool, settings=deps.settings, slack=deps.slack, clock=deps.clock, channels=deps.channels,
                   rhythm=deps.rhythm)

    def chart_path(self, slot: Slot) -> Path:
        """Where the chart is saved when it cannot go to Slack (local mode, incoming webhooks)."""
        return self.settings.salespulse_data_dir / "reports" / f"{slot.kind.value}-{slot.day.isoformat()}.png"

    async def figures(self, slot: Slot, *, now: dt.datetime) -> Figures:
        """The report's figures, read in one read-only snapshot (so they add up with each other)."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            return await gather(conn, slot, settings=self.settings, now=now, rhythm=self.rhythm)

    async def already_recorded(self, slots: list[Slot]) -> set[tuple[str, dt.date]]:
        """(kind, day) of the given slots that were sent or noticed as missed already (in the zone in force)."""
        rows = {(r.kind, r.local_date): r for r in await q.recorded(self.pool, days=sorted({s.day for s in slots}))}
        return {(s.kind.value, s.day) for s in slots
                if (row := rows.get((s.kind.value, s.day))) is not None and stands_for(row, s, self.settings.tz)}

    async def send(self, slot: Slot, *, source: str, late: bool = False,
                   cause: LateCause = LateCause.DOWN) -> Sent | None:
        """Render and record the report of `slot` with its message, once; None when it was sent already."""
        now = self.clock()
        if source == "cli":  # on demand after its time: it says so, and that it was made by hand
            late, cause = late or slot.is_late(now), LateCause.ON_DEMAND
        figures = await self.figures(slot, now=now)
        png = await asyncio.to_thread(render_chart, figures.chart)
        to_file = self.slack is None
        path = self.chart_path(slot)
        msg = report_message(figures, tz=self.settings.tz, late=late, cause=cause,
                             chart_note=f"Chart saved to {path}" if to_file else None)
        async with self.pool.acquire() as conn, conn.transaction():
            await report_periods.lock_period(conn, period=period(slot))
            suffix = await claim(conn, slot, tz=self.settings.tz, status="sent", at=now, late=late, source=source,
                                 chart_status="saved" if to_file else "pending", chart_png=None if to_file else png)
            if suffix is None:
                return None
            # Figures so far, or a "was not sent" notice (this report sent on demand after all), still waiting for
            # Slack would be posted after the report: they never are.
            await report_periods.supersede(conn, prefixes=[preview_prefix(slot), missed_key(slot)])
            outbox_id = await outbox.enqueue(conn, dedupe_key=period(slot) + suffix,
                                             channel="reports", kind="report", payload=msg.as_payload())
            await q.set_outbox(conn, kind=slot.kind.value, local_date=slot.day, outbox_id=outbox_id)
        if to_file:
            await self._save(slot, path, png)
        log.info("%s report for %s queued%s", slot.kind.value, slot.day, " (late)" if late else "")
        return Sent(slot, "sent", outbox_id, late)

    async def preview(self, slot: Slot) -> Sent | None:
        """The report as it stands, asked for before its time (`salespulse report`): posted as "figures so far"
        without being recorded, so the report itself still goes out at its time, once. No chart. None when the
        report of `slot` is recorded already (sent, or noted as missed): figures so far would come after it."""
        now = self.clock()
        msg = report_message(await self.figures(slot, now=now), tz=self.settings.tz)
        async with self.pool.acquire() as conn, conn.transaction():
            await report_periods.lock_period(conn, period=period(slot))
            if (row := await recorded_row(conn, slot)) is not None and stands_for(row, slot, self.settings.tz):
                return None
            outbox_id = await outbox.enqueue(conn, dedupe_key=f"{preview_prefix(slot)}{now.isoformat()}",
                                             channel="reports", kind="report_preview", payload=msg.as_payload())
            if outbox_id is not None:  # older figures so far of the period, still waiting, would follow these
                await report_periods.supersede(conn, prefixes=[preview_prefix(slot)], keep=outbox_id)
        log.info("%s report for %s posted early, as a preview", slot.kind.value, slot.day)
        return Sent(slot, "preview", outbox_id, False)

    async def _save(self, slot: Slot, path: Path, png: bytes) -> None:
        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png)

        try:
            await asyncio.to_thread(write)
        except OSError as exc:
            log.warning("could not save the %s report's chart to %s: %s", slot.kind.value, path, exc)
            await q.settle_chart(self.pool, kind=slot.kind.value, local_date=slot.day, status="failed",
                                 error=f"{type(exc).__name__}: {exc}")

    async def note_missed(self, slot: Slot) -> Sent | None:
        """Say in the reports channel that a report's time passed while the bot was down (once)."""
        msg = missed_message(slot, tz=self.settings.tz)
        async with self.pool.acquire() as conn, conn.transaction():
            await report_periods.lock_period(conn, period=period(slot))
            # No report ever due before this one: a fresh install, nothing was missed.
            if not await q.any_before(conn, at=slot.scheduled_at):
                return None
            suffix = await claim(conn, slot, tz=self.settings.tz, status="missed", at=self.clock(), late=True,
                                 source="scheduler")
            if suffix is None:
                return None
            await report_periods.supersede(conn, prefixes=[preview_prefix(slot)])  # they would follow the notice
            outbox_id = await outbox.enqueue(conn, dedupe_key=missed_key(slot) + suffix,
                                             channel="reports", kind="report_missed", payload=msg.as_payload())
            await q.set_outbox(conn, kind=slot.kind.value, local_date=slot.day, outbox_id=outbox_id)
        log.warning("%s report for %s was missed (the bot was down)", slot.kind.value, slot.day)
        return Sent(slot, "missed", outbox_id, True)

    async def plan(self, now: dt.datetime) -> list[Plan]:
        """What to do at `now` about each report of yesterday and today that is due and not recorded yet."""
        slots = recent_slots(now, self.settings)
        done = await self.already_recorded(slots) if slots else set()
        return await planner.plan(self.pool, self.settings, now, slots=slots, done=done)

    async def carry_out(self, plan: Plan) -> Sent | None:
        """Send the planned report, or note it as missed; None when another run recorded it first."""
        if plan.missed:
            return await self.note_missed(plan.slot)
        return await self.send(plan.slot, source="scheduler", late=plan.late, cause=plan.cause)

    async def run_due(self) -> list[Sent]:
        """Send every report due now and not sent yet (late after downtime); note the ones missed while down.
        The heartbeat is written after the plan is read, so this run never counts as running at a report's time."""
        now = self.clock()
        plans = await self.plan(now)
        await report_beats.beat(self.pool, at=now, keep=HEARTBEATS_KEPT)
        results = [await self.carry_out(p) for p in plans]
        return [r for r in results if r is not None]

    async def upload_charts(self) -> int:
        """Upload every pending chart whose message is out, into that message's thread; returns how many."""
        if self.slack is None:
            return 0
        uploaded = 0
        channels = self.channels or ChannelDirectory(self.slack, {"reports": self.settings.slack_reports_channel})
        for ready in await q.charts_ready(self.pool):
            staged = await self._stage(ready, self.slack)
            uploaded += 0 if staged is None else await self._share(ready, self.slack, channels, staged)
        return uploaded

    async def _stage(self, ready: q.ChartReady, slack: AsyncWebClient) -> Staged | None:
        """Steps 1 and 2 under the chart's row lock, the file id committed before it is shared (a share whose answer
        is lost is then looked up by that id, not made again with a new copy); None: nothing to share now."""
        kind, day = ready.kind, ready.local_date
        async with self.pool.acquire() as conn, conn.transaction():
            claimed = await charts.claim(conn, kind=kind, local_date=day)
            if claimed is None:  # another replica is uploading it, or it is done
                return None
            if ready.message_status != "delivered" or not ready.slack_ts or not ready.slack_channel \
                    or claimed.chart_png is None:
                await q.settle_chart(conn, kind=kind, local_date=day, status="skipped",
                                     error="the report's message was not posted")
                return None
            if claimed.file_id is not None:  # uploaded by an earlier run, and perhaps shared since
                return Staged(claimed.file_id, ready.slack_channel, ready.slack_ts, claimed.chart_attempts, fresh=False)
            # The row lock is held across the upload: no other replica can upload this chart meanwhile.
            result = await upload_content(
                slack, content=claimed.chart_png, filename=f"salespulse-{kind}-{day}.png",
                alt_text=f"Bar chart of revenue by hour for the {kind} report of {day_label(day)}")
            if result.status is not Status.OK or result.file_id is None:
                await _not_uploaded(conn, ready, result, claimed.chart_attempts)
                return None
            await charts.set_file(conn, kind=kind, local_date=day, file_id=result.file_id)
            return Staged(result.file_id, ready.slack_channel, ready.slack_ts, claimed.chart_attempts, fresh=True)

    async def _share(self, ready: q.ChartReady, slack: AsyncWebClient, channels: ChannelDirectory,
                     staged: Staged) -> int:
        """Step 3, unless Slack says the file is shared already (an earlier share whose answer was lost)."""
        kind, day, file_id = ready.kind, ready.local_date, staged.file_id
        async with self.pool.acquire() as conn, conn.transaction():
            claimed = await charts.claim(conn, kind=kind, local_date=day)
            if claimed is None or claimed.file_id != file_id:  # another replica took it on meanwhile
                return 0
            result = await share_once(  # Slack asked first, unless this run uploaded it and nobody tried since
                slack, file_id=file_id, title=f"Revenue by hour · {kind} report {day_label(day)}",
                channel_id=staged.channel_id, thread_ts=staged.thread_ts, directory=channels,
                ask=not staged.fresh or claimed.chart_attempts != staged.attempts)
            if result.status is Status.OK:
                await q.settle_chart(conn, kind=kind, local_date=day, status="uploaded", file_id=file_id)
                return 1
            await _not_uploaded(conn, ready, result, claimed.chart_attempts)
            return 0

    async def wait_delivered(self, sent: list[Sent], *, within: float, poll: float = 0.5) -> bool:
        """Wait until the delivery worker has settled these messages (posted or failed for good)."""
        ids = [s.outbox_id for s in sent if s.outbox_id is not None]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while ids:
            if not await q.pending_messages(self.pool, ids=ids):
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(poll)
        return True


async def _not_uploaded(conn: asyncpg.Connection, ready: q.ChartReady, result: UploadResult, attempts: int) -> None:
    """Record a failed try: pending again (keeping the file in Slack, if any), else skipped or failed for good;
    without files:write (missing_scope) or with a token that may not upload, the report stays without its chart."""
    given_up = result.status is Status.PERMANENT or attempts + 1 >= MAX_CHART_ATTEMPTS
    status = "skipped" if result.status is Status.PERMANENT else "failed" if given_up else "pending"
    log.warning("chart of the %s report for %s not uploaded (%s): %s", ready.kind, ready.local_date, status,
                result.error)
    await q.settle_chart(conn, kind=ready.kind, local_date=ready.local_date, status=status, error=result.error,
                         file_id=result.file_id)
