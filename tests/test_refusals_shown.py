"""A key Stripe refuses, and a Slack scope an install lacks, are said where the owner looks (each test seen failing
before its fix): the discounts job and the Events API poll say a refusal once and ask again hourly, as the fees and
open-checkouts jobs do; /health and the dashboard name the permission a refused job needs; `salespulse check` lists
the permissions the key lacks; a team.info refused for want of team:read shows in /health and check."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.affiliation import Affiliation, Org
from bot.answers.gather import gather_health
from bot.cli.main import main
from bot.stripe.discount_job import DiscountJob
from bot.stripe.job import StripeSyncJob
from bot.stripe.open_checkouts import OpenCheckoutsJob
from bot.stripe.settle_job import SettlementJob
from bot.web.health_view import health_items
from tests.blockkit import assert_valid_message
from tests.conftest import Bot, FakeClock, start_bot
from tests.fake_stripe import API_KEY, FakeStripe
from tests.fakes import FakeSlack
from tests.test_slack_connect import grid_slack  # noqa: F401  # a fixture
from tests.test_subscriptions import post
from tests.test_tiered_prices_mrr import NOW, T0, VOLUME, seats_event, tiered_price

UTC = ZoneInfo("UTC")
TEAM_READ = "Slack scope team:read missing: reinstall the app so people of your organisation's other workspaces can act"


async def health_text(bot: Bot) -> str:
    """What /health shows, validated."""
    body = await bot.command("/health")
    assert_valid_message(body)
    return json.dumps(body["blocks"], ensure_ascii=False)


async def dashboard(bot: Bot) -> list[dict[str, str]]:
    """The dashboard's Health card items."""
    return health_items(await gather_health(bot.deps), UTC)


def said(caplog: pytest.LogCaptureFixture, logger: str) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == logger]


# 1. The discounts job (every 10 s) and the Events API poll (every minute) say a refusal once, ask hourly.

