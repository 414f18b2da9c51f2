"""The phone dashboard says what /health says and what its figures are about, without a browser: the Health card
flags every line /health lights yellow or red, the Today card words customers and the orders' change itself, and
the MRR card holds each sign to its amount (tests/test_browser.py looks at the same in Chromium)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.access import GroupCheck
from bot.answers.snapshots import HealthSnapshot, SalesSnapshot
from bot.blocks.elements import message
from bot.blocks.health import health_message
from bot.blocks.mrr import WORD_JOINER, mrr_blocks
from bot.delivery.standing import ChannelStatus, Membership
from bot.periods import parse_period
from bot.socket_state import SocketState
from bot.web.assets import load_template
from bot.web.mrr_view import mrr_card
from bot.web.signin import COOKIE
from bot.web.view import dashboard_view
from queries.alerts import Probe
from queries.health import Backlog, DeliveryErrors
from queries.inbox import Backlog as InboxBacklog
from queries.mrr import MrrFigures, MrrSummary
from queries.sales import CurrencyTotal
from queries.settlements import Backlog as FeesBacklog
from queries.stripe_sync import SyncStatus
from tests.blockkit import assert_valid_message
from tests.conftest import FakeClock, paid_checkout, start_bot
from tests.fakes import FakeSlack
from tests.test_dashboard import session_cookie, sign_in

UTC = ZoneInfo("UTC")
NOW = dt.datetime(2026, 12, 7, 15, 0, tzinfo=dt.UTC)  # a Monday
TOKEN = "phone-dashboard-token-long-enough"
MIN = dt.timedelta(minutes=1)


def sales(**kw: Any) -> SalesSnapshot:
    """Today with no figures but those given."""
    base: dict[str, Any] = dict(period=parse_period("", now=NOW, tz=UTC), now=NOW, last_hour=[], last_order_at=None,
                                totals=[], previous=[], customers=0, refunds=[], trend=[], pending_checkouts=0,
                                conversion=None)
    return SalesSnapshot(**{**base, **kw})


def health(**kw: Any) -> HealthSnapshot:
    """A healthy Socket Mode bot, changed by `kw`."""
    base: dict[str, Any] = dict(now=NOW, database_ok=True, database_rtt_ms=3.0, last_webhook_at=NOW - 2 * MIN,
                                last_order_at=None, backlog=None, delivery_errors=None, in_business_hours=True,
                                mode="socket", version="t", started_at=NOW - dt.timedelta(hours=5), site_url=None)
    return HealthSnapshot(**{**base, **kw})


def attention(view: dict[str, Any]) -> list[tuple[str, str]]:
    """The Health card's (level, name) of items that are not fine."""
    return sorted((h["level"], h["name"]) for h in view["health"] if h["level"] in ("warn", "bad"))


def lights(s: HealthSnapshot, groups: tuple[GroupCheck, ...] = ()) -> list[str]:
    """/health's yellow and red lights, as the dashboard's levels, sorted."""
    text = health_message(s, tz=UTC, groups=groups).blocks[1]["text"]["text"]
    return sorted({"🟡": "warn", "🔴": "bad"}[line[0]] for line in text.splitlines() if line[:1] in ("🟡", "🔴"))


def test_socket_mode_down_is_named_on_the_health_card() -> None:
    """Socket Mode lost 20 min ago: the pill says "Needs attention" and the card says why, since when, and the last
    error — as /health's yellow line does."""
    s = health(socket=SocketState(connected=False, since=NOW - 20 * MIN, last_error="invalid_auth"))
    view = dashboard_view(sales(), None, s, tz=UTC)
    assert view["status"] == "degraded"
    [item] = [h for h in view["health"] if h["name"] == "Socket Mode"]
    assert item["level"] == "warn"
    assert item["text"].startswith("not connected since Mon 14:40 (20 min ago)") and "invalid_auth" in item["text"]


SYNC_OK = SyncStatus(started_at=NOW - dt.timedelta(days=1), last_poll_at=NOW - MIN, last_ok_at=NOW - MIN,
                     last_error=None, last_error_at=None, last_reconcile_at=None, recovered_24h=0)
