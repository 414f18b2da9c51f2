"""The Home view as it stands now: the same lookups as /sales, /health and the alerts, gathered concurrently."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from bot.alerts.respond import notifier_for
from bot.answers.gather import gather_health
from bot.answers.snapshots import gather_within, sales_snapshot
from bot.blocks.home import RECENT_ORDERS, home_view
from bot.currency import CurrencyChoice
from bot.deps import Deps
from bot.periods import parse_period
from bot.stripe.discount_job import tiers_unread
from queries import sales

HOME_BUDGET = 4.0  # nobody is waiting on an HTTP answer, but a Home tab should not lag minutes behind


async def render_home(deps: Deps, *, buttons: bool) -> dict[str, Any]:
    """The current Home view: the same lookups as /sales, /health and the alerts, gathered concurrently; the alerts'
    buttons only for those who may act on them (`buttons`)."""
    now, tz = deps.clock(), deps.settings.tz
    today, health, (got, _) = await asyncio.gather(
        sales_snapshot(deps.pool, period=parse_period("", now=now, tz=tz), now=now, tz=tz, budget=HOME_BUDGET,
                       currency=CurrencyChoice.of(deps.settings), rhythm=deps.rhythm, tiers=tiers_unread(deps)),
        gather_health(deps, budget=HOME_BUDGET),
        gather_within(deps.pool, {"orders": lambda db: sales.recent_orders(db, limit=RECENT_ORDERS)},
                      budget=HOME_BUDGET))
    notifier = notifier_for(deps)
    # Buttons on every open alert, whatever the channel delivery: clicks on Home arrive over the Bolt app.
    alerts = None if health.alerts is None else [
        dataclasses.replace(notifier.view(a, health.now), buttons=buttons) for a in health.alerts]
    return home_view(sales=today, orders=got.get("orders"), alerts=alerts, health=health, tz=tz)
