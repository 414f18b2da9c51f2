"""Test helpers for the Settings view: what Slack submits for a view, signed, and how to open one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from bot.blocks.settings import CALLBACK_ID
from tests.conftest import Bot

ADMIN = "UADMIN01"
OTHER = "UOTHER01"

_SELECTED = {"timepicker": ("selected_time", "initial_time", None),
             "plain_text_input": ("value", "initial_value", None),
             "number_input": ("value", "initial_value", None),
             "checkboxes": ("selected_options", "initial_options", []),
             "static_select": ("selected_option", "initial_option", None),
             "conversations_select": ("selected_conversation", "initial_conversation", None),
             "multi_users_select": ("selected_users", "initial_users", [])}


class FormState(dict[str, dict[str, dict[str, Any]]]):
    """`view.state.values`, and the view's `private_metadata`, which Slack sends back with it."""

    metadata: str = ""


def state_of(view: Mapping[str, Any]) -> FormState:
    """`view.state.values` as Slack submits a view nobody touched: each input at its initial value."""
    state = FormState()
    state.metadata = str(view.get("private_metadata") or "")
    for block in view["blocks"]:
        if block["type"] != "input":
            continue
        element = block["element"]
        key, initial, empty = _SELECTED[element["type"]]
        state[block["block_id"]] = {element["action_id"]: {"type": element["type"],
                                                           key: element.get(initial, empty)}}
    return state


def put(state: dict[str, dict[str, dict[str, Any]]], block_id: str, **entry: Any) -> None:
    """Change one input, as a person would before submitting."""
    (only,) = state[block_id].values()
    only.update(entry)


async def submit(bot: Bot, state: Mapping[str, Any], *, user: str = ADMIN,
                 metadata: str | None = None) -> tuple[int, dict[str, Any]]:
    """POST a signed view_submission of the Settings view (with the private_metadata of the view `state` came
    from, unless `metadata` is given); the status and the ack body ({} when empty)."""
    sent = getattr(state, "metadata", "") if metadata is None else metadata
    payload = {"type": "view_submission", "team": {"id": "T000"}, "user": {"id": user}, "api_app_id": "A1",
               "token": "legacy", "trigger_id": "1.2.3",
               "view": {"id": "V1", "type": "modal", "callback_id": CALLBACK_ID, "hash": "1.a",
                        "private_metadata": sent, "state": {"values": state}}}
    resp = await bot.slack({"payload": json.dumps(payload)})
    body = await resp.text()
    return resp.status, json.loads(body) if body.strip() else {}


async def command(bot: Bot, name: str, text: str, *, user: str) -> dict[str, Any]:
    """Type a slash command (signed); the ack body, {} when Bolt acked with nothing."""
    resp = await bot.slack({"command": name, "text": text, "user_id": user, "user_name": "someone",
                            "channel_id": "C123", "team_id": "T000", "team_domain": "store", "token": "legacy",
                            "trigger_id": "1.2.3", "response_url": bot.slack_api.url.replace("/api/", "/hooks/r")})
    assert resp.status == 200, await resp.text()
    body = await resp.text()
    return json.loads(body) if body.strip() else {}


async def open_settings(bot: Bot, *, user: str = ADMIN) -> dict[str, Any]:
    """Type `/sales settings` and return the view opened with views.open (the ack must be empty)."""
    before = len(bot.slack_api.posted("views.open"))
    ack = await command(bot, "/sales", "settings", user=user)
    assert not ack.get("blocks"), ack
    opened = await views_opened(bot, before + 1)
    assert opened[-1]["trigger_id"] == "1.2.3"
    view: dict[str, Any] = opened[-1]["view"]
    return view


async def views_opened(bot: Bot, count: int, *, within: float = 3.0) -> list[dict[str, Any]]:
    """The views.open calls once there are `count` (Bolt answers on ack; the listener goes on after it)."""
    for _ in range(int(within / 0.01)):
        opened = bot.slack_api.posted("views.open")
        if len(opened) >= count:
            return opened
        await asyncio.sleep(0.01)
    raise AssertionError(f"views.open was called {len(bot.slack_api.posted('views.open'))} times, not {count}")