CASES: dict[str, dict[str, Any]] = {
    "alerts channel archived, Events API failing": dict(
        channels=(ChannelStatus("alerts", "#alerts", Membership.ARCHIVED, "C1", "alerts"),),
        stripe_sync=dataclasses.replace(SYNC_OK, last_ok_at=NOW - dt.timedelta(hours=3), last_error="401 invalid",
                                        last_error_at=NOW - MIN)),
    "channel not joinable, one private": dict(channels=(
        ChannelStatus("sales", "#sales", Membership.JOIN_FAILED, "C1", "sales", error="method_not_allowed"),
        ChannelStatus("reports", "#reports", Membership.PRIVATE_NOT_MEMBER, "C2", "reports"),
        ChannelStatus("alerts", "#alerts", Membership.PUBLIC_NOT_JOINED, "C3", "alerts"))),
    "events the webhook missed": dict(stripe_sync=dataclasses.replace(SYNC_OK, recovered_24h=3)),
    "Events API not polled lately": dict(stripe_sync=dataclasses.replace(SYNC_OK, last_poll_at=NOW - 9 * MIN)),
    "fees given up on": dict(stripe_fees=FeesBacklog(waiting=2, given_up=1)),
    "webhook intake backlog": dict(inbox=InboxBacklog(waiting=40, oldest=NOW - 3 * MIN)),
    "socket down, delivery late, Slack errors": dict(
        socket=SocketState(connected=False, since=NOW - 20 * MIN, last_error=None),
        backlog=Backlog(pending=3, oldest=NOW - 2 * MIN, oldest_due=NOW - 2 * MIN),
        delivery_errors=DeliveryErrors(count=2, permanent=0, last_at=NOW - MIN, last_error="ratelimited")),
    "delivery stuck, permanent errors, site down": dict(
        backlog=Backlog(pending=3, oldest=NOW - 30 * MIN, oldest_due=NOW - 30 * MIN),
        delivery_errors=DeliveryErrors(count=2, permanent=1, last_at=NOW - MIN, last_error="channel_not_found"),
        site_url="https://shop.example.com", probe=Probe(NOW - MIN, False, None, None, "timeout")),
    "site slow, order silence": dict(site_url="https://shop.example.com", probe=Probe(NOW - MIN, True, 200, 4500, None),
                                     last_order_at=NOW - dt.timedelta(hours=2), order_silence=dt.timedelta(hours=2)),
}


@pytest.mark.parametrize("case", CASES)
def test_the_health_card_flags_each_line_health_lights_yellow_or_red(case: str) -> None:
    """Whatever /health marks 🟡 or 🔴 (channels the bot cannot use, the Events API, the webhook intake, fees given
    up on, …), the dashboard marks warn or bad — one item each, as many of each colour."""
    s = health(**CASES[case])
    red_or_yellow = lights(s)
    assert red_or_yellow, case  # the case does light something
    view = dashboard_view(sales(), None, s, tz=UTC)
    assert [level for level, _ in attention(view)] == red_or_yellow
    assert view["status"] == ("degraded" if s.degraded else "ok")  # the pill's "Needs attention" has its reason


def test_the_health_card_names_what_health_marks_red() -> None:
    """The alerts channel archived and the Events API failing: two red items, saying what to do."""
    view = dashboard_view(sales(), None, health(**CASES["alerts channel archived, Events API failing"]), tz=UTC)
    assert attention(view) == [("bad", "Slack channel alerts"), ("bad", "Stripe Events API")]
    texts = {h["name"]: h["text"] for h in view["health"]}
    assert texts["Slack channel alerts"] == "#alerts is archived: unarchive it or configure another channel"
    assert texts["Stripe Events API"] == "polled 1 min ago · failing: 401 invalid"


def test_alert_responder_groups_slack_cannot_list_are_red_on_the_card() -> None:
    groups = (GroupCheck("S0ONCALL", frozenset(), "missing_scope"), GroupCheck("S0LEADS", frozenset({"U1"})))
    view = dashboard_view(sales(), None, health(), tz=UTC, groups=groups)
    assert attention(view) == [("bad", "Alert responders")] and lights(health(), groups) == ["bad"]
    assert "S0ONCALL (missing_scope)" in view["health"][-1]["text"]


async def test_the_dashboard_data_carries_the_responder_groups(dsn: str, fake_slack: FakeSlack) -> None:
    """ALERT_RESPONDERS names a group Slack cannot list: /dashboard/data's Health card says so, like /health."""
    async with start_bot(dsn, fake_slack, MONITORING_TOKEN=TOKEN, ALERT_RESPONDERS="S0ONCALL") as bot:
        cookie = session_cookie(await sign_in(bot, TOKEN)).value
        body = await (await bot.client.get("/dashboard/data", cookies={COOKIE: cookie})).json()
        shown = json.dumps(await bot.command("/health"), ensure_ascii=False)
    assert "🔴 *Alert responders*" in shown
    [item] = [h for h in body["view"]["health"] if h["name"] == "Alert responders"]
    assert item["level"] == "bad" and "S0ONCALL (no_such_subteam)" in item["text"]