async def test_a_key_without_prices_read_is_said_once_by_the_discounts_job_and_asked_again_hourly(
        dsn: str, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    """A tiered price the key may not read (403): a minute of ticks logged an ERROR and asked Stripe every 10 s.
    Now: one WARNING naming Prices: read, no ask before the hour, and "answers again" once granted."""
    caplog.set_level(logging.INFO)
    clock = FakeClock(NOW)
    price = tiered_price("price_seats_volume", "volume", VOLUME)
    async with FakeStripe(forbidden={"/v1/prices/price_seats_volume"}) as stripe, \
            start_bot(dsn, fake_slack, clock=clock, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=stripe.url) as bot:
        stripe.prices[price["id"]] = price
        await post(bot, seats_event("created", "sub_1REFUSED", price, 6, at=T0, n=1))
        job = DiscountJob(bot.deps)
        caplog.clear()
        for _ in range(6):
            await job.tick()
            clock.advance(seconds=10)
        asks = len([r for r in stripe.requests if r.path.startswith("/v1/prices/")])
        shown = await health_text(bot)
        stripe.forbidden.clear()
        clock.advance(hours=1)
        assert await job.tick() == 1
        after = await health_text(bot)
    lines = said(caplog, "bot.stripe.discount_job")
    assert asks == 1, f"asked Stripe {asks} times in a minute"
    assert [level for level, _ in lines] == ["WARNING", "INFO"], lines
    assert "Prices: read" in lines[0][1] and "answers again" in lines[1][1]
    assert "🟡 *Stripe discounts*" in shown and "Prices: read" in shown, shown
    assert "Stripe discounts" not in after


async def test_the_events_api_poll_says_a_refusal_once_keeps_it_in_health_and_asks_hourly(
        dsn: str, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    """A key without Events: read: the poll logged an ERROR every minute and asked every minute. Now it says it once,
    asks again after the hour, and /health keeps showing the refusal meanwhile (its record stands)."""
    caplog.set_level(logging.INFO)
    clock = FakeClock(dt.datetime.now(dt.UTC))
    async with FakeStripe(forbidden={"/v1/events"}) as stripe, \
            start_bot(dsn, fake_slack, clock=clock, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=stripe.url) as bot:
        job = StripeSyncJob(bot.deps)
        caplog.clear()
        for _ in range(5):
            assert await job.tick() is None
            clock.advance(minutes=1)
        asks = len([r for r in stripe.requests if r.path == "/v1/events"])
        shown = await health_text(bot)
        stripe.forbidden.clear()
        clock.advance(hours=1)
        assert await job.tick() is not None
        after = await health_text(bot)
    lines = said(caplog, "bot.stripe.job")
    assert asks == 1, f"asked Stripe {asks} times in five minutes"
    assert [level for level, _ in lines] == ["WARNING", "INFO"], lines
    assert "Events: read" in lines[0][1] and "answers again" in lines[1][1]
    assert "🔴 *Stripe Events API*" in shown and "Events: read" in shown, shown
    assert "failing" not in after


# 2. A refused fees or open-checkouts job shows in /health and on the dashboard, naming the permission.

async def test_health_names_the_permission_the_fees_and_open_checkouts_jobs_are_refused(
        dsn: str, fake_slack: FakeSlack) -> None:
    clock = FakeClock(NOW)
    async with FakeStripe(forbidden={"/v1/account", "/v1/checkout/sessions"}) as stripe, \
            start_bot(dsn, fake_slack, clock=clock, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=stripe.url) as bot:
        fees, checkouts = SettlementJob(bot.deps), OpenCheckoutsJob(bot.deps)
        await fees.tick()
        await checkouts.tick()
        shown, card = await health_text(bot), await dashboard(bot)
        stripe.forbidden.clear()
        clock.advance(hours=1, minutes=1)
        await fees.tick()
        await checkouts.tick()
        after, card_after = await health_text(bot), await dashboard(bot)
    assert "🟡 *Stripe fees* Stripe refuses the key" in shown and "Account: read" in shown \
        and "STORE_CURRENCY" in shown, shown
    assert "🟡 *Stripe open checkouts* Stripe refuses the key" in shown and "Checkout Sessions: read" in shown
    assert {(i["name"], i["level"]) for i in card} >= {("Stripe fees", "warn"), ("Stripe open checkouts", "warn")}
    assert any("Account: read" in i["text"] for i in card), card
    assert "refuses" not in after and not [i for i in card_after if "refuses" in i["text"]]


async def test_check_lists_the_permissions_the_key_lacks(dsn: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """`salespulse check` said "polls … every minute" whatever the key may read; it now asks each resource the
    product reads (limit=1) and names what the key lacks; without Events: read nothing works: exit 1."""
    monkeypatch.chdir(tmp_path)
    async with FakeStripe(forbidden={"/v1/account", "/v1/checkout/sessions"}) as stripe:
        for name, value in {"DATABASE_URL": dsn, "STRIPE_API_KEY": API_KEY, "STRIPE_API_URL": stripe.url}.items():
            monkeypatch.setenv(name, value)
        assert await asyncio.to_thread(main, ["check"]) == 0
        out = capsys.readouterr().out
        stripe.forbidden = {"/v1/events"}
        assert await asyncio.to_thread(main, ["check"]) == 1
        without_events = capsys.readouterr().out
        assert {r.method for r in stripe.requests} == {"GET"}
    lacks = [line for line in out.splitlines() if "lacks" in line]
    assert any("Checkout Sessions: read" in line for line in lacks), out
    assert any("Account: read" in line and "STORE_CURRENCY" in line for line in lacks), out
    assert not any("Events: read" in line for line in lacks), out
    assert "PROBLEM" in without_events and "Events: read" in without_events, without_events


# 3. team:read missing on Enterprise Grid: sister workspaces refused, said in /health and check.

async def test_a_team_info_refused_for_want_of_team_read_shows_in_health(
        dsn: str, grid_slack: FakeSlack) -> None:  # noqa: F811  # the fixture imported above
    grid_slack.fail_next(1, error="missing_scope", method="team.info")
    async with start_bot(dsn, grid_slack) as bot:
        assert TEAM_READ not in await health_text(bot)
        sister = Affiliation(actor=Org(team_id="T0SISTER"), installation=Org(team_id="T000", enterprise_id="E000"))
        assert await bot.deps.access.outsider(sister)  # refused: Slack did not place the workspace
        shown, card = await health_text(bot), await dashboard(bot)
    assert TEAM_READ in shown, shown
    assert any(i["level"] == "bad" and TEAM_READ in i["text"] for i in card), card


async def test_check_says_team_read_is_missing_on_grid(dsn: str, grid_slack: FakeSlack,  # noqa: F811  # fixture
                                                       monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in {"DATABASE_URL": dsn, "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "s",
                        "SLACK_API_URL": grid_slack.url}.items():
        monkeypatch.setenv(name, value)
    grid_slack.fail_next(1, error="missing_scope", method="team.info")
    assert await asyncio.to_thread(main, ["check"]) == 1
    out = capsys.readouterr().out
    assert TEAM_READ in out, out
    assert await asyncio.to_thread(main, ["check"]) == 0  # granted (the fake answers team.info again)
    assert TEAM_READ not in capsys.readouterr().out
