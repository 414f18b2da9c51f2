"""The Settings view: the App Home button opens it, and its submission is checked and saved (admins only)."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.blocks.settings import CALLBACK_ID, OPEN_ACTION
from bot.deps import Deps
from bot.settings.change import open_view, submit


def register(app: AsyncApp, deps: Deps) -> None:
    """Add the button and the view_submission listeners."""

    @app.action(OPEN_ACTION)
    async def open_settings(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        # A non-admin gets a modal saying why: a Home tab click has no other way to answer.
        await open_view(deps, user=(body.get("user") or {}).get("id"), trigger_id=str(body.get("trigger_id")))

    @app.view(CALLBACK_ID)
    async def settings_submitted(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        reply = await submit(deps, user=(body.get("user") or {}).get("id"),
                             state=(view.get("state") or {}).get("values") or {},
                             metadata=view.get("private_metadata"))
        await ack(**reply) if reply is not None else await ack()
