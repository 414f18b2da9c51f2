"""Saving the Settings view: a modal opened before another admin's change saves only what its admin changed (and
refuses a field both changed), and a precise threshold reads back exactly, so an untouched save changes nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest

from bot.blocks import settings as view
from tests.conftest import Bot, start_bot
from tests.fakes import FakeSlack
from tests.settings_forms import ADMIN, open_settings, put, state_of, submit

ADMIN2 = "UADMIN02"


@pytest.fixture
async def bot(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[Bot]:
    """The bot with two admins."""
    async with start_bot(dsn, fake_slack, SALESPULSE_ADMINS=f"{ADMIN},{ADMIN2}") as running_bot:
        yield running_bot


async def audit(bot: Bot) -> list[tuple[str, str, object, object]]:
    """(user, key, before, after) of every audited change, oldest first."""
    return [tuple(r) for r in await bot.deps.pool.fetch(  # type: ignore[misc]  # rows of known width
        "SELECT user_id, key, before, after FROM settings_audit ORDER BY id")]


def threshold_shown(opened: dict[str, object], rule: str) -> str:
    """The initial value of a rule's threshold input in an opened view."""
    blocks = opened["blocks"]
    assert isinstance(blocks, list)
    block = next(b for b in blocks if b.get("block_id") == view.threshold_block(rule))
    value: str = block["element"]["initial_value"]
    return value


async def test_a_second_admins_save_does_not_revert_the_first_admins_change(bot: Bot) -> None:
    """Two admins open Settings; the first changes the time zone and saves; the second changes only business
    hours and saves. The time zone stays as the first admin set it, and only the hours are audited for the
    second."""
    opened = await open_settings(bot, user=ADMIN)
    assert 0 < len(opened["private_metadata"]) <= 3000  # what it showed, within Slack's limit
    first, second = state_of(opened), state_of(await open_settings(bot, user=ADMIN2))
    put(first, view.TZ, value="Europe/Paris")
    assert await submit(bot, first, user=ADMIN) == (200, {})
    assert bot.deps.settings.store_timezone == "Europe/Paris"
    put(second, view.HOURS_START, selected_time="08:00")
    assert await submit(bot, second, user=ADMIN2) == (200, {})
    assert bot.deps.settings.business_hours.start == dt.time(8)
    assert bot.deps.settings.store_timezone == "Europe/Paris"
    assert await audit(bot) == [(ADMIN, "STORE_TIMEZONE", "UTC", "Europe/Paris"),
                                (ADMIN2, "BUSINESS_HOURS", "09:00-21:00", "08:00-21:00")]


async def test_a_field_both_admins_changed_is_refused_on_that_field(bot: Bot) -> None:
    """Both admins change the time zone from views opened at once: the second save is refused on the time zone
    field, naming who changed it, and nothing of it is saved (its other change neither)."""
    first, second = state_of(await open_settings(bot, user=ADMIN)), state_of(await open_settings(bot, user=ADMIN2))
    put(first, view.TZ, value="Europe/Paris")
    assert await submit(bot, first, user=ADMIN) == (200, {})
    put(second, view.TZ, value="Asia/Tokyo")
    put(second, view.HOURS_START, selected_time="08:00")
    assert await submit(bot, second, user=ADMIN2) == (200, {"response_action": "errors", "errors": {
        view.TZ: f"Changed by <@{ADMIN}> since you opened this; reopen Settings to see it."}})
    assert (bot.deps.settings.store_timezone, bot.deps.settings.business_hours.start) == ("Europe/Paris", dt.time(9))
    assert len(await audit(bot)) == 1
    again = state_of(await open_settings(bot, user=ADMIN2))  # reopened: the change goes through
    put(again, view.TZ, value="Asia/Tokyo")
    assert await submit(bot, again, user=ADMIN2) == (200, {})
    assert bot.deps.settings.store_timezone == "Asia/Tokyo"


async def test_a_threshold_changed_twice_is_refused_on_its_threshold_field(bot: Bot) -> None:
    """A rule's threshold changed by another admin since the view opened: the error is on the threshold input."""
    first, second = state_of(await open_settings(bot, user=ADMIN)), state_of(await open_settings(bot, user=ADMIN2))
    put(first, view.threshold_block("site_slow"), value="7")
    assert await submit(bot, first, user=ADMIN) == (200, {})
    put(second, view.threshold_block("site_slow"), value="9")
    status, body = await submit(bot, second, user=ADMIN2)
    assert (status, list(body.get("errors", {}))) == (200, [view.threshold_block("site_slow")])


async def test_saving_the_view_untouched_keeps_a_precise_threshold(bot: Bot) -> None:
    """An admin sets the payment failure rate threshold to 0.1234567 and the site-slow one to 9.8765432; later
    someone saves the view changing only business hours: neither threshold changes (nor is audited)."""
    state = state_of(await open_settings(bot))
    put(state, view.threshold_block("payment_failure_rate"), value="0.1234567")
    put(state, view.threshold_block("site_slow"), value="9.8765432")  # at most 10 s, the probe's timeout
    assert await submit(bot, state) == (200, {})
    opened = await open_settings(bot)
    assert (threshold_shown(opened, "payment_failure_rate"), threshold_shown(opened, "site_slow")) == (
        "0.1234567", "9.8765432")
    again = state_of(opened)
    put(again, view.HOURS_START, selected_time="08:00")
    assert await submit(bot, again) == (200, {})
    rules = {r.name: r.threshold for r in bot.deps.rules.rules}
    assert (rules["payment_failure_rate"], rules["site_slow"]) == (0.1234567, 9.8765432)
    assert sorted(key for _, key, _, _ in await audit(bot)) == [
        "BUSINESS_HOURS", "rule:payment_failure_rate", "rule:site_slow"]
