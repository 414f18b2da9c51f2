"""What /sales, /errors, /health and the JSON API show, gathered concurrently under one time budget.

Each figure is its own lookup on its own pooled connection. Whatever fails or is still running when the
budget is spent is named in `missing` instead of failing the whole answer: a slash command must answer
inside Slack's 3 seconds even when PostgreSQL is slow or down.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from bot.alerts.rules import DELIVERY_STUCK_MINUTES
from bot.answers.store_lookups import totals_fields, totals_lookups
from bot.currency import PER_CURRENCY, CurrencyChoice, StoreTotals
from bot.delivery.channels import ChannelStatus
from bot.periods import Period
from bot.rhythm.load import RhythmSource, pace_today
from bot.rhythm.pace import Pace
from bot.scheduling import JobFailure
from bot.socket_state import SocketState
from bot.stripe.refused import Standing
from queries import alerts, health, mrr, sales, settlements, sketch, stripe_sync
from queries import inbox as inbox_q
from queries import settings as settings_q
from queries.alerts import AlertRow, Probe
from queries.executor import Executor
from queries.mrr import MrrSummary, TiersUnread
from queries.sales import Conversion, CurrencyTotal, TrendPoint
from queries.settings import Change, Override
from queries.stripe_sync import SyncStatus

log = logging.getLogger(__name__)

# Slack gives a slash command 3 s; leave room for Slack's own hops and our rendering.
COMMAND_BUDGET = 2.0
SETTINGS_CHANGES_SHOWN = 5  # /health lists the latest changes made from Slack's Settings view
SOCKET_GRACE = dt.timedelta(minutes=1)  # a Socket Mode (re)connect with no failed attempt is not degraded before
STUCK_AFTER = dt.timedelta(minutes=DELIVERY_STUCK_MINUTES)  # the delivery_stuck rule's default threshold
PENDING_WINDOW = dt.timedelta(minutes=30)
# Without STRIPE_API_KEY an abandoned checkout is known only once it expires (checkout.session.expired), at most 24 h
# after it opened: a period ending later than that counts some checkouts as not started yet.
CHECKOUT_EXPIRY = dt.timedelta(hours=24)
RHYTHM_SILENCE_RULE = "sales_stopped"  # with a rhythm, the rule whose firing /health calls an order silence
MRR_WINDOW = dt.timedelta(days=30)  # new and churned MRR: the 30 days up to the period's end, whatever its length

Lookup = Callable[[Executor], Awaitable[Any]]


async def gather_within(pool: asyncpg.Pool, lookups: dict[str, Lookup], *,
                        budget: float) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Run lookups concurrently; return the values that arrived in time and the names that did not."""
    async def run(lookup: Lookup) -> Any:
        async with pool.acquire(timeout=budget) as conn:
            return await lookup(conn)

    tasks = {name: asyncio.create_task(run(lookup), name=name) for name, lookup in lookups.items()}
    _, late = await asyncio.wait(tasks.values(), timeout=budget)
    for task in late:
        task.cancel()
    values: dict[str, Any] = {}
    missing: list[str] = []
    for name, task in tasks.items():
        if task in late:
            missing.append(name)
        elif (exc := task.exception()) is not None:
            log.warning("lookup %s failed: %s: %s", name, type(exc).__name__, exc)
            missing.append(name)
        else:
            values[name] = task.result()
    if late:
        await asyncio.gather(*late, return_exceptions=True)
    return values, tuple(missing)


@dataclass(frozen=True, slots=True)
class SalesSnapshot:
    """Everything /sales shows for one period; a None field is listed in `missing`."""

    period: Period
    now: dt.datetime
    last_hour: list[CurrencyTotal] | None
    last_order_at: dt.datetime | None
    totals: list[CurrencyTotal] | None
    previous: list[CurrencyTotal] | None
    customers: int | None
    refunds: list[CurrencyTotal] | None
    trend: list[TrendPoint] | None
    pending_checkouts: int | None
    conversion: Conversion | None
    missing: tuple[str, ...] = ()
    customers_error: float | None = None  # relative error bound when `customers` is an estimate
    customers_without_email: int = 0  # the period's orders with no email: `customers` cannot count theirs
    pace: Pace | None = None  # today only, once the store has a rhythm
    subscriptions: MrrSummary | None = None  # MRR now, a week ago, the last 30 days' movements (bot/blocks/mrr.py)
    store: StoreTotals | None = None  # the period in the store currency (bot/currency.py)
    store_previous: StoreTotals | None = None  # a week earlier, likewise
    store_note: str | None = None  # why totals stay per currency, when they do
    store_last_hour: StoreTotals | None = None  # the last hour in the store currency, likewise
    abandoned_unknown: bool = False  # conversion leaves out abandoned checkouts not expired yet (CHECKOUT_EXPIRY)


