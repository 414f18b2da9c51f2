"""The alert buttons: Acknowledge, Silence 1 h, Silence until tomorrow 9:00, Resolve."""

from __future__ import annotations

import datetime as dt
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.alerts.engine import act
from bot.blocks.alerts import ACK_ACTION, RESOLVE_ACTION, SILENCE_HOUR_ACTION, SILENCE_TOMORROW_ACTION
from bot.deps import Deps
from handlers.scheduled.alerts import notifier_for

TOMORROW_AT = dt.time(9, 0)
VERBS = {ACK_ACTION: "ack", SILENCE_HOUR_ACTION: "silence", SILENCE_TOMORROW_ACTION: "silence",
         RESOLVE_ACTION: "resolve"}


def silence_end(action_id: str, now: dt.datetime, deps: Deps) -> dt.datetime | None:
    """When a silence chosen by this button ends: in an hour, or tomorrow 09:00 in the store's zone."""
    if action_id == SILENCE_HOUR_ACTION:
        return now + dt.timedelta(hours=1)
    if action_id == SILENCE_TOMORROW_ACTION:
        tomorrow = now.astimezone(deps.settings.tz).date() + dt.timedelta(days=1)
        return dt.datetime.combine(tomorrow, TOMORROW_AT, tzinfo=deps.settings.tz).astimezone(dt.UTC)
    return None


def register(app: AsyncApp, deps: Deps) -> None:
    """Add one listener per button; each records who clicked and re-renders the alert in place."""

    async def alert_button(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        try:
            alert_id = int(action.get("value") or "")
        except ValueError:
            return  # not a value this bot wrote
        user = (body.get("user") or {}).get("id") or "unknown"
        now = deps.clock()
        async with deps.pool.acquire() as conn:
            changed = await act(conn, alert_id=alert_id, action=VERBS[action["action_id"]], user=user, now=now,
                                until=silence_end(action["action_id"], now, deps), notifier=notifier_for(deps))
        if changed:
            deps.worker.wake.set()
            if (body.get("container") or {}).get("type") == "view":
                await deps.home.publish([user])  # clicked on the Home tab: show the new state right away
            deps.home.changed()

    for action_id in VERBS:
        app.action(action_id)(alert_button)
