"""The figures behind the JSON API, the dashboard and the App Home tab: today's sales and every component's health."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

from bot import __version__
from bot.alerts.business_time import business_time_between
from bot.answers.hourly import Hourly, last_24_hours
from bot.answers.snapshots import HealthSnapshot, Lookup, SalesSnapshot, gather_within, health_snapshot, sales_snapshot
from bot.currency import CurrencyChoice
from bot.deps import Deps
from bot.periods import parse_period
from bot.scheduling import next_runs
from bot.stripe.discount_job import tiers_unread
from queries import channel_status
from queries.executor import Executor

API_BUDGET = 5.0  # dashboards can wait a little longer than Slack


async def gather_sales(deps: Deps, *, budget: float = API_BUDGET) -> tuple[SalesSnapshot, Hourly | None]:
    """Today's /sales figures and the last 24 hours by hour, in the store currency too when there is one (None
    when that lookup did not arrive: then "hourly" is in the snapshot's `missing`, like its own figures)."""
    now, tz = deps.clock(), deps.settings.tz
    choice = CurrencyChoice.of(deps.settings)

    async def hourly(db: Executor) -> Hourly:
        return await last_24_hours(db, now=now, tz=tz, store=await choice.read(db), with_fees=choice.from_stripe)

    # Side by side, so a slow database costs one budget, not two.
    today, (got, late) = await asyncio.gather(
        sales_snapshot(deps.pool, period=parse_period("", now=now, tz=tz), now=now, tz=tz, budget=budget,
                       currency=choice, rhythm=deps.rhythm, tiers=tiers_unread(deps)),
        gather_within(deps.pool, {"hourly": hourly}, budget=budget))
    # Named with the snapshot's own missing figures, so every surface says the hours are unknown, not empty.
    return (dataclasses.replace(today, missing=(*today.missing, *late)) if late else today), got.get("hourly")


async def gather_health(deps: Deps, *, budget: float = API_BUDGET) -> HealthSnapshot:
    """The state of every component, as /health, the dashboard, App Home and the health JSON report it."""
    now, s = deps.clock(), deps.settings
    mode = "local" if s.local_mode else "socket" if s.slack_app_token else \
        "webhooks" if s.uses_incoming_webhooks else "http"
    lookups: dict[str, Lookup] = {"rhythm": lambda db: _has_rhythm(deps, db, now=now)}
    if deps.channels is not None:  # what any replica learned of the channels: the newest is said
        lookups["channels"] = channel_status.stored
    snapshot, (got, _) = await asyncio.gather(
        health_snapshot(deps.pool, now=now, mode=mode, version=__version__, in_business_hours=s.in_business_hours(now),
                        started_at=deps.started_at, site_url=s.site_url, next_jobs=next_runs(deps.scheduler),
                        job_failures=tuple(deps.job_failures.recent), budget=budget,
                        overrides=deps.live.overrides, stuck_after=deps.rules.delivery_stuck_after,
                        socket=deps.socket.state if deps.socket is not None else None),
        gather_within(deps.pool, lookups, budget=budget))
    last = snapshot.last_order_at
    silence = None if last is None else \
        business_time_between(last, now, tz=s.tz, hours=s.business_hours, days=s.business_days)
    # Not read in time: what this replica knows.
    channels = deps.channels.adopt(got.get("channels", ())) if deps.channels is not None else ()
    return dataclasses.replace(snapshot, rhythm=got.get("rhythm"), order_silence=silence, channels=channels,
                               stripe_refusals=deps.refusals.standing(),
                               team_read_missing=deps.access.workspaces.team_read_missing)


async def _has_rhythm(deps: Deps, db: Executor, *, now: dt.datetime) -> bool:
    """Whether the store has a rhythm, through the cache the alert job and /sales share (same key: the store
    currency): then its alert rules, not the guide's fixed hour, judge how long it may go without an order."""
    store = await CurrencyChoice.of(deps.settings).read(db)
    rhythm = await deps.rhythm_cache.get(db, now=now, tz=deps.settings.tz, params=deps.rules.rhythm,
                                         store_currency=store)
    return rhythm is not None