async def sales_snapshot(pool: asyncpg.Pool, *, period: Period, now: dt.datetime, tz: ZoneInfo,
                         budget: float = COMMAND_BUDGET,
                         currency: CurrencyChoice = PER_CURRENCY,
                         rhythm: RhythmSource | None = None, tiers: TiersUnread | None = None) -> SalesSnapshot:
    """The figures of /sales for `period`; `currency` says whether and how totals are given in one currency, `tiers`
    why tiered prices unread are left out of MRR (bot/stripe/discount_job.tiers_unread)."""
    before = period.week_earlier(tz)
    lookups: dict[str, Lookup] = {
        "last order": lambda db: sales.last_order_at(db),
        **totals_lookups(currency, period, before, last_hour=(now - dt.timedelta(hours=1), now)),
        "customers": lambda db: sketch.customers(db, start=period.start, end=period.end),
        "refunds": lambda db: sales.refunds(db, start=period.start, end=period.end),
        "trend": lambda db: sales.trend(db, start=period.start, end=period.end, bucket=period.bucket.value,
                                        tz=tz.key),
        "pending checkouts": lambda db: sales.pending_checkouts(db, since=now - PENDING_WINDOW),
        "conversion": lambda db: sales.conversion(db, start=period.start, end=period.end),
    }
    ended = min(now, period.end)
    lookups["subscriptions"] = lambda db: mrr.summary(db, now=ended, since=ended - MRR_WINDOW, tiers=tiers)
    if period.key == "today":
        lookups["pace"] = lambda db: pace_today(db, now=now, tz=tz, source=rhythm, currency=currency)
    got, missing = await gather_within(pool, lookups, budget=budget)
    customers: sketch.Customers | None = got.get("customers")
    return SalesSnapshot(
        period=period, now=now, last_order_at=got.get("last order"),
        customers=None if customers is None else customers.count,
        customers_error=None if customers is None else customers.error,
        customers_without_email=0 if customers is None else customers.without_email,
        refunds=got.get("refunds"), trend=got.get("trend"), pending_checkouts=got.get("pending checkouts"),
        conversion=got.get("conversion"), missing=missing, pace=got.get("pace"),
        subscriptions=got.get("subscriptions"), **totals_fields(currency, got),
        abandoned_unknown=not currency.from_stripe and period.end > now - CHECKOUT_EXPIRY)


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    """Everything /health shows."""

    now: dt.datetime
    database_ok: bool
    database_rtt_ms: float | None
    last_webhook_at: dt.datetime | None
    last_order_at: dt.datetime | None
    backlog: health.Backlog | None
    delivery_errors: health.DeliveryErrors | None
    in_business_hours: bool
    mode: str
    version: str
    started_at: dt.datetime
    site_url: str | None
    next_jobs: tuple[tuple[str, dt.datetime], ...] = ()
    job_failures: tuple[JobFailure, ...] = ()
    alerts: list[AlertRow] | None = None
    probe: Probe | None = None
    stripe_sync: SyncStatus | None = None  # None: the Events API has never been polled
    stripe_fees: settlements.Backlog | None = None  # orders waiting for their balance transactions
    inbox: inbox_q.Backlog | None = None  # webhooks stored while the intake was busy, not applied yet
    channels: tuple[ChannelStatus, ...] = ()  # the configured Slack channels (bot token only)
    missing: tuple[str, ...] = ()
    settings_overrides: tuple[Override, ...] = ()  # in force over the environment, changed from Slack
    settings_changes: list[Change] | None = None  # the latest changes, newest first
    stuck_after: dt.timedelta = STUCK_AFTER  # the rule's threshold in force
    socket: SocketState | None = None  # None unless Socket Mode is configured (an app token)
    rhythm: bool | None = None  # the store has a rhythm (None: not known in time)
    # Business time since the last order (bot/alerts/business_time.py), as gather_health reckons it: the night and
    # closed days are not silence. None: no order yet, or not reckoned.
    order_silence: dt.timedelta | None = None
    stripe_refusals: tuple[Standing, ...] = ()  # this replica's Stripe jobs refused by the key (401/403)
    team_read_missing: bool = False  # team.info refused for want of team:read: Grid sister workspaces are outside

    @property
    def order_silence_suspicious(self) -> bool:
        """No order for over an hour of business time, asked in business hours (the guide's 'when to worry'); with a
        rhythm, while `sales_stopped` fires: the silence is improbable for this hour. A small store's quiet
        afternoon, hours long and usual, is no fault, and a busy one's 40 silent minutes at its peak are."""
        if self.rhythm and self.alerts is not None:
            return any(a.rule == RHYTHM_SILENCE_RULE for a in self.alerts)
        if not self.in_business_hours or self.order_silence is None:
            return False
        return self.order_silence > dt.timedelta(hours=1)

    @property
    def delivery_stuck(self) -> bool:
        """A message due for over `stuck_after` is still not in Slack: the bot was removed from a channel, its token
        revoked, or Slack is down — the owner hears nothing, so every surface says so."""
        due = self.backlog.oldest_due if self.backlog is not None else None
        return due is not None and self.now - due > self.stuck_after

    @property
    def socket_down(self) -> bool:
        """Socket Mode is configured and not connected, after a failed attempt or for over SOCKET_GRACE: no slash
        command, button or App Home event reaches the bot."""
        sock = self.socket
        return sock is not None and not sock.connected and \
            (sock.last_error is not None or self.now - sock.since > SOCKET_GRACE)

    @property
    def degraded(self) -> bool:
        """What /health, the JSON API and the dashboard call degraded: no database, an order silence worth worrying
        about, Slack refusing messages for good, delivery stuck, or Socket Mode down."""
        permanent = bool(self.delivery_errors and self.delivery_errors.permanent)
        return not self.database_ok or self.order_silence_suspicious or permanent or self.delivery_stuck or \
            self.socket_down


