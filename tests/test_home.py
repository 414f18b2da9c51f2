"""The App Home tab against the fake Slack: publish on open, one debounced refresh per burst, valid views."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.answers.snapshots import HealthSnapshot, SalesSnapshot
from bot.blocks.alerts import AlertView
from bot.blocks.home import home_view
from bot.blocks.message import MAX_BLOCKS_HOME
from bot.home import publisher
from bot.home.publisher import HomePublisher
from bot.periods import parse_period
from queries.sales import CurrencyTotal, RecentOrder
from tests.blockkit import assert_valid_view
from tests.conftest import Bot, paid_checkout, start_bot
from tests.fakes import FakeSlack

NY = ZoneInfo("America/New_York")
NOW = dt.datetime(2026, 3, 8, 15, 30, tzinfo=NY).astimezone(dt.UTC)


@pytest.fixture
async def store(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[Bot]:
    """A New York store with two sales today; Home refreshes after 0.3 s of quiet (5 s in production)."""
    async with start_bot(dsn, fake_slack, clock=lambda: NOW, STORE_TIMEZONE="America/New_York") as bot:
        bot.deps.home.quiet = 0.3
        for n, minutes in ((1, 50), (2, 20)):
            evt = paid_checkout(n, NOW - dt.timedelta(minutes=minutes), amount=2500 * n,
                                email=f"customer{n}@example.com", product=f"Course {n}")
            assert (await bot.stripe(evt)).status == 200
        yield bot


async def publishes(bot: Bot, count: int, *, within: float = 5.0) -> list[dict[str, Any]]:
    """Wait until the fake Slack has received `count` views.publish calls; return them all."""
    for _ in range(int(within / 0.02)):
        calls = bot.slack_api.posted("views.publish")
        if len(calls) >= count:
            return calls
        await asyncio.sleep(0.02)
    raise AssertionError(f"{len(bot.slack_api.posted('views.publish'))} views.publish calls, expected {count}")


def text_of(view: dict[str, Any]) -> str:
    """Everything a person would read on the tab."""
    return json.dumps(view["blocks"], ensure_ascii=False)


async def test_opening_home_publishes_a_live_view(store: Bot) -> None:
    """app_home_opened publishes today's figures, the last orders with masked customers, and health."""
    resp = await store.slack_event({"type": "app_home_opened", "user": "U_OWNER", "channel": "D1", "tab": "home"})
    assert resp.status == 200
    [call] = await publishes(store, 1)
    assert call["user_id"] == "U_OWNER"
    view = call["view"]
    assert_valid_view(view)
    text = text_of(view)
    assert "Today (Sun 08 Mar)" in text and "$75.00" in text  # 2500 + 5000
    assert "Latest orders" in text and "*$50.00* · Course 2 · cus***" in text
    assert "customer2@example.com" not in text and "example.com" not in text
    assert "No alerts firing" in text and "Health" in text


async def test_messages_tab_publishes_nothing(store: Bot) -> None:
    """The same event for the Messages tab is not a Home view to publish."""
    await store.slack_event({"type": "app_home_opened", "user": "U_OWNER", "channel": "D1", "tab": "messages"})
    await asyncio.sleep(0.3)
    assert store.slack_api.posted("views.publish") == []


async def test_a_burst_of_sales_costs_one_refresh_per_viewer(store: Bot) -> None:
    """Ten sales in quick succession: after the quiet period, one publish per person who opened Home."""
    for user in ("U_OWNER", "U_PARTNER"):
        await store.slack_event({"type": "app_home_opened", "user": user, "channel": "D1", "tab": "home"})
    await publishes(store, 2)
    rounds = store.deps.home.rounds
    for n in range(10, 20):
        assert (await store.stripe(paid_checkout(n, NOW - dt.timedelta(minutes=1), amount=1000))).status == 200
        await asyncio.sleep(0.05)  # well inside the quiet period: the burst keeps it waiting
    assert len(store.slack_api.posted("views.publish")) == 2  # nothing yet, mid-burst
    calls = await publishes(store, 4)
    await asyncio.sleep(0.8)  # and nothing more after it
    calls = store.slack_api.posted("views.publish")
    assert len(calls) == 4 and store.deps.home.rounds == rounds + 1
    assert {c["user_id"] for c in calls[2:]} == {"U_OWNER", "U_PARTNER"}
    assert "12 orders" in text_of(calls[-1]["view"]) or "*Orders:*\\n12" in text_of(calls[-1]["view"])
    assert_valid_view(calls[-1]["view"])


