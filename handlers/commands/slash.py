"""The /sales, /errors and /health listeners: ack with the answer, always inside Slack's 3 seconds.

`/sales settings` opens the Settings view instead (admins; others are told why)."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.affiliation import of_command
from bot.answers.commands import RENDERERS, answer, ephemeral
from bot.blocks.settings import denied_message, settings_not_opened
from bot.deps import Deps
from bot.settings.change import is_settings_command, open_view
from bot.web.signin import ORIGIN


def register(app: AsyncApp, deps: Deps) -> None:
    """Add one listener per command; each acks with its reply (the figures come under a 2 s budget)."""

    async def slash_command(ack: AsyncAck, respond: AsyncRespond, command: dict[str, Any],
                            context: dict[str, Any]) -> None:
        user = command.get("user_id")
        if is_settings_command(command["command"], command.get("text") or ""):
            if not deps.access.administers(user):
                await ack(**ephemeral(denied_message()))
                return
            await ack()  # views.open's trigger_id is good for 3 s: open right after acking
            if (why := await open_view(deps, user=user, trigger_id=str(command.get("trigger_id")))) is not None:
                await respond(**ephemeral(settings_not_opened(why)))
            return
        outsider = await deps.access.outsider(of_command(command))
        msg = await answer(deps, command=command["command"], text=command.get("text") or "", user_id=user,
                           channel_id=command.get("channel_id"), origin=context.get(ORIGIN), outsider=outsider)
        await ack(**ephemeral(msg))

    for name in RENDERERS:
        app.command(name)(slash_command)
