"""Settings from Slack: the view opens for admins only, refuses bad input on the field, and a saved change is
audited, posted, listed in /health and in force at once (on another replica within a second)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.alerts.rules import RuleSet
from bot.answers.gather import gather_health
from bot.answers.json_views import health_json
from bot.blocks import settings as view
from bot.config import HourWindow
from bot.home.render import render_home
from bot.settings import change
from bot.settings.values import effective
from queries.settings import lock_for_change
from tests.blockkit import assert_valid_message, assert_valid_modal, assert_valid_view
from tests.conftest import Bot, make_settings, start_bot
from tests.fakes import FakeSlack
from tests.settings_forms import ADMIN, OTHER, command, open_settings, put, state_of, submit, views_opened


@pytest.fixture
async def bot(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[Bot]:
    """The bot with one admin."""
    async with start_bot(dsn, fake_slack, SALESPULSE_ADMINS=ADMIN) as running_bot:
        yield running_bot


async def stored(bot: Bot) -> tuple[int, int]:
    """How many overrides and audit rows the database holds."""
    overrides = await bot.deps.pool.fetchval("SELECT count(*) FROM settings_overrides")
    audits = await bot.deps.pool.fetchval("SELECT count(*) FROM settings_audit")
    return overrides, audits


async def test_admin_opens_a_valid_view_with_the_values_in_force(bot: Bot) -> None:
    """`/sales settings` from an admin opens the modal, valid Block Kit, showing the environment's values."""
    opened = await open_settings(bot)
    assert_valid_modal(opened)
    assert len(opened["blocks"]) < 60  # room under Slack's 100 for rules yet to come
    state = state_of(opened)
    assert state[view.TZ]["value"]["value"] == "UTC"
    assert state[view.HOURS_START]["value"]["selected_time"] == "09:00"
    assert len(state[view.DAYS]["value"]["selected_options"]) == 7
    assert state[view.severity_block("no_sales")]["value"]["selected_option"]["value"] == "critical"
    inputs = {b["block_id"]: b["element"] for b in opened["blocks"] if b.get("block_id", "").endswith("_threshold")}
    site_down, site_slow = inputs[view.threshold_block("site_down")], inputs[view.threshold_block("site_slow")]
    assert (site_down["min_value"], site_down["max_value"], site_down["initial_value"]) == ("1", "60", "3")
    assert (site_slow["min_value"], site_slow["max_value"]) == ("0.5", "10")  # Slack's input keeps to the range


async def test_non_admin_is_told_and_no_view_opens(bot: Bot) -> None:
    """Someone not in SALESPULSE_ADMINS gets an ephemeral refusal; views.open is never called."""
    ack = await command(bot, "/sales", "settings", user=OTHER)
    assert ack["response_type"] == "ephemeral" and "Only the store's admins" in ack["text"]
    assert_valid_message(ack)
    await asyncio.sleep(0.2)  # the listener could only call Slack after acking
    assert bot.slack_api.posted("views.open") == []


async def test_a_view_slack_would_not_open_is_said_in_the_channel(bot: Bot) -> None:
    """views.open refused (the 3 s trigger expired): the admin gets an ephemeral word through the command's
    response_url, where before nothing at all appeared."""
    bot.slack_api.fail_next(1, error="expired_trigger_id", method="views.open")
    ack = await command(bot, "/sales", "settings", user=ADMIN)
    assert not ack.get("blocks")
    for _ in range(300):  # the listener goes on after the ack
        if said := [c.args for c in bot.slack_api.calls if c.method == "hook:r"]:
            break
        await asyncio.sleep(0.01)
    assert [(s["response_type"], "expired_trigger_id" in s["text"]) for s in said] == [("ephemeral", True)]
    assert_valid_message(said[0])


async def test_home_button_opens_the_view_for_admins_and_a_refusal_for_others(bot: Bot) -> None:
    """The App Home button (signed block_actions) opens the modal for an admin, a modal saying why for others."""
    for n, (user, expected) in enumerate(((ADMIN, view.CALLBACK_ID), (OTHER, None)), start=1):
        resp = await bot.button(view.OPEN_ACTION, "open", user=user, view=True)
        assert resp.status == 200
        opened = (await views_opened(bot, n))[-1]["view"]
        assert_valid_modal(opened)
        assert opened.get("callback_id") == expected
    assert "SALESPULSE_ADMINS" in opened["blocks"][0]["text"]["text"]


