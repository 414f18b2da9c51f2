"""The "Share in channel" button: the same answer, fresh, posted where the command was typed — through the
response_url while Slack takes it, then with the bot token."""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass

from slack_bolt.async_app import AsyncRespond
from slack_sdk.errors import SlackApiError

from bot.answers.commands import answer
from bot.blocks.elements import context, message
from bot.blocks.message import Message
from bot.blocks.text import escape_mrkdwn
from bot.delivery.channels import BOT_MENTION
from bot.delivery.senders import Status
from bot.delivery.webapi import WebApiSender
from bot.deps import Deps

log = logging.getLogger(__name__)


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


# Slack takes a response_url for 30 minutes and 5 uses, then answers 404 `expired_url` or `used_url`:
# https://docs.slack.dev/interactivity/handling-user-interaction#message_responses
async def deliver_share(deps: Deps, respond: AsyncRespond, post: Message, *, channel_id: str | None,
                        user_id: str | None) -> str:
    """Post the shared answer in the channel: through the response_url while Slack takes it, else with
    chat.postMessage (joining a public channel first if need be), else tell the user why not. Says how."""
    answered = await respond(response_type="in_channel", text=post.text, blocks=post.blocks,
                             replace_original=False)
    if answered.status_code == 200:
        await respond(delete_original=True)
        return "response_url"
    dead = (answered.body or f"http_{answered.status_code}").strip()[:100]
    log.info("Share: the response_url is spent (%s); posting with the bot token instead", dead)
    if deps.slack is None or channel_id is None:
        return f"not shared: {dead}"
    sender = WebApiSender(deps.slack, channels={}, directory=deps.channels)
    result = await sender.post(channel_id, post.as_payload())
    if result.status is Status.OK:
        return "chat.postMessage"
    log.warning("Share: cannot post in %s either: %s", channel_id, result.error)
    if user_id is not None:
        with contextlib.suppress(SlackApiError):  # the user sees nothing either way; the log says why
            await deps.slack.chat_postEphemeral(channel=channel_id, user=user_id,
                                                text=share_refused_text(result.error or "unknown error"))
    return f"not shared: {result.error}"


def share_refused_text(error: str) -> str:
    """What the user is told when the answer could not be shared in the channel."""
    return (f"I couldn't share this here: the button's link into this channel has expired (Slack takes it for"
            f" 30 minutes and 5 uses), and I can't post here myself ({error}). If this is a private channel,"
            f" invite me with /invite {BOT_MENTION}, then type the command again.")
