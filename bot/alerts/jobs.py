"""The alert cycle: evaluate the rules every ALERT_CHECK_INTERVAL_SECONDS and probe SITE_URL every minute,
on the leader replica only; watch the database from every replica."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging

import aiohttp

from bot.alerts.dbwatch import DatabaseWatch
from bot.alerts.engine import evaluate
from bot.alerts.leader import Leadership
from bot.alerts.probe import probe
from bot.alerts.respond import notifier_for
from bot.alerts.rules import Context
from bot.currency import CurrencyChoice
from bot.db import DB_UNAVAILABLE
from bot.deps import Deps
from queries import alerts as q
from queries import health

log = logging.getLogger(__name__)

PROBE_INTERVAL_SECONDS = 60
DB_CHECK_TIMEOUT = 5.0


class AlertJobs:
    """State the jobs keep between runs: leadership and the database watch."""

    def __init__(self, deps: Deps, *, leadership: Leadership) -> None:
        self.deps = deps
        self.leadership = leadership
        self.dbwatch = DatabaseWatch(deps.sender, tz=deps.settings.tz, mention=deps.rules.mention,
                                     quiet=self._quiet(deps.clock()))

    def _quiet(self, now: dt.datetime) -> bool:
        """Inside QUIET_HOURS: the database alert posts without the on-call mention, as every other critical, and
        pages once they end if still unreachable."""
        settings = self.deps.settings
        return settings.quiet_hours is not None and settings.quiet_hours.contains(now.astimezone(settings.tz).time())

    async def tick(self) -> int:
        """One evaluation: database check first (from any replica), then the rules (leader only)."""
        deps = self.deps
        now = deps.clock()
        self.dbwatch.retune(tz=deps.settings.tz, mention=deps.rules.mention, quiet=self._quiet(now))  # from Slack
        try:
            await asyncio.wait_for(health.ping(deps.pool), DB_CHECK_TIMEOUT)
        except DB_UNAVAILABLE as exc:
            # Only the replica that led last speaks, so replicas don't all post the same outage.
            await self.dbwatch.down(now, f"{type(exc).__name__}: {exc}", may_post=self.leadership.was_leader)
            return 0
        await self.dbwatch.up(now)
        # Before the leadership check: only the replica that posted the outage knows it, and a database restart
        # ends its leader session, so another replica may well lead from now on.
        await self._record_outage()
        if not await self.leadership.hold():
            return 0
        async with deps.pool.acquire() as conn:
            settings, rules = deps.settings, deps.rules  # read once: a change from Slack applies from the next tick
            # In the store currency, as /sales builds it: the rules read orders only, but one cached rhythm serves both.
            store = await CurrencyChoice.of(settings).read(conn)
            rhythm = await deps.rhythm_cache.get(conn, now=now, tz=settings.tz, params=rules.rhythm,
                                                 store_currency=store)
            ctx = Context(now=now, tz=settings.tz, business_hours=settings.business_hours, site_url=settings.site_url,
                          rhythm=rhythm, business_days=settings.business_days, quiet_hours=settings.quiet_hours)
            # Quiet hours: criticals still post, without paging anyone, and page once they end if still unanswered.
            notifier = dataclasses.replace(notifier_for(deps), quiet=ctx.quiet())
            sent = await evaluate(conn, rules=rules, ctx=ctx, notifier=notifier)
        if sent:
            deps.home.changed()  # an alert fired, changed or resolved: App Home tabs show it
        return sent

    async def _record_outage(self) -> None:
        """Write the database outage into the alerts table once it is back, for the morning report."""
        if self.dbwatch.incident is None:
            return
        since, until = self.dbwatch.incident
        async with self.deps.pool.acquire() as conn, conn.transaction():
            row = await q.insert_alert(conn, fingerprint=f"database_unreachable|at={since.isoformat()}",
                                       rule="database_unreachable", family="database", severity="critical",
                                       labels={}, title="Database unreachable",
                                       summary="PostgreSQL could not be reached", value=None, at=since)
            await q.set_notified(conn, alert_id=row.id, at=since, outbox_id=None)
            await q.resolve(conn, alert_id=row.id, at=until)
        self.dbwatch.incident = None  # only once written: a write that fails is tried again at the next tick

    async def probe_tick(self, session: aiohttp.ClientSession | None = None) -> None:
        """Check SITE_URL once and store the result (leader only)."""
        url = self.deps.settings.site_url
        if url is None or not await self.leadership.hold():
            return
        if session is None:  # once a minute: a session per check leaves nothing open at shutdown
            async with aiohttp.ClientSession(headers={"User-Agent": "salespulse-probe"}) as own:
                result = await probe(own, url, clock=self.deps.clock)
        else:
            result = await probe(session, url, clock=self.deps.clock)
        await q.insert_probe(self.deps.pool, url=url, probe=result)