async def test_home_view_has_the_settings_button(bot: Bot) -> None:
    """The App Home tab carries the Settings button."""
    home = await render_home(bot.deps, buttons=True)
    assert_valid_view(home)
    ids = [e["action_id"] for b in home["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert view.OPEN_ACTION in ids


@pytest.mark.parametrize(("block_id", "entry", "says"), [
    (view.TZ, {"value": "Mars/Olympus_Mons"}, "unknown time zone"),
    (view.TZ, {"value": "localtime"}, "unknown time zone"),  # a file of this host's, not a zone every replica has
    (view.HOURS_START, {"selected_time": "25:00"}, "HH:MM"),
    (view.threshold_block("site_down"), {"value": "-1"}, "from 1 to 60"),
    (view.threshold_block("site_down"), {"value": "0"}, "from 1 to 60"),
    (view.threshold_block("site_down"), {"value": "2.5"}, "whole number"),
    (view.threshold_block("payment_failure_rate"), {"value": "1.5"}, "from 0 to 1"),
    (view.DAYS, {"selected_options": []}, "at least one"),
    (view.QUIET_START, {"selected_time": "22:00"}, None),
])
async def test_bad_input_is_refused_on_its_field_and_nothing_is_stored(bot: Bot, block_id: str,
                                                                       entry: dict[str, Any], says: str | None) -> None:
    """A wrong value comes back as response_action errors on that field; nothing is stored or audited."""
    state = state_of(await open_settings(bot))
    put(state, block_id, **entry)
    status, body = await submit(bot, state)
    assert status == 200 and body["response_action"] == "errors"
    wrong = view.QUIET_END if says is None else block_id  # quiet hours from 22:00 but until nothing
    assert list(body["errors"]) == [wrong]
    assert says is None or says in body["errors"][wrong]
    assert await stored(bot) == (0, 0)
    assert bot.deps.settings is bot.deps.live.env


@pytest.mark.parametrize("morning", ["18:00", "19:30"])
async def test_a_morning_report_not_before_the_evening_one_is_refused(bot: Bot, morning: str) -> None:
    """The morning report covers the night since the evening one: at or after it, the evening field says why."""
    state = state_of(await open_settings(bot))
    put(state, view.MORNING, selected_time=morning)
    status, body = await submit(bot, state)
    assert status == 200 and body["response_action"] == "errors"
    assert list(body["errors"]) == [view.EVENING] and "after the morning report" in body["errors"][view.EVENING]
    assert await stored(bot) == (0, 0)


@pytest.mark.parametrize("stored", [{"MORNING_REPORT_AT": "19:00"},  # saved before the rule, env evening 18:00
                                    {"MORNING_REPORT_AT": "12:00", "EVENING_REPORT_AT": "12:00"}])
def test_stored_report_times_out_of_order_leave_the_environments_pair(stored: dict[str, str]) -> None:
    """Stored values skip Settings' validators (model_copy): a morning time not before the evening one, saved before
    the rule or by two admins a field each, is ignored, and the environment's 09:00 and 18:00 stand."""
    settings, _ = effective(make_settings(), RuleSet(), stored)
    assert (settings.morning_report_at, settings.evening_report_at) == (dt.time(9), dt.time(18))


async def test_forged_submission_from_a_non_admin_changes_nothing(bot: Bot) -> None:
    """A view_submission signed by Slack but from someone not an admin is answered with the refusal view."""
    state = state_of(await open_settings(bot))
    put(state, view.TZ, value="Europe/Paris")
    status, body = await submit(bot, state, user=OTHER)
    assert status == 200 and body["response_action"] == "update"
    assert_valid_modal(body["view"])
    assert await stored(bot) == (0, 0) and bot.deps.settings.store_timezone == "UTC"


async def test_unchanged_submission_stores_nothing(bot: Bot) -> None:
    """Saving the view as it opened changes nothing: the environment stays the default, nothing audited."""
    status, body = await submit(bot, state_of(await open_settings(bot)))
    assert (status, body) == (200, {})
    assert await stored(bot) == (0, 0) and bot.deps.settings is bot.deps.live.env


async def test_change_is_audited_posted_shown_in_health_and_in_force(bot: Bot) -> None:
    """Business hours 09:00-21:00 → 08:00-20:00: one audit row, a message in the alerts channel, /health lists it."""
    state = state_of(await open_settings(bot))
    put(state, view.HOURS_START, selected_time="08:00")
    put(state, view.HOURS_END, selected_time="20:00")
    assert await submit(bot, state) == (200, {})
    assert bot.deps.settings.business_hours == HourWindow(dt.time(8), dt.time(20))
    row = await bot.deps.pool.fetchrow("SELECT user_id, key, before, after FROM settings_audit")
    assert dict(row) == {"user_id": ADMIN, "key": "BUSINESS_HOURS", "before": "09:00-21:00", "after": "08:00-20:00"}
    await bot.drain(ignore_pace=True)
    posted = [m for m in bot.slack_api.messages if m["channel_id"] == "C0ALERTS"]
    assert [m["text"] for m in posted] == [f"Settings changed by <@{ADMIN}>: business hours 09:00-21:00 → 08:00-20:00"]
    assert f"<@{ADMIN}>" in str(bot.slack_api.posted()[-1]["blocks"])  # a live mention in the blocks
    assert_valid_message(bot.slack_api.posted()[-1])
    health = await command(bot, "/health", "", user=ADMIN)
    assert "BUSINESS_HOURS" in str(health["blocks"]) and "08:00-20:00" in str(health["blocks"])
    assert_valid_message(health)
    listed = health_json(await gather_health(bot.deps))["components"]["settings"]
    assert listed["from_slack"] == {"BUSINESS_HOURS": "08:00-20:00"}
    assert [(c["user"], c["before"], c["after"]) for c in listed["recent_changes"]] == [
        (ADMIN, "09:00-21:00", "08:00-20:00")]
    reopened = state_of(await open_settings(bot))
    assert reopened[view.HOURS_START]["value"]["selected_time"] == "08:00"


async def test_a_save_held_up_past_slacks_deadline_says_so_on_the_form(bot: Bot,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Another change holds the settings lock (or the database is slow): past the save's budget the modal answers
    in time with an error on its first field instead of Slack's "trouble connecting", and nothing is stored."""
    monkeypatch.setattr(change, "SAVE_BUDGET", 0.3)
    state = state_of(await open_settings(bot))
    put(state, view.TZ, value="Europe/Paris")
    async with bot.deps.pool.acquire() as conn, conn.transaction():
        await lock_for_change(conn)  # held, as a slow change on another replica would
        status, body = await submit(bot, state)
    assert status == 200 and body["response_action"] == "errors"
    assert list(body["errors"]) == [change.SAVE_ERROR_BLOCK] and "reopen Settings" in body["errors"][
        change.SAVE_ERROR_BLOCK]
    assert await stored(bot) == (0, 0) and bot.deps.settings.store_timezone == "UTC"
    assert await submit(bot, state) == (200, {})  # once the lock is free, the same submission saves
    assert bot.deps.settings.store_timezone == "Europe/Paris"


async def test_back_to_the_default_deletes_the_override(bot: Bot) -> None:
    """Setting a value back to the environment's removes the stored row (the environment is the default again)."""
    state = state_of(await open_settings(bot))
    put(state, view.TZ, value="Europe/Paris")
    await submit(bot, state)
    assert bot.deps.settings.store_timezone == "Europe/Paris" and (await stored(bot))[0] == 1
    state = state_of(await open_settings(bot))  # a saved view closes: the next change is made in a new one
    put(state, view.TZ, value="UTC")
    await submit(bot, state)
    assert await stored(bot) == (0, 2) and bot.deps.settings.store_timezone == "UTC"
