"""`salespulse report morning|evening [--date D] [--dry-run]`: any day's report on demand, server running
or not. A dry run prints it and writes nothing; otherwise a report already due is recorded and posted like the
scheduler's, once (saying it is late when past its time), and one asked for before its time is posted as "figures
so far" without being recorded, so the scheduled one still goes out. A report recorded already (sent, or noted as
missed) is made until the time it was due then, whatever the Settings say now."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from typing import Final, TextIO

import asyncpg

from bot.blocks.reports import day_label, report_message
from bot.clock import Clock, utcnow
from bot.config import Settings
from bot.db import create_pool, database_url, migrate_database
from bot.delivery.senders import render_text
from bot.delivery.worker import DeliveryWorker
from bot.reports.claims import recorded_row, stands_for
from bot.reports.reporter import Reporter, Sent
from bot.reports.schedule import ReportKind, Slot, slot_for
from bot.settings.live import stored_over
from queries import reports as q
from queries.demo import DEMO_DATABASE

# A running server's delivery worker may take the message first; both sides post it at most once.
DELIVERY_WITHIN: Final = 15.0
# A report reaches back a week, the rhythm rules up to 52 weeks, in local time: a day nearer than this to the
# ends of datetime's calendar (years 1 and 9999) would overflow computing them.
CALENDAR_MARGIN: Final = dt.timedelta(days=2 * 366)


def parse_day(text: str | None, *, now: dt.datetime, settings: Settings) -> dt.date:
    """--date as a local day (default: today in the store's time zone); ValueError if not one a report can cover."""
    day = dt.date.fromisoformat(text) if text else now.astimezone(settings.tz).date()
    if not dt.date.min + CALENDAR_MARGIN <= day <= dt.date.max - CALENDAR_MARGIN:
        raise ValueError(f"{day} is too near the ends of the calendar")
    return day


async def report_command(settings: Settings, *, which: str, date: str | None, dry_run: bool,
                         clock: Clock = utcnow, out: TextIO | None = None) -> int:
    """Render (dry run) or record and post one report; the exit status."""
    from bot.app import make_sender, slack_client  # the wiring module, imported only for this command

    out = out or sys.stdout
    try:
        parse_day(date, now=clock(), settings=settings)
    except ValueError:
        print(f"salespulse report: --date must be YYYY-MM-DD, got {date!r}", file=sys.stderr)
        return 2
    configured = settings.database_url.get_secret_value() if settings.database_url else None
    async with database_url(configured, settings.salespulse_data_dir) as server:
        if (store := await _store(settings, server)) is None:
            return 1
        dsn, settings, pool = store
        try:
            settings = await stored_over(pool, settings)  # the zone, times and channel changed from Slack
            kind, day = ReportKind(which), parse_day(date, now=clock(), settings=settings)
            client = slack_client(settings)
            reporter = Reporter(pool=pool, settings=settings, slack=client, clock=clock)
            if dry_run:
                return await _dry_run(reporter, kind, day, out)
            await migrate_database(dsn)
            slot = await recorded_slot(reporter, kind, day)
            worker = DeliveryWorker(pool=pool, sender=make_sender(settings, client), tz=settings.tz, clock=clock)
            if slot.scheduled_at > clock():
                return await _post_preview(reporter, slot, worker, out)
            return await _post(reporter, slot, worker, out)
        finally:
            await pool.close()


async def _store(settings: Settings, server: str) -> tuple[str, Settings, asyncpg.Pool] | None:
    """The database to report on, the settings to read it with, and a pool on it. With nothing configured,
    `salespulse run` (`make run`) is the demo, so this is too: the demo's database, read with the demo's settings.
    None (said why) when there is no demo to report on yet."""
    from bot.demo.runner import demo_settings, nothing_configured, with_database

    if not nothing_configured(settings):
        return server, settings, await create_pool(server, min_size=1, max_size=4)
    dsn = with_database(server, DEMO_DATABASE)
    try:
        pool = await create_pool(dsn, min_size=1, max_size=4)
    except asyncpg.InvalidCatalogNameError:
        print(f"salespulse report: nothing is configured, so there is only the demo's store to report on, and the"
              f" demo has not run here (no database {DEMO_DATABASE} in {settings.salespulse_data_dir}): `make run`"
              " starts it. Set DATABASE_URL to report on your own store.", file=sys.stderr)
        return None
    print(f"salespulse report: nothing is configured, so, as with `make run`, this is the demo store (database"
          f" {DEMO_DATABASE}); once your own store is configured (DATABASE_URL, or STRIPE_WEBHOOK_SECRET with the"
          " embedded database), `report` reads its database.", file=sys.stderr)
    return dsn, demo_settings(settings, dsn=dsn), pool


async def _post_preview(reporter: Reporter, slot: Slot, worker: DeliveryWorker, out: TextIO) -> int:
    """Post the figures so far of a report not due yet; the report itself is left to its time."""
    due = slot.scheduled_at.astimezone(reporter.settings.tz)
    what = f"the {slot.kind.value} report for {day_label(slot.day)}"
    sent = await reporter.preview(slot)
    if sent is None:  # recorded already (its time moved later since, in Settings): figures so far would follow it
        return await _already_recorded(reporter, slot, out)
    if not await _deliver(reporter, sent, worker):
        print(f"Queued {what}'s figures so far; the running server will post them. The report itself still goes"
              f" out at {due:%H:%M %Z}.", file=out)
        return 0
    if await q.message_status(reporter.pool, outbox_id=sent.outbox_id) == "superseded":
        print(f"The figures so far of {what} were not posted: newer ones, or the report itself, were queued"
              " meanwhile.", file=out)
        return 0
    if await _refused(reporter, sent, f"The figures so far of {what}", out):
        return 1
    print(f"Posted {what} early, with the figures so far (no chart); the report itself still goes out at"
          f" {due:%H:%M %Z}.", file=out)
    return 0


async def _deliver(reporter: Reporter, sent: Sent, worker: DeliveryWorker) -> bool:
    """Drain the outbox until `sent` is settled (a running server's worker may take it first); False after
    DELIVERY_WITHIN seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DELIVERY_WITHIN
    while not await reporter.wait_delivered([sent], within=0):
        if loop.time() >= deadline:
            return False
        await worker.drain()
        await asyncio.sleep(0.2)
    return True


async def recorded_slot(reporter: Reporter, kind: ReportKind, day: dt.date) -> Slot:
    """The report of `kind` on `day`: due when it was recorded (sent, or noted as missed, its notice naming that
    time) if its record stands for that day in the zone in force, else at its time under the Settings now. A report
    time moved since changes neither what was sent (a dry run shows it again) nor where it stopped (the next
    morning's night starts there: a report sent after its notice must end there too)."""
    slot = slot_for(kind, day, reporter.settings)
    row = await recorded_row(reporter.pool, slot)
    if row is not None and stands_for(row, slot, reporter.settings.tz):
        return Slot(kind, day, row.scheduled_at)
    return slot


async def _dry_run(reporter: Reporter, kind: ReportKind, day: dt.date, out: TextIO) -> int:
    """Print the report readably; read-only (the figures come from a read-only transaction)."""
    try:
        slot = await recorded_slot(reporter, kind, day)
        figures = await reporter.figures(slot, now=reporter.clock())
    except asyncpg.UndefinedTableError:
        print("salespulse report: the database has no schema yet; run `salespulse migrate` first", file=sys.stderr)
        return 1
    msg = report_message(figures, tz=reporter.settings.tz)
    chart = figures.chart
    print(f"[dry run: nothing recorded or posted] {msg.text}\n", file=out)
    print(render_text(msg.as_payload()), file=out)
    others = f" (not charted: {', '.join(chart.others)})" if chart.others else ""
    print(f"\nChart: revenue by hour in {chart.currency}, {day_label(chart.day)} against"
          f" {day_label(chart.previous_day)}{others}; not rendered in a dry run", file=out)
    return 0


async def _post(reporter: Reporter, slot: Slot, worker: DeliveryWorker, out: TextIO) -> int:
    """Record and queue the report once, deliver it (unless a running server does first), upload the chart."""
    what = f"The {slot.kind.value} report for {day_label(slot.day)}"
    sent = await reporter.send(slot, source="cli")
    if sent is None:
        return await _already_recorded(reporter, slot, out)
    if not await _deliver(reporter, sent, worker):
        print(f"{what} is queued; the running server will post it.", file=out)
        return 0
    await reporter.upload_charts()
    row = await recorded_row(reporter.pool, slot)
    chart = {"uploaded": "chart in its thread", "saved": f"chart saved to {reporter.chart_path(slot)}",
             "pending": "chart upload will be retried by the server"}.get(
        row.chart_status if row else "", f"no chart ({row.chart_error if row else '?'})")
    if await _refused(reporter, sent, what, out):
        return 1
    print(f"{what} was posted to {reporter.settings.slack_reports_channel}; {chart}.", file=out)
    return 0


async def _already_recorded(reporter: Reporter, slot: Slot, out: TextIO) -> int:
    """Say that the report of `slot` went out already (or was noted as missed), so nothing is posted now."""
    row = await recorded_row(reporter.pool, slot)
    done = "was noted as missed" if row and row.status == "missed" else "was already posted"
    by = f", by the {row.source}" if row else ""
    at = f" at {row.recorded_at.astimezone(reporter.settings.tz):%a %d %b %H:%M}" if row else ""
    print(f"The {slot.kind.value} report for {day_label(slot.day)} {done}{at}{by}: each report goes out once per"
          " day. Use --dry-run to see it again.", file=out)
    return 0


async def _refused(reporter: Reporter, sent: Sent, what: str, out: TextIO) -> bool:
    """Whether Slack refused the settled message `sent` for good; if so, say so."""
    status = await q.message_status(reporter.pool, outbox_id=sent.outbox_id)
    if status != "delivered":
        print(f"{what} could not be posted ({status}); see /health for the Slack error.", file=out)
    return status != "delivered"
