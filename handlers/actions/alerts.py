"""The alert buttons: Acknowledge, Silence 1 h, Silence until tomorrow 9:00, Resolve."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.alerts.respond import VERBS, alert_id_of, press
from bot.deps import Deps


def register(app: AsyncApp, deps: Deps) -> None:
    """Add one listener per button; each records who clicked and re-renders the alert in place."""

    async def alert_button(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        alert_id = alert_id_of(action.get("value"))
        if alert_id is None:
            return  # not a value this bot wrote
        user = (body.get("user") or {}).get("id") or "unknown"
        changed = await press(deps, action_id=action["action_id"], alert_id=alert_id, user=user)
        if changed and (body.get("container") or {}).get("type") == "view":
            await deps.home.publish([user])  # clicked on the Home tab: show the new state right away

    for action_id in VERBS:
        app.action(action_id)(alert_button)
