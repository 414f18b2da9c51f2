"""A customer named only by charge.refunded is kept on the order: a payment told by payment_intent.succeeded alone
(no receipt_email, no billing details: the one_off story's PaymentIntent in every API version) learns its customer
from the refund's Charge (billing_details.email), so the refund's later failure names the customer as the refund ping
did, and /sales counts them. The Refund objects of charge.refund.updated, refund.failed and refund.updated carry no
email (fixtures3's Refund has none), so charge.refunded is the one event that can.

Signed webhooks through the real route, in every API version and every order of arrival, the events built as
tests/test_refund_voids.py builds them.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
from zoneinfo import ZoneInfo

import pytest

from bot.intake.fold import Fold
from bot.stripe.parse import parse_event
from queries.sales_raw import unique_customers
from tests.blockkit import assert_valid_message
from tests.conftest import Bot
from tests.test_intake_order_fixes import arrive
from tests.test_intake_versions import reset, story_event
from tests.test_refund_voids import AMOUNT, VERSIONS, charge_refunded, failure_events, refund_object, sale, t0

EMAIL, MASKED = "ada@example.com", "ada***"  # the story Charge's billing_details.email, as messages show it


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_customer_only_the_refund_named_is_kept_and_told_in_every_order(bot: Bot, version: str) -> None:
    """PaymentIntent (no customer), a full refund (its Charge names the customer), the refund's failure: in each order
    of arrival the order keeps the customer and counts as one unique customer; the failure message names them
    whenever charge.refunded came before it (before that nothing had named them), and is edited to name them once
    it comes."""
    start = t0(version)
    refund = refund_object("re_full", AMOUNT, created=start + 100, status="failed")
    events = {"sale": sale(version), "refunded": charge_refunded(version, AMOUNT, at=start + 100, event_id="evt_r1"),
              **{e["type"]: e for e in failure_events(version, refund, at=start + 3600)}}
    assert "@" not in json.dumps(events["sale"]["data"]["object"])  # the PaymentIntent names nobody
    voids = [name for name in events if name not in ("sale", "refunded")]
    for arrival in itertools.permutations(events):
        await reset(bot)
        await arrive(bot, [events[name] for name in arrival])
        where = f"{version} {arrival}"
        row = await bot.deps.pool.fetchrow("SELECT payment_status, customer_email, customer_name FROM orders")
        assert tuple(row) == ("completed", EMAIL, "Ada Lovelace"), where
        window = dict(start=dt.datetime.fromtimestamp(start, dt.UTC) - dt.timedelta(hours=1),
                      end=dt.datetime.fromtimestamp(start, dt.UTC) + dt.timedelta(hours=1))
        assert await unique_customers(bot.deps.pool, **window) == 1, where
        (msg,) = [p for p in bot.slack_api.posted() if p["text"].startswith("❌ Refund failed")]
        assert_valid_message(msg)
        shown = json.dumps(msg["blocks"], ensure_ascii=False)
        told = arrival.index("refunded") < min(arrival.index(name) for name in voids)
        assert (MASKED in shown, "*Customer:*\\nunknown" in shown) == (told, not told), (where, shown)
        # Told before charge.refunded named them, the message is edited once it has (tests/test_refund_void_told.py)
        edits = [p for p in bot.slack_api.posted("chat.update") if p["text"].startswith("❌ Refund failed")]
        assert MASKED in json.dumps((edits or [msg])[-1]["blocks"], ensure_ascii=False), where


def test_a_customer_an_earlier_event_named_is_never_replaced() -> None:
    """The checkout session named the customer; the refund's Charge says another address: the order keeps the
    session's (charge.refunded only fills what no event said)."""
    version = "clover"
    session = copy.deepcopy(story_event(version, "one_off", "checkout.session.completed"))
    session["data"]["object"]["customer_details"]["email"] = "typed-at-checkout@example.com"
    fold = Fold(tz=ZoneInfo("UTC"), now=dt.datetime.fromtimestamp(t0(version) + 200, dt.UTC))
    for i, evt in enumerate([session, charge_refunded(version, 1000, at=t0(version) + 100, event_id="evt_r1")]):
        e = parse_event(evt)
        assert e is not None
        fold.apply(i, e)
    (order,) = fold.orders.values()
    assert order.customer_email == "typed-at-checkout@example.com"