async def _timed_ping(db: Executor) -> float:
    started = time.perf_counter()
    await health.ping(db)
    return (time.perf_counter() - started) * 1000


async def health_snapshot(pool: asyncpg.Pool, *, now: dt.datetime, in_business_hours: bool, mode: str,
                          version: str, started_at: dt.datetime, site_url: str | None,
                          next_jobs: tuple[tuple[str, dt.datetime], ...] = (),
                          job_failures: tuple[JobFailure, ...] = (),
                          channels: tuple[ChannelStatus, ...] = (), overrides: tuple[Override, ...] = (),
                          stuck_after: dt.timedelta = STUCK_AFTER, socket: SocketState | None = None,
                          budget: float = COMMAND_BUDGET) -> HealthSnapshot:
    """The state of every component /health reports."""
    lookups: dict[str, Lookup] = {
        "database": _timed_ping,
        "last webhook": health.last_webhook_at,
        "last order": sales.last_sale_at,  # as the no-sales alerts count it: its silence flag is theirs
        "outbox": lambda db: health.outbox_backlog(db, now=now),
        "delivery errors": lambda db: health.delivery_errors(db, since=now - dt.timedelta(hours=24)),
        "alerts": alerts.firing,
        "site probe": lambda db: alerts.last_probes(db, limit=1),
        "stripe events api": lambda db: stripe_sync.sync_status(db, since=now - dt.timedelta(hours=24)),
        "settings changes": lambda db: settings_q.recent_changes(db, limit=SETTINGS_CHANGES_SHOWN),
        "stripe fees": settlements.backlog,
        "intake inbox": inbox_q.backlog,
    }
    got, missing = await gather_within(pool, lookups, budget=budget)
    return HealthSnapshot(
        now=now, database_ok="database" in got, database_rtt_ms=got.get("database"),
        last_webhook_at=got.get("last webhook"), last_order_at=got.get("last order"),
        backlog=got.get("outbox"), delivery_errors=got.get("delivery errors"),
        in_business_hours=in_business_hours, mode=mode, version=version, started_at=started_at,
        site_url=site_url, next_jobs=next_jobs, job_failures=job_failures, alerts=got.get("alerts"),
        probe=(got.get("site probe") or [None])[0], stripe_sync=got.get("stripe events api"), channels=channels,
        stripe_fees=got.get("stripe fees"), missing=missing, settings_overrides=overrides,
        settings_changes=got.get("settings changes"), inbox=got.get("intake inbox"), stuck_after=stuck_after,
        socket=socket)
