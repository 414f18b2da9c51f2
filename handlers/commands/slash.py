"""The /sales, /errors and /health listeners: ack with the answer, always inside Slack's 3 seconds."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.answers.commands import RENDERERS, answer, ephemeral
from bot.deps import Deps


def register(app: AsyncApp, deps: Deps) -> None:
    """Add one listener per command; each acks with its reply (the figures come under a 2 s budget)."""

    async def slash_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        msg = await answer(deps, command=command["command"], text=command.get("text") or "",
                           user_id=command.get("user_id"), channel_id=command.get("channel_id"))
        await ack(**ephemeral(msg))

    for name in RENDERERS:
        app.command(name)(slash_command)
