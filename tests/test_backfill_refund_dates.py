"""`salespulse backfill` turns a refunded charge it lists into a charge.refunded of its own: dated by the newest
refund (so the refund counts on the day it was made), or by when the listing was read when the refunds are not all
there or one of them has failed. Stamped with the charge's own time, before any refund, a refund that failed later
never came off the order (found by the diff review)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bot.stripe.backfill import intent_events
from tests.conftest import Bot
from tests.test_intake_order_fixes import arrive
from tests.test_refund_voids import AMOUNT, charge_refunded, failure_events, refund_object, sale, t0

V = "basil"


def listed_intent(refunds: list[dict[str, Any]], *, has_more: bool = False) -> dict[str, Any]:
    """The story's PaymentIntent as GET /v1/payment_intents lists it, its Charge and the Charge's refunds
    expanded (expand[]=data.latest_charge.refunds)."""
    intent = copy.deepcopy(sale(V)["data"]["object"])
    charge = charge_refunded(V, sum(r["amount"] for r in refunds if r["status"] == "succeeded"),
                             at=t0(V), event_id="unused")["data"]["object"]
    charge["refunds"] = {"object": "list", "data": refunds, "has_more": has_more, "url": "/v1/refunds"}
    intent.update(status="succeeded", latest_charge=charge)
    return intent


def test_the_backfilled_refund_is_dated_by_the_newest_refund_or_else_by_the_reading() -> None:
    start = t0(V)
    done = [refund_object("re_1", 1000, created=start + 50, status="succeeded"),
            refund_object("re_2", 2000, created=start + 100, status="succeeded")]
    assert intent_events(listed_intent(done), start + 999)[1]["created"] == start + 100
    # A failed one may have failed after a newer one was made; an unlisted one may be newer: the reading's time.
    failed = [*done, refund_object("re_3", 500, created=start + 70, status="failed")]
    assert intent_events(listed_intent(failed), start + 999)[1]["created"] == start + 999
    assert intent_events(listed_intent(done, has_more=True), start + 999)[1]["created"] == start + 999


@pytest.mark.parametrize("failure_first", [False, True])
async def test_a_backfilled_refund_that_fails_later_comes_off_the_order(bot: Bot, failure_first: bool) -> None:
    start = t0(V)
    pending = refund_object("re_pending", AMOUNT, created=start + 100, status="succeeded")
    backfilled = intent_events(listed_intent([pending]), start + 200)
    failed = failure_events(V, {**pending, "status": "failed"}, at=start + 5 * 86400)
    await arrive(bot, [*failed, *backfilled] if failure_first else [*backfilled, *failed])
    row = await bot.deps.pool.fetchrow("SELECT payment_status, amount_refunded, refunded_at FROM orders")
    assert (row["payment_status"], row["amount_refunded"], row["refunded_at"]) == ("completed", 0, None)


async def test_a_backfilled_refund_that_stands_is_dated_when_it_was_made(bot: Bot) -> None:
    start = t0(V)
    made = refund_object("re_made", 1500, created=start + 100, status="succeeded")
    await arrive(bot, intent_events(listed_intent([made]), start + 86400))
    row = await bot.deps.pool.fetchrow("SELECT amount_refunded, extract(epoch FROM refunded_at)::bigint AS at"
                                       " FROM orders")
    assert (row["amount_refunded"], row["at"]) == (1500, start + 100)
