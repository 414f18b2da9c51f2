"""Three follow-ups: the local feed draws a user-group mention as `@S0ONCALL` (or its handle), not as the word
"subteam"; a channel whose join failed for Slack's own trouble is described as tried again, not as needing an
/invite; /api/monitoring/sales carries the tiered subscriptions MRR leaves out without STRIPE_API_KEY."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from bot.answers.mrr_json import subscriptions_json
from bot.blocks.settings import ChangeLine, changes_message
from bot.delivery.standing import ChannelStatus, Membership
from bot.stripe.discount_job import DiscountJob
from bot.web.feed_render import mrkdwn, render_message
from bot.web.signin import COOKIE
from queries.mrr import MrrFigures, MrrSummary
from tests.conftest import start_bot
from tests.fake_stripe import FakeStripe
from tests.fakes import FakeSlack
from tests.test_dashboard import session_cookie, sign_in
from tests.test_home import publishes
from tests.test_mrr_display_fixes import ROWS, fake, just_now
from tests.test_subscriptions import post
from tests.test_tiered_prices_mrr import seats_event, tiered_price

__all__ = ["fake"]  # the fake Stripe API fixture, used by name

INVITE = "/invite @salespulse"
TOKEN = "small-followups-token-long-enough"
NOW = dt.datetime(2026, 12, 7, 15, 0, tzinfo=dt.UTC)


# 1. The local feed and user-group mentions.

@pytest.mark.parametrize(("source", "expected"), [
    ("<!subteam^S0ONCALL>", '<span class="mention">@S0ONCALL</span>'),
    ("<!subteam^S0ONCALL|@oncall>", '<span class="mention">@oncall</span>'),
    ("<!subteam^S0ONCALL|oncall>", '<span class="mention">@oncall</span>'),
    ('<!subteam^S0ONCALL|@a&amp;b"c>', '<span class="mention">@a&amp;b&quot;c</span>'),
])
def test_the_feed_draws_a_user_group_mention_by_its_id_or_handle(source: str, expected: str) -> None:
    assert mrkdwn(source) == expected


def test_a_settings_change_note_shows_its_group_in_the_feed() -> None:
    """A settings-change note naming a group picked as responders reads `@S0OPS` in the feed, as in Slack."""
    msg = changes_message("U0ADMIN", [ChangeLine("Alert responders", "<@U0OLD>", "<@U0NEW>, <!subteam^S0OPS>",
                                                 people=("U0OLD", "U0NEW", "S0OPS"))])
    html = render_message(msg.text, msg.blocks)
    assert '<span class="mention">@S0OPS</span>' in html, html
    assert "subteam" not in html, html


# 2. A join failed for Slack's own trouble is tried again, not an /invite away.

@pytest.mark.parametrize(("error", "shown"), [
    ("internal_error", "Slack: internal_error"), ("ratelimited", "Slack: ratelimited"),
    ("service_unavailable", "Slack: service_unavailable"), ("http_502", "Slack: http_502"),
    ("no answer: TimeoutError: ", "no answer from Slack: TimeoutError"),
])
def test_a_temporary_join_failure_says_it_is_tried_again(error: str, shown: str) -> None:
    status = ChannelStatus("sales", "#sales", Membership.JOIN_FAILED, "C0SALES", "sales", error=error)
    text = status.describe()
    assert f"#sales is public but the bot could not join yet ({shown}); trying again with the next post" in text
    assert INVITE not in text, text


@pytest.mark.parametrize("error", ["missing_scope", "ekm_access_denied", "not_allowed_token_type"])
def test_a_refused_join_still_asks_for_an_invitation(error: str) -> None:
    status = ChannelStatus("sales", "#sales", Membership.JOIN_FAILED, "C0SALES", "sales", error=error)
    text = status.describe()
    assert f"could not join ({error})" in text and INVITE in text and "trying again" not in text, text


async def test_health_home_and_dashboard_say_a_join_slack_failed_is_tried_again(dsn: str,
                                                                                fake_slack: FakeSlack) -> None:
    """conversations.join answered internal_error at start-up: /health, App Home and the dashboard's Health card
    say the join is tried again with the next post, and none asks for an /invite."""
    fake_slack.fail_next(3, method="conversations.join", error="internal_error")  # every start-up join
    async with start_bot(dsn, fake_slack, MONITORING_TOKEN=TOKEN) as bot:
        assert bot.deps.channels is not None
        status = bot.deps.channels.find("sales")
        assert status is not None and status.membership is Membership.JOIN_FAILED
        shown = {"/health": json.dumps((await bot.command("/health"))["blocks"], ensure_ascii=False)}
        await bot.slack_event({"type": "app_home_opened", "user": "U_OWNER", "channel": "D1", "tab": "home"})
        [call] = await publishes(bot, 1)
        shown["App Home"] = json.dumps(call["view"]["blocks"], ensure_ascii=False)
        cookie = session_cookie(await sign_in(bot, TOKEN)).value
        data: Any = await (await bot.client.get("/dashboard/data", cookies={COOKIE: cookie})).json()
        [item] = [h for h in data["view"]["health"] if h["name"] == "Slack channel sales"]
        shown["dashboard"] = item["text"]
    for where, text in shown.items():
        assert "could not join yet (Slack: internal_error); trying again with the next post" in text, (where, text)
        assert INVITE not in text, (where, text)


# 3. /api/monitoring/sales and the tiered subscriptions MRR leaves out.

def test_the_mrr_json_carries_the_tiered_subscriptions_left_out() -> None:
    figures = MrrFigures("USD", 8000, 0, 8000, 0, 0, 0, 0, 0, 1)
    summary = MrrSummary(since=NOW - dt.timedelta(days=30), now=NOW, currencies=(figures,), tiers_unread=3)
    body = subscriptions_json(summary)
    assert body is not None and body["tiers_unread"] == 3
    none = subscriptions_json(MrrSummary(since=NOW - dt.timedelta(days=30), now=NOW, currencies=(figures,)))
    assert none is not None and none["tiers_unread"] == 0


async def test_the_sales_api_says_how_many_tiered_subscriptions_mrr_leaves_out(dsn: str, fake_slack: FakeSlack,
                                                                              fake: FakeStripe) -> None:
    """No STRIPE_API_KEY: two subscriptions on a tiered price stay out of MRR; the JSON says so, as /sales does."""
    price = tiered_price("price_seats_json", "volume", ROWS)
    async with start_bot(dsn, fake_slack, STRIPE_API_URL=fake.url, MONITORING_TOKEN=TOKEN) as bot:
        for n, sub in enumerate(("sub_1JSONA", "sub_1JSONB")):
            await post(bot, seats_event("created", sub, price, 10, at=just_now() + n, n=n))
        assert await DiscountJob(bot.deps).tick() is None
        resp = await bot.client.get("/api/monitoring/sales", headers={"Authorization": f"Bearer {TOKEN}"})
        assert resp.status == 200
        body = await resp.json()
    assert body["subscriptions"]["tiers_unread"] == 2, body["subscriptions"]
