"""The Settings view in the local feed: `/sales settings` opens it as a form, and saving goes through the same
checks, audit and note in the alerts channel as a view_submission from Slack — the owner at the keyboard is
the admin."""

from __future__ import annotations

import asyncio
import html
import re
from typing import Any

import pytest

from bot.blocks import settings as view
from bot.settings.change import view_for
from bot.web.feed_modal import render_modal
from tests.blockkit import assert_valid_modal
from tests.conftest import Bot
from tests.settings_forms import put, state_of


async def open_in_feed(bot: Bot) -> dict[str, Any]:
    """Type `/sales settings` in the feed's command box."""
    resp = await bot.client.post("/feed/command", json={"line": "/sales settings", "channel": "sales"})
    assert resp.status == 200
    body: dict[str, Any] = await resp.json()
    return body


async def test_feed_opens_the_settings_form(local_bot: Bot) -> None:
    """The box answers `/sales settings` with the modal drawn as a form: every input a control with its block id."""
    body = await open_in_feed(local_bot)
    modal = body["modal"]
    assert modal.startswith('<form class="modal" data-callback-id="salespulse_settings" data-private-metadata="')
    for block_id in (view.TZ, view.HOURS_START, view.DAYS, view.READERS, view.severity_block("no_sales")):
        assert f'data-block-id="{block_id}"' in modal
    assert 'value="UTC"' in modal and "Save" in modal
    assert_valid_modal(view_for(local_bot.deps, "you"))


async def test_a_form_left_open_does_not_put_back_a_newer_change(local_bot: Bot) -> None:
    """The form carries what it showed (the view's private_metadata) back with its values, as Slack does: saved
    after the zone was changed elsewhere, it changes only the hours changed in it, and leaves the zone as it is."""
    modal = (await open_in_feed(local_bot))["modal"]
    shown = re.search(r'data-private-metadata="([^"]*)"', modal)
    assert shown is not None and shown.group(1)
    metadata = html.unescape(shown.group(1))
    stale = state_of(view_for(local_bot.deps, "you"))
    newer = state_of(view_for(local_bot.deps, "you"))
    put(newer, view.TZ, value="Europe/Paris")
    assert (await (await local_bot.client.post("/feed/view", json={"values": newer})).json()) == {"ok": True}
    put(stale, view.HOURS_START, selected_time="08:00")
    resp = await local_bot.client.post("/feed/view", json={"values": stale, "private_metadata": metadata})
    assert await resp.json() == {"ok": True}
    assert local_bot.deps.settings.store_timezone == "Europe/Paris"
    assert local_bot.deps.settings.business_hours.start.hour == 8


def test_form_escapes_what_it_shows() -> None:
    """Labels, hints and values are escaped: a modal's text cannot write markup into the page."""
    hostile = {"type": "modal", "title": {"type": "plain_text", "text": "<b>x</b>"}, "blocks": [
        {"type": "input", "block_id": 'a"><script>', "label": {"type": "plain_text", "text": "<img src=x>"},
         "element": {"type": "plain_text_input", "action_id": "value", "initial_value": '"><script>1</script>'}}]}
    html = render_modal(hostile)
    assert "<script>" not in html and "<img" not in html and "&lt;b&gt;x&lt;/b&gt;" in html


async def test_feed_saves_refuses_bad_input_and_posts_the_change(local_bot: Bot) -> None:
    """A bad zone comes back on its field and changes nothing; a good change is saved by `you` and posted."""
    state = state_of(view_for(local_bot.deps, "you"))
    put(state, view.TZ, value="Nowhere/Land")
    resp = await local_bot.client.post("/feed/view", json={"values": state})
    body = await resp.json()
    assert body["response_action"] == "errors" and list(body["errors"]) == [view.TZ]
    assert await local_bot.deps.pool.fetchval("SELECT count(*) FROM settings_audit") == 0
    put(state, view.TZ, value="Europe/Paris")
    resp = await local_bot.client.post("/feed/view", json={"values": state})
    assert (resp.status, await resp.json()) == (200, {"ok": True})
    assert local_bot.deps.settings.store_timezone == "Europe/Paris"
    assert await local_bot.deps.pool.fetchval("SELECT user_id FROM settings_audit") == "you"
    feed = local_bot.deps.feed
    assert feed is not None
    for _ in range(200):  # the delivery worker runs in the background here
        if any("Settings changed by you" in e.text for e in feed.messages("alerts")):
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("the change was not posted to the alerts channel")
