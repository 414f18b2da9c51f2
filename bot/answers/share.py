"""The "Share in channel" button: the same answer, fresh, posted where the command was typed."""

from __future__ import annotations

import json
from dataclasses import dataclass

from bot.answers.commands import answer
from bot.blocks.elements import context, message
from bot.blocks.message import Message
from bot.blocks.text import escape_mrkdwn
from bot.deps import Deps


@dataclass(frozen=True, slots=True)
class ShareRequest:
    """What a Share button's value names: the command and its argument."""

    command: str
    arg: str


def parse_share_value(value: str | None) -> ShareRequest | None:
    """The command a Share button carries, or None when the value is not one this bot wrote."""
    try:
        parsed = json.loads(value or "{}")
        return ShareRequest(command=str(parsed["command"]), arg=str(parsed.get("arg", "")))
    except (ValueError, KeyError, TypeError):
        return None


def shared_message(msg: Message, *, user_id: str | None, command: str, arg: str) -> Message:
    """The answer as posted in the channel, saying who shared it and with which command."""
    typed, who = escape_mrkdwn(f"{command} {arg}".strip()), escape_mrkdwn(user_id or "someone")
    return message(msg.text, [*msg.blocks, context(f"Shared by <@{who}> with `{typed}`")])


async def share_answer(deps: Deps, request: ShareRequest, *, user_id: str | None, channel_id: str | None) -> Message:
    """The post for the channel: the answer computed again (not the stale one), signed by who shared it."""
    msg = await answer(deps, command=request.command, text=request.arg, user_id=user_id, channel_id=channel_id,
                       shareable=False)
    return shared_message(msg, user_id=user_id, command=request.command, arg=request.arg)
