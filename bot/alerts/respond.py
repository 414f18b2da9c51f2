"""What a click on an alert's button does, wherever it was clicked: Slack, the App Home tab or the local feed."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from zoneinfo import ZoneInfo

from bot.alerts.engine import act
from bot.alerts.notifier import Notifier
from bot.blocks.alerts import (
    ACK_ACTION,
    RESOLVE_ACTION,
    SILENCE_HOUR_ACTION,
    SILENCE_TOMORROW_ACTION,
    FiringAgain,
    already_over_message,
)
from bot.blocks.message import Message
from bot.deps import Deps
from queries import alert_actions as audit

TOMORROW_AT = dt.time(9, 0)
# Before this local hour it is still the night: "tomorrow 9:00" is the coming morning, not the one after.
NIGHT_ENDS = dt.timedelta(hours=6)
VERBS = {ACK_ACTION: "ack", SILENCE_HOUR_ACTION: "silence", SILENCE_TOMORROW_ACTION: "silence",
         RESOLVE_ACTION: "resolve"}


def notifier_for(deps: Deps) -> Notifier:
    """The notifier matching the configured Slack delivery."""
    return Notifier(tz=deps.settings.tz, mention=deps.rules.mention, updates=deps.sender.supports_updates)


def silence_end(action_id: str, now: dt.datetime, tz: ZoneInfo) -> dt.datetime | None:
    """When a silence chosen by this button ends: in an hour, or the next morning's 09:00 in the store's zone.

    Clicked at 00:30, "tomorrow" is the morning a few hours away, as the person on call means it — not 32 h on.
    """
    if action_id == SILENCE_HOUR_ACTION:
        return now + dt.timedelta(hours=1)
    if action_id == SILENCE_TOMORROW_ACTION:
        tomorrow = (now.astimezone(tz) - NIGHT_ENDS).date() + dt.timedelta(days=1)
        return dt.datetime.combine(tomorrow, TOMORROW_AT, tzinfo=tz).astimezone(dt.UTC)
    return None


def alert_id_of(value: str | None) -> int | None:
    """The alert id a button carries, or None when the value is not one this bot wrote."""
    text = value or ""
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None  # int() refuses '²'


class Pressed(StrEnum):
    """What a click did."""

    CHANGED = "changed"
    UNCHANGED = "unchanged"  # already resolved, or no such alert
    REFUSED = "refused"  # the user is not an alert responder


async def press(deps: Deps, *, action_id: str, alert_id: int, user: str, surface: str,
                outsider: bool = False) -> Pressed:
    """Apply the button to the alert if the user may (`outsider`: Slack shows them to be of another organisation);
    the message updates in place through the outbox."""
    now = deps.clock()
    action = VERBS[action_id]
    if not await deps.access.acts_on_alerts(user, outsider=outsider):
        await audit.record(deps.pool, audit.AlertAction(alert_id=alert_id, user_id=user, action=action,
                                                        outcome="refused", silenced_until=None, surface=surface,
                                                        at=now))
        return Pressed.REFUSED
    async with deps.pool.acquire() as conn:
        changed = await act(conn, alert_id=alert_id, action=action, user=user, now=now, surface=surface,
                            until=silence_end(action_id, now, deps.settings.tz), notifier=notifier_for(deps))
    if not changed:
        return Pressed.UNCHANGED
    deps.home.changed()  # App Home tabs show the alert's new state
    return Pressed.CHANGED


async def firing_again(deps: Deps, alert_id: int, *, team_domain: str | None) -> FiringAgain | None:
    """After a click on a resolved alert: the alert of the same incident firing again, to point to. Pointed to, not
    acted on: the click was on another message, perhaps read hours later, and may not be meant for this one."""
    again = await audit.firing_again(deps.pool, alert_id)
    return None if again is None else FiringAgain(id=again.id, slack_channel=again.slack_channel,
                                                  slack_ts=again.slack_ts, team_domain=team_domain)


async def unchanged_answer(deps: Deps, alert_id: int, *, team_domain: str | None) -> Message:
    """What the clicker is told when the click changed nothing (Pressed.UNCHANGED), in Slack and the local feed
    alike: the alert is over, and where the same incident fires again, if it does."""
    return already_over_message(await firing_again(deps, alert_id, team_domain=team_domain))
