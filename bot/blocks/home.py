"""The App Home tab: today's /sales figures, the last five orders, firing alerts with their buttons, health.

Pure, like every builder here. A Home view holds at most 100 blocks: the sales and health parts are small and
fixed, the orders are one section, and the alerts take what is left ("…and 3 more in #system-alerts").
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any, Final
from zoneinfo import ZoneInfo

from bot.answers.snapshots import HealthSnapshot, SalesSnapshot
from bot.blocks.alerts import AlertView, alert_message
from bot.blocks.common import ago
from bot.blocks.elements import actions, button, context, divider, header, local, section
from bot.blocks.health import health_message
from bot.blocks.message import MAX_BLOCKS_HOME, Block
from bot.blocks.pings import mask_email
from bot.blocks.sales import sales_message
from bot.blocks.settings import OPEN_ACTION
from bot.blocks.text import escape_mrkdwn, inline
from bot.money import format_money
from queries.sales import RecentOrder

RECENT_ORDERS: Final = 5
PRODUCT_CHARS: Final = 60


def _orders(orders: Sequence[RecentOrder] | None, *, now: dt.datetime, tz: ZoneInfo) -> list[Block]:
    blocks = [header("🧾 Latest orders")]
    if orders is None:
        return [*blocks, section("— couldn't load the latest orders in time")]
    if not orders:
        return [*blocks, section("No orders yet.")]
    lines = []
    for o in orders[:RECENT_ORDERS]:
        product = inline(o.product or "Unknown product", PRODUCT_CHARS)
        customer = escape_mrkdwn(mask_email(o.customer_email))
        lines.append(f"*{format_money(o.amount, o.currency)}* · {product} · {customer}"
                     f" · {local(o.created_at, tz):%H:%M} ({ago(now - o.created_at)})")
    return [*blocks, section("\n".join(lines))]


def _alerts(alerts: Sequence[AlertView] | None, *, room: int, tz: ZoneInfo) -> list[Block]:
    if alerts is None:
        return [header("🚨 Alerts"), section("— couldn't load the alerts in time")]
    if not alerts:
        return [header("🚨 Alerts"), section("✅ No alerts firing.")]
    blocks: list[Block] = [header(f"🚨 Firing alerts ({len(alerts)})")]
    shown = 0
    for a in alerts:
        # No @here on the Home tab: it is a page someone is already looking at.
        rendered = alert_message(dataclasses.replace(a, mention=None), tz=tz).blocks
        if len(blocks) + len(rendered) + 1 > room:  # + 1 for the "…and N more" line
            break
        blocks.extend(rendered)
        shown += 1
    if shown < len(alerts):
        blocks.append(context(f"…and {len(alerts) - shown} more in the alerts channel"))
    return blocks


def home_view(*, sales: SalesSnapshot, orders: Sequence[RecentOrder] | None, alerts: Sequence[AlertView] | None,
              health: HealthSnapshot, tz: ZoneInfo) -> dict[str, Any]:
    """The `view` argument of views.publish: a Home view within Slack's block limit."""
    head = [*sales_message(sales, tz=tz).blocks, divider(), *_orders(orders, now=sales.now, tz=tz), divider()]
    # The alerts are shown here with their buttons, so the health part leaves its one-line list out.
    tail = [divider(), *health_message(dataclasses.replace(health, alerts=None), tz=tz).blocks,
            context(f"Updated {local(sales.now, tz):%H:%M:%S %Z} · refreshes after new sales"),
            settings_actions()]  # admins only: others are told
    blocks = [*head, *_alerts(alerts, room=MAX_BLOCKS_HOME - len(head) - len(tail), tz=tz), *tail]
    return {"type": "home", "blocks": blocks}


def settings_actions() -> Block:
    """The ⚙️ Settings button, the way into the Settings view from App Home."""
    return actions(button("⚙️ Settings", action_id=OPEN_ACTION, value="open"))


def restricted_home_view() -> dict[str, Any]:
    """The Home view for someone the owner did not allow to read revenue: what the app is, no figures."""
    return {"type": "home", "blocks": [
        header("📈 salespulse"),
        section("🔒 The store's figures are only shown to the people the owner allowed. "
                "Ask them to add you if you need to see sales here."),
        context("Alerts and reports still arrive in their channels if you are a member."),
    ]}


def with_settings_button(view: dict[str, Any]) -> dict[str, Any]:
    """`view` (the locked one) with the Settings button added: for an admin who does not read revenue — the
    settings are theirs to run, the figures are not."""
    return {**view, "blocks": [*view["blocks"], settings_actions()]}
