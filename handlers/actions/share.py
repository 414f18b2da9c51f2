"""The "Share in channel" button: post the same summary, fresh, where the command was typed."""

from __future__ import annotations

import json
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.blocks.common import SHARE_ACTION, refusal_message
from bot.blocks.elements import context, message
from bot.blocks.message import Message
from bot.blocks.text import escape_mrkdwn
from bot.deps import Deps
from handlers.commands.answers import allowed, answer, ephemeral


def shared_message(msg: Message, *, user_id: str | None, command: str, arg: str) -> Message:
    """The answer as posted in the channel, saying who shared it and with which command."""
    typed, who = escape_mrkdwn(f"{command} {arg}".strip()), escape_mrkdwn(user_id or "someone")
    return message(msg.text, [*msg.blocks, context(f"Shared by <@{who}> with `{typed}`")])


def register(app: AsyncApp, deps: Deps) -> None:
    """Add the button's listener."""

    @app.action(SHARE_ACTION)
    async def share_in_channel(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                               respond: AsyncRespond) -> None:
        await ack()
        user_id = (body.get("user") or {}).get("id")
        channel_id = (body.get("channel") or {}).get("id")
        if not allowed(deps.settings, user_id=user_id, channel_id=channel_id):
            await respond(**ephemeral(refusal_message()), replace_original=False)
            return
        try:
            value = json.loads(action.get("value") or "{}")
            command, arg = str(value["command"]), str(value.get("arg", ""))
        except (ValueError, KeyError, TypeError):
            return  # not a value this bot wrote: nothing to share
        msg = await answer(deps, command=command, text=arg, user_id=user_id, channel_id=channel_id,
                           shareable=False)
        post = shared_message(msg, user_id=user_id, command=command, arg=arg)
        # response_url posts in the channel without the bot having to be a member of it.
        await respond(response_type="in_channel", text=post.text, blocks=post.blocks, replace_original=False)
        await respond(delete_original=True)
