"""The alert buttons: Acknowledge, Silence 1 h, Silence until tomorrow 9:00, Resolve."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.affiliation import of_action
from bot.alerts.respond import VERBS, Pressed, alert_id_of, press, unchanged_answer
from bot.answers.commands import ephemeral
from bot.blocks.common import group_unchecked_message, not_allowed_message
from bot.blocks.message import Message
from bot.deps import Deps


def register(app: AsyncApp, deps: Deps) -> None:
    """Add one listener per button; each records who clicked and re-renders the alert in place."""

    async def alert_button(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                           respond: AsyncRespond) -> None:
        await ack()
        alert_id = alert_id_of(action.get("value"))
        if alert_id is None:
            return  # not a value this bot wrote
        user = (body.get("user") or {}).get("id") or "unknown"
        on_home = (body.get("container") or {}).get("type") == "view"
        outsider = await deps.access.outsider(of_action(body))
        pressed = await press(deps, action_id=action["action_id"], alert_id=alert_id, user=user,
                              surface="home" if on_home else "slack", outsider=outsider)
        if pressed is Pressed.REFUSED and not on_home:  # Home has no response_url (nor buttons for them: a forgery)
            await respond(**ephemeral(await refusal(user, outsider)), replace_original=False)
        elif pressed is Pressed.UNCHANGED and not on_home:  # a message not updated yet, or read days later
            said = await unchanged_answer(deps, alert_id, team_domain=(body.get("team") or {}).get("domain"))
            await respond(**ephemeral(said), replace_original=False)
        home = body.get("view") or {}  # Home's own view (a click in a modal would name another type)
        if on_home and home.get("type", "home") == "home":
            # Whatever came of it: the tab may show what another replica has changed since (an alert resolved).
            deps.home.saw(user, home.get("hash"))
            await deps.home.publish([user])

    async def refusal(user: str, outsider: bool) -> Message:
        # Asked again for the reason (press() says only "refused"): a group whose look-up failed is not asked of
        # Slack again for a minute, so this is the same verdict, with the group that could not be checked.
        verdict = await deps.access.acts_on_alerts(user, outsider=outsider)
        if verdict.unchecked:
            return group_unchecked_message([(g.group, g.error or "?") for g in verdict.unchecked])
        return not_allowed_message("act on alerts")

    for action_id in VERBS:
        app.action(action_id)(alert_button)
