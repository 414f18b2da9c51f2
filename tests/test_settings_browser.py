"""The Settings view in the local feed, in headless Chromium: the ⚙️ Settings hint opens the form, a bad value
is shown on its field, a good one is saved and its note appears in the alerts channel."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.conftest import Bot

pytest_plugins = ["tests.browser"]  # the `chromium` and `screenshot` fixtures
pytestmark = pytest.mark.browser


async def test_settings_form_refuses_on_the_field_and_saves(local_bot: Bot, chromium: Any,
                                                            screenshot: Callable[..., Awaitable[Any]]) -> None:
    """Open, type an unknown zone (error under the field), fix it, save: the modal closes and #system-alerts
    shows who changed what."""
    from playwright.async_api import expect

    page = await (await chromium.new_context(viewport={"width": 1280, "height": 820})).new_page()
    await page.goto(str(local_bot.client.make_url("/")))
    await page.locator("#status.live").wait_for()
    await page.locator("button.hint[data-line='/sales settings']").click()
    form = page.locator("#modal form.modal")
    await expect(form).to_be_visible()
    await screenshot(page, "feed-settings.png")
    zone = form.locator("input[data-block-id=tz]")
    await zone.fill("Mars/Olympus")
    await form.locator("button[type=submit]").click()
    error = form.locator(".field-error[data-error-for=tz]")
    await expect(error).to_be_visible()
    assert "unknown time zone" in await error.inner_text()
    await zone.fill("Europe/Paris")
    await form.locator("input[data-block-id=hours_start]").fill("08:00")
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#modal")).to_have_count(0)
    assert local_bot.deps.settings.store_timezone == "Europe/Paris"
    assert str(local_bot.deps.settings.business_hours) == "08:00-23:59"  # local_bot opens 00:00-23:59
    await page.locator("a[data-channel=alerts]").click()
    note = page.locator(".pane[data-channel=alerts] article.msg", has_text="Settings changed by")
    await expect(note).to_have_count(1)
    assert "business hours: 00:00-23:59 → 08:00-23:59" in await note.inner_text()