async def test_firing_alerts_carry_their_buttons_and_clicks_refresh_home(store: Bot) -> None:
    """An open alert shows with Acknowledge/Silence/Resolve; a click on Home republishes the new state."""
    alert_id = await store.deps.pool.fetchval(
        "INSERT INTO alerts (fingerprint, rule, family, severity, labels, title, summary, started_at, last_seen_at)"
        " VALUES ('f', 'site_down', 'site', 'critical', '{}', 'Site down', 'https://shop.example is down', $1, $1)"
        " RETURNING id", NOW - dt.timedelta(minutes=12))
    await store.slack_event({"type": "app_home_opened", "user": "U_OWNER", "channel": "D1", "tab": "home"})
    [call] = await publishes(store, 1)
    view = call["view"]
    assert_valid_view(view)
    actions = [b for b in view["blocks"] if b["type"] == "actions"]
    assert [e["action_id"] for e in actions[0]["elements"]] == [
        "alert_ack", "alert_silence_1h", "alert_silence_tomorrow", "alert_resolve"]
    assert "<!here>" not in text_of(view) and "Firing for 12 min" in text_of(view)
    payload = {"type": "block_actions", "user": {"id": "U_OWNER"}, "team": {"id": "T000"}, "api_app_id": "A000",
               "token": "legacy", "trigger_id": "1.2", "container": {"type": "view", "view_id": "V1"},
               "view": {"id": "V1", "type": "home"},
               "actions": [{"type": "button", "action_id": "alert_ack", "block_id": f"alert-{alert_id}",
                            "value": str(alert_id), "action_ts": "1"}]}
    assert (await store.slack({"payload": json.dumps(payload)})).status == 200
    calls = await publishes(store, 2)
    assert calls[1]["user_id"] == "U_OWNER"
    assert "Acknowledged by <@U_OWNER>" in text_of(calls[1]["view"])


def test_home_view_keeps_within_100_blocks_however_many_alerts() -> None:
    """Sixty firing alerts: the view stops adding them before 100 blocks and says how many more."""
    period = parse_period("", now=NOW, tz=NY)
    sales = SalesSnapshot(period=period, now=NOW, last_hour=[], last_order_at=None,
                          totals=[CurrencyTotal("USD", 1, 100)], previous=None, customers=1, refunds=[], trend=[],
                          pending_checkouts=0, conversion=None)
    health = HealthSnapshot(now=NOW, database_ok=True, database_rtt_ms=1.0, last_webhook_at=None, last_order_at=None,
                            backlog=None, delivery_errors=None, in_business_hours=True, mode="http", version="t",
                            started_at=NOW, site_url=None)
    alert = AlertView(id=0, rule="r", severity="warning", title="T", summary="<!channel> & co", started_at=NOW,
                      now=NOW, mention="<!here>")
    alerts = [dataclasses.replace(alert, id=i) for i in range(60)]
    orders = [RecentOrder(id=f"o{i}", created_at=NOW, amount=100, currency="JPY", product="P" * 500,
                          customer_email="ab@x.io") for i in range(9)]
    view = home_view(sales=sales, orders=orders, alerts=alerts, health=health, tz=NY)
    assert_valid_view(view)
    assert len(view["blocks"]) <= MAX_BLOCKS_HOME
    text = text_of(view)
    shown = sum(1 for b in view["blocks"] if b["type"] == "actions") - 1  # one is the Settings button
    assert 10 <= shown < 60 and f"…and {60 - shown} more" in text
    assert "<!channel>" not in text and "<!here>" not in text
    assert text.count("¥100") == 5  # five orders, never more
    nothing = home_view(sales=dataclasses.replace(sales, totals=None, missing=("totals",)), orders=None, alerts=None,
                        health=dataclasses.replace(health, database_ok=False), tz=NY)
    assert_valid_view(nothing)
    assert "couldn't load the latest orders" in text_of(nothing)