@pytest.mark.parametrize(("kw", "phrase"), [
    (dict(customers=1), "1 customer"),
    (dict(customers=1204), "1,204 customers"),
    (dict(customers=2, customers_without_email=1), "2 customers (+1 order without an email)"),
    (dict(customers=15200, customers_error=0.03), "≈15,200 customers (±3.0%)"),
    (dict(customers=0, customers_without_email=3), "customers unknown (no email on the 3 orders)"),
    (dict(customers=None), "—"),
])
def test_the_today_card_gets_the_whole_customers_phrase(kw: dict[str, Any], phrase: str) -> None:
    """The server sends "1 customer", not a number the page follows with a fixed " customers"."""
    assert dashboard_view(sales(**kw), None, health(), tz=UTC)["figures"]["today_customers"] == phrase


def test_the_today_card_says_the_change_is_in_orders() -> None:
    """Two orders today, one last Monday: the change printed after the customers says it is the orders'."""
    view = dashboard_view(sales(totals=[CurrencyTotal("USD", 2, 9800)], previous=[CurrencyTotal("USD", 1, 4900)],
                                customers=1), None, health(), tz=UTC)
    assert view["figures"]["today_vs"] == "orders ▲ 100% vs last Mon"


async def test_the_dashboard_data_words_one_customer_and_the_orders_change(dsn: str, fake_slack: FakeSlack) -> None:
    """Through /dashboard/data: one customer's two orders today and one a week ago."""
    async with start_bot(dsn, fake_slack, clock=FakeClock(NOW), MONITORING_TOKEN=TOKEN) as bot:
        for n, at in enumerate((NOW - dt.timedelta(days=7, minutes=1), NOW - 3 * MIN, NOW - 2 * MIN), start=1):
            assert (await bot.stripe(paid_checkout(n, at, amount=4900, email="same@example.com"))).status == 200
        cookie = session_cookie(await sign_in(bot, TOKEN)).value
        body = await (await bot.client.get("/dashboard/data", cookies={COOKIE: cookie})).json()
    f = body["view"]["figures"]
    assert (f["today_orders"], f["today_customers"], f["today_vs"]) == ("2", "1 customer", "orders ▲ 100% vs last Mon")


def test_the_page_adds_no_noun_to_the_customers_phrase() -> None:
    """The template prints the server's phrase as it is (it used to append " customers")."""
    page = load_template("dashboard.html").template
    assert re.search(r'id="today-customers">[^<]*</span>\s*customers', page) is None


MRR = MrrSummary(since=NOW - dt.timedelta(days=30), now=NOW, currencies=(
    MrrFigures("USD", 170083, 155900, 90867, 0, 27150, 42333, 25000, 6, 32),
    MrrFigures("EUR", 11917, 10500, 1700, 0, 0, 283, 0, 0, 5),
    MrrFigures("GBP", 7600, 7600, 0, 0, 0, 0, 0, 0, 3)))
SIGNED = re.compile("[+−-][\\s\u2060]*[$€£]")  # a sign before an amount, however it is joined


def test_the_mrr_card_holds_each_sign_to_its_amount_and_names_each_currency() -> None:
    """Three currencies: every "+"/"−" is joined to its amount by a WORD JOINER (no line break between them), and
    each currency's moves are labelled — "none churned" twice said nothing of which currency."""
    card = mrr_card(MRR, store="USD")
    assert card is not None
    detail = card["detail"]
    assert [m.group() for m in SIGNED.finditer(detail)] == \
        [f"{pair[0]}{WORD_JOINER}{pair[1]}" for pair in ("+$", "+$", "−$", "−$", "+€", "−€", "+£")]
    moves = detail.split("30 days: ", 1)[1].split("; ")
    assert [m.split(": ", 1)[0] for m in moves] == ["USD", "EUR", "GBP"]
    assert moves[1] == f"EUR: new +{WORD_JOINER}€17.00 · downgrades −{WORD_JOINER}€2.83 · none churned"


def test_slack_mrr_lines_keep_their_text_with_the_joiner() -> None:
    """/sales' MRR section reads the same (the joiner is invisible) and is valid Block Kit."""
    blocks = mrr_blocks(MRR, store="USD")
    assert_valid_message(message("MRR", blocks))
    text = blocks[0]["text"]["text"]
    assert f"30 days: new +{WORD_JOINER}$908.67 · upgrades +{WORD_JOINER}$271.50 · downgrades −{WORD_JOINER}$423.33" \
           f" · churned −{WORD_JOINER}$250.00 (6)" in text
    assert text.replace(WORD_JOINER, "").count("none churned") == 2 and "−\n" not in text
