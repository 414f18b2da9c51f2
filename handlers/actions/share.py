"""The "Share in channel" button: post the same summary, fresh, where the command was typed."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.affiliation import of_action
from bot.answers.commands import ephemeral
from bot.answers.share import deliver_share, parse_share_value, share_answer
from bot.blocks.common import SHARE_ACTION, refusal_message
from bot.deps import Deps


def register(app: AsyncApp, deps: Deps) -> None:
    """Add the button's listener."""

    @app.action(SHARE_ACTION)
    async def share_in_channel(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                               respond: AsyncRespond) -> None:
        await ack()
        user_id = (body.get("user") or {}).get("id")
        channel_id = (body.get("channel") or {}).get("id")
        outsider = await deps.access.outsider(of_action(body))
        if not deps.access.reads_revenue(user_id, channel_id, outsider=outsider):
            await respond(**ephemeral(refusal_message()), replace_original=False)
            return
        request = parse_share_value(action.get("value"))
        if request is None:
            return  # not a value this bot wrote: nothing to share
        post = await share_answer(deps, request, user_id=user_id, channel_id=channel_id)
        await deliver_share(deps, respond, post, channel_id=channel_id, user_id=user_id)
