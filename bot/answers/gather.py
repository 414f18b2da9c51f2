"""The figures behind the JSON API, the dashboard and the App Home tab: today's sales and every component's health."""

from __future__ import annotations

import datetime as dt

from bot import __version__
from bot.answers.snapshots import HealthSnapshot, SalesSnapshot, gather_within, health_snapshot, sales_snapshot
from bot.currency import CurrencyChoice
from bot.deps import Deps
from bot.periods import parse_period
from bot.scheduling import next_runs
from queries import sales
from queries.sales import TrendPoint

API_BUDGET = 5.0  # dashboards can wait a little longer than Slack


async def gather_sales(deps: Deps, *, budget: float = API_BUDGET) -> tuple[SalesSnapshot, list[TrendPoint] | None]:
    """Today's /sales figures and the last 24 hours by hour (None when that lookup did not arrive)."""
    now, tz = deps.clock(), deps.settings.tz
    today = await sales_snapshot(deps.pool, period=parse_period("", now=now, tz=tz), now=now, tz=tz,
                                 budget=budget, currency=CurrencyChoice.of(deps.settings), rhythm=deps.rhythm)
    got, _ = await gather_within(deps.pool, {"hourly": lambda db: sales.trend(
        db, start=now - dt.timedelta(hours=24), end=now, bucket="hour", tz=tz.key)}, budget=budget)
    return today, got.get("hourly")


async def gather_health(deps: Deps, *, budget: float = API_BUDGET) -> HealthSnapshot:
    """The state of every component, as /health and the health JSON report it."""
    now, s = deps.clock(), deps.settings
    mode = "local" if s.local_mode else "socket" if s.slack_app_token else \
        "webhooks" if s.uses_incoming_webhooks else "http"
    return await health_snapshot(deps.pool, now=now, mode=mode, version=__version__,
                                 in_business_hours=s.in_business_hours(now),
                                 started_at=deps.started_at, site_url=s.site_url, next_jobs=next_runs(deps.scheduler),
                                 job_failures=tuple(deps.job_failures.recent), budget=budget,
                                 channels=deps.channels.statuses() if deps.channels is not None else (),
        overrides=deps.live.overrides)