class RecordingClient:
    """Stands in for AsyncWebClient in publisher unit tests: records each views.publish."""

    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    async def views_publish(self, *, user_id: str, view: dict[str, Any]) -> None:
        """Record the call."""
        self.published.append((user_id, view))


async def test_a_steady_stream_still_refreshes_within_max_delay() -> None:
    """Sales every 0.05 s never leave 0.3 s of quiet, yet Home is refreshed once max_delay (0.5 s) has passed."""
    client = RecordingClient()
    home = HomePublisher(client=client, quiet=0.3, max_delay=0.5)  # type: ignore[arg-type]  # a stand-in
    renders = 0

    async def render(buttons: bool) -> dict[str, Any]:
        nonlocal renders
        renders += 1
        return {"type": "home", "blocks": []}

    async def responder(_user: str) -> bool:
        return True

    home.bind(render, restricted={"type": "home", "blocks": []}, may_see=lambda _user: True, may_act=responder)
    loop = asyncio.create_task(home.run())
    try:
        await home.opened("U1")
        assert len(client.published) == 1
        for _ in range(16):  # 0.8 s of changes
            home.changed()
            await asyncio.sleep(0.05)
        assert home.rounds == 1 and len(client.published) == 2 and renders == 2
    finally:
        loop.cancel()


async def test_rounds_are_spaced_to_slacks_publish_limit_newest_viewer_first(
        fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    """views.publish allows ~100 a minute per workspace: with ten viewers and a sale every 0.05 s, rounds (each
    worth ten calls) come no closer than the share allows (600/min here: 1 s apart), each starting with whoever
    opened Home last; a 429's Retry-After holds the next rounds back."""
    monkeypatch.setattr(publisher, "PUBLISHES_PER_MINUTE", 600)
    home = HomePublisher(client=AsyncWebClient(token="xoxb-test", base_url=fake_slack.url), quiet=0.05,
                         max_delay=0.1)

    async def render(buttons: bool) -> dict[str, Any]:
        return {"type": "home", "blocks": []}

    home.bind(render, restricted={"type": "home", "blocks": []}, may_see=lambda _user: True, may_act=_yes)
    viewers = [f"U{n}" for n in range(10)]
    for user in viewers:
        await home.opened(user)
    opened = len(fake_slack.posted("views.publish"))
    loop = asyncio.create_task(home.run())
    try:
        for _ in range(50):  # 2.5 s of sales: unpaced, a round every ~0.1 s
            home.changed()
            await asyncio.sleep(0.05)
        assert 2 <= home.rounds <= 3
        rounds = [c["user_id"] for c in fake_slack.posted("views.publish")[opened:]]
        assert rounds[:10] == viewers[::-1]
        fake_slack.fail_next(1, status=429, retry_after=3, method="views.publish")
        while not any(c.answered == 429 for c in fake_slack.calls):
            home.changed()
            await asyncio.sleep(0.05)
        published = len(fake_slack.posted("views.publish"))
        for _ in range(50):  # 2.5 s more of sales: inside Retry-After's 3 s nothing is published (paced: 1 s)
            home.changed()
            await asyncio.sleep(0.05)
        assert len(fake_slack.posted("views.publish")) == published
    finally:
        loop.cancel()


async def _yes(_user: str) -> bool:
    return True


async def test_slack_trouble_does_not_stop_the_refreshes(store: Bot) -> None:
    """A rate-limited views.publish is dropped quietly; the next open publishes again."""
    store.slack_api.fail_next(1, status=429, retry_after=1)
    await store.slack_event({"type": "app_home_opened", "user": "U_OWNER", "channel": "D1", "tab": "home"})
    for _ in range(100):
        if any(c.method == "views.publish" for c in store.slack_api.calls):
            break
        await asyncio.sleep(0.02)
    assert store.slack_api.posted("views.publish") == []
    await store.slack_event({"type": "app_home_opened", "user": "U_OWNER", "channel": "D1", "tab": "home"})
    [call] = await publishes(store, 1)
    assert call["user_id"] == "U_OWNER"
