"""App Home after a reader is removed in Settings: their tab loses the figures even when Slack fails one call of the
refresh round (found by a review helper)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks import settings as view
from bot.home import publisher
from bot.home.publisher import HomePublisher
from tests.conftest import Bot, paid_checkout, start_bot
from tests.fakes import FakeSlack
from tests.settings_forms import ADMIN, OTHER, open_settings, put, state_of, submit

REVENUE = "1,234.56"


def last_view(slack: FakeSlack, user: str) -> str:
    """The view Slack last accepted for `user`: what their Home tab shows now."""
    views = [c.args["view"] for c in slack.calls
             if c.method == "views.publish" and c.answered == 200 and c.args.get("user_id") == user]
    return json.dumps(views[-1]) if views else ""


async def until_shown(slack: FakeSlack, user: str, *, revenue: bool, within: float) -> bool:
    """Wait until `user`'s Home shows the revenue (or no longer does); whether it came to that in time."""
    for _ in range(int(within / 0.05)):
        if (REVENUE in last_view(slack, user)) is revenue:
            return True
        await asyncio.sleep(0.05)
    return False


async def both_see_figures(bot: Bot, slack: FakeSlack, viewers: tuple[str, str]) -> None:
    """A sale, then each viewer opens Home in turn (everyone reads revenue by default) and sees it."""
    bot.deps.home.quiet = 0.2
    bot.deps.home.client.timeout = 1  # type: ignore[union-attr]  # a slow answer times out in 1 s, not 10
    sale = paid_checkout(1, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5), amount=123456)
    assert (await bot.stripe(sale)).status == 200
    for user in viewers:
        await bot.slack_event({"type": "app_home_opened", "user": user, "channel": "D1", "tab": "home"})
        assert await until_shown(slack, user, revenue=True, within=4)


async def remove_other_from_readers(bot: Bot) -> None:
    """The admin narrows the revenue readers to themself through the Settings modal."""
    state = state_of(await open_settings(bot))
    put(state, view.READERS, selected_users=[ADMIN])
    assert await submit(bot, state) == (200, {})
    assert not bot.deps.access.reads_revenue(OTHER, None)


async def test_a_removed_reader_loses_the_figures_though_another_viewers_publish_times_out(
        dsn: str, fake_slack: FakeSlack) -> None:
    """The round publishes to whoever may no longer see figures first: the admin (the newest viewer) timing out
    does not leave the removed reader's figures up."""
    async with start_bot(dsn, fake_slack, SALESPULSE_ADMINS=ADMIN) as bot:
        await both_see_figures(bot, fake_slack, (OTHER, ADMIN))
        fake_slack.fail_next(1, accept=True, delay=2, method="views.publish")
        await remove_other_from_readers(bot)
        assert await until_shown(fake_slack, OTHER, revenue=False, within=6)


async def test_a_removed_readers_failed_publish_is_tried_again(dsn: str, fake_slack: FakeSlack) -> None:
    """Slack's one 500 on the publish that hides the removed reader's figures is retried in the next round."""
    async with start_bot(dsn, fake_slack, SALESPULSE_ADMINS=ADMIN) as bot:
        await both_see_figures(bot, fake_slack, (ADMIN, OTHER))
        fake_slack.fail_next(1, status=500, method="views.publish")
        await remove_other_from_readers(bot)
        assert await until_shown(fake_slack, OTHER, revenue=False, within=6)
        assert any(c.method == "views.publish" and c.answered == 500 for c in fake_slack.calls)


async def test_a_publish_that_keeps_failing_is_tried_a_bounded_number_of_times(
        fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Slack failing every views.publish: the round is redone MAX_RETRY_ROUNDS times, then waits for a change, whose
    round gets as many tries again."""
    monkeypatch.setattr(publisher, "PUBLISHES_PER_MINUTE", 60_000)
    home = HomePublisher(client=AsyncWebClient(token="xoxb-test", base_url=fake_slack.url), quiet=0.01,
                         max_delay=0.02)

    async def render(buttons: bool) -> dict[str, Any]:
        return {"type": "home", "blocks": []}

    async def responder(_user: str) -> bool:
        return False

    home.bind(render, restricted={"type": "home", "blocks": []}, may_see=lambda _user: True, may_act=responder)
    await home.opened("U1")
    fake_slack.fail_next(100, status=500, method="views.publish")
    loop = asyncio.create_task(home.run())
    try:
        home.changed()
        await asyncio.sleep(1.0)
        assert home.rounds == 1 + publisher.MAX_RETRY_ROUNDS
        home.changed()  # new figures after the tries ran out: their round is tried as many times again
        await asyncio.sleep(1.0)
        assert home.rounds == 2 * (1 + publisher.MAX_RETRY_ROUNDS)
    finally:
        loop.cancel()
