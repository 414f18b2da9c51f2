"""MRR after the second review: a subscription mixing monthly and yearly items (2025-07-30.basil) spreads an amount
off over its shortest interval whatever the order of its items; subscribers are customers, as Stripe's billing
analytics count them (one with two subscriptions is one subscriber, churns only when none pays, and adding a
subscription is expansion, not a new subscriber); two updates of one subscription in one second are ordered by what
their previous_attributes say, not by event id, in any arrival order."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from bot.intake.batch import Submission, ingest_batch
from bot.stripe.discount_job import DiscountJob
from bot.stripe.parse import parse_event
from bot.subscriptions import pricing
from bot.subscriptions.order import SecondEvent, ordered
from bot.subscriptions.renewals import Renewals
from tests.conftest import Bot, start_bot
from tests.fake_stripe import API_KEY, FakeStripe
from tests.fakes import FakeSlack
from tests.test_discounts import fake  # noqa: F401  # fixture: the fake Stripe API
from tests.test_mrr_fixes import FAR, usd
from tests.test_subscriptions import RESET, post, story_event

T0 = 1_747_003_596  # the basil story's customer.subscription.created
NEW_SUBSCRIBER = "🎉 New subscriber"
COUPON = {"id": "di_1FIVEOFF", "object": "discount", "end": None, "start": T0,
          "coupon": {"id": "FIVE", "object": "coupon", "amount_off": 500, "currency": "usd", "percent_off": None,
                     "duration": "forever", "valid": True}}
_ids = itertools.count(1)


def price(amount: int, interval: str = "month", *, pid: str | None = None) -> dict[str, Any]:
    """A licensed recurring Price (basil shape) of `amount` cents every `interval`."""
    return {"id": pid or f"price_{amount}_{interval}", "object": "price", "active": True, "billing_scheme": "per_unit",
            "currency": "usd", "nickname": "Plan", "product": "prod_X", "type": "recurring", "unit_amount": amount,
            "unit_amount_decimal": str(amount), "transform_quantity": None, "tiers_mode": None,
            "recurring": {"interval": interval, "interval_count": 1, "usage_type": "licensed", "meter": None,
                          "trial_period_days": None}}


def item(p: dict[str, Any], quantity: int = 1, *, si: str | None = None, days: int = 30) -> dict[str, Any]:
    """A subscription item of price `p`, its period `days` long from the story's start."""
    r = p["recurring"]
    plan = {"id": p["id"], "object": "plan", "active": True, "amount": p["unit_amount"],
            "amount_decimal": p["unit_amount_decimal"], "billing_scheme": "per_unit", "currency": "usd",
            "interval": r["interval"], "interval_count": r["interval_count"], "nickname": p["nickname"],
            "product": "prod_X", "usage_type": r["usage_type"], "transform_usage": None, "tiers_mode": None}
    return {"id": si or f"si_{p['id']}", "object": "subscription_item", "price": p, "plan": plan, "quantity": quantity,
            "current_period_start": T0, "current_period_end": T0 + days * 86_400, "discounts": [], "metadata": {}}


def sub_event(kind: str, sub: str, items: list[dict[str, Any]], *, at: int, customer: str = "cus_A",
              status: str = "active", prev: dict[str, Any] | None = None, evt_id: str | None = None,
              **fields: Any) -> dict[str, Any]:
    """customer.subscription.`kind` of subscription `sub` with these items: the basil story's event, reshaped."""
    evt = copy.deepcopy(story_event("basil", "1_created"))
    obj = evt["data"]["object"]
    obj.update(id=sub, customer=customer, status=status, created=T0, start_date=T0, **fields)
    obj["items"]["data"] = items
    if status == "canceled":
        obj.update(ended_at=at, canceled_at=at)
    evt.update(type=f"customer.subscription.{kind}", id=evt_id or f"evt_1R{next(_ids):06d}{sub[-6:]}", created=at)
    if prev is not None:
        evt["data"]["previous_attributes"] = prev
    return evt


async def test_the_same_subscription_has_one_mrr_whatever_the_order_of_its_items(bot: Bot) -> None:
    """$15.00 a month and $1,200.00 a year, $5.00 off each invoice forever: invoices come monthly, so the amount off
    is $5.00 a month ($110.00), not $5.00 over a year ($114.58) when the yearly item happens to be listed first."""
    monthly = item(price(1500, "month"), si="si_m")
    yearly = item(price(120000, "year"), si="si_y", days=365)
    await post(bot, sub_event("created", "sub_1MIXAA", [monthly, yearly], at=T0, customer="cus_MA",
                              discounts=[COUPON], billing_mode={"type": "flexible"}))
    a = (await usd(bot)).mrr
    await post(bot, sub_event("created", "sub_1MIXBB", [yearly, monthly], at=T0 + 10, customer="cus_MB",
                              discounts=[COUPON], billing_mode={"type": "flexible"}))
    b = (await usd(bot)).mrr - a
    assert a == b, f"the same subscription is MRR {a} with its monthly item listed first, {b} with its yearly one"
    assert a == 11000


def test_the_discounts_job_spreads_an_amount_off_over_the_shortest_interval_too() -> None:
    """The job's recompute (pricing.mrr_of) takes the same path: $110.00 a month in either order of the items."""
    monthly = {"unit_amount": "1500", "interval": "month", "interval_count": 1, "quantity": 1}
    yearly = {"unit_amount": "120000", "interval": "year", "interval_count": 1, "quantity": 1}
    terms = {"percent_off": None, "amount_off": 500, "currency": "usd", "duration": "forever", "end": None}
    got = [pricing.mrr_of({"counted": True, "discounts": [{"id": "di_1FIVEOFF"}], "items": items},
                          {"di_1FIVEOFF": terms}, currency="USD", at=FAR)
           for items in ([monthly, yearly], [yearly, monthly])]
    assert got == [11000 * 12_000_000] * 2


async def test_one_customer_with_two_subscriptions_is_one_subscriber(bot: Bot) -> None:
    await post(bot, sub_event("created", "sub_1TWOA1", [item(price(1900))], at=T0, customer="cus_TWO"))
    await post(bot, sub_event("created", "sub_1TWOB1", [item(price(900, pid="price_addon"))], at=T0 + 60,
                              customer="cus_TWO"))
    f = await usd(bot)
    assert f.mrr == 2800
    assert f.active == 1, f"/sales says '{f.active} subscribers' for one paying customer"


async def test_cancelling_one_of_two_subscriptions_churns_no_subscriber(bot: Bot) -> None:
    """The customer still pays: no subscriber churned; the MRR lost is the customer's contraction, and the ping
    says a subscription ended, not that a subscriber churned."""
    await post(bot, sub_event("created", "sub_1TWOA2", [item(price(1900))], at=T0, customer="cus_TWO2"))
    await post(bot, sub_event("created", "sub_1TWOB2", [item(price(900, pid="price_addon"))], at=T0 + 60,
                              customer="cus_TWO2"))
    texts = await post(bot, sub_event("deleted", "sub_1TWOB2", [item(price(900, pid="price_addon"))], at=T0 + 120,
                                      status="canceled", customer="cus_TWO2"))
    f = await usd(bot)
    assert (f.mrr, f.active) == (1900, 1)
    # "churned −$9.00 (1)" reads as one subscriber lost.
    assert f.churned_count == 0
    assert (f.churned, f.contraction) == (0, 900)
    assert texts == ["➖ Subscription ended: Plan — MRR −$9.00"]


async def test_a_paying_customer_adding_a_subscription_is_no_new_subscriber(bot: Bot) -> None:
    """Stripe's "New subscribers" leave out "existing subscribers who add additional subscriptions"; ChartMogul books
    the added MRR as Expansion."""
    await post(bot, sub_event("created", "sub_1TWOA3", [item(price(1900))], at=T0, customer="cus_TWO3"))
    texts = await post(bot, sub_event("created", "sub_1TWOB3", [item(price(900, pid="price_addon"))], at=T0 + 60,
                                      customer="cus_TWO3"))
    assert not any(NEW_SUBSCRIBER in t for t in texts), texts
    assert texts == ["➕ Subscription added: Plan — MRR +$9.00"]
    f = await usd(bot)
    assert (f.new, f.expansion) == (1900, 900)


async def test_the_last_subscription_of_a_customer_ending_is_a_churned_subscriber(bot: Bot) -> None:
    """Two subscriptions, both canceled, in either order of arrival: one subscriber churned, MRR lost in full."""
    events = [sub_event("created", "sub_1LASTA", [item(price(1900))], at=T0, customer="cus_LAST"),
              sub_event("created", "sub_1LASTB", [item(price(900, pid="price_addon"))], at=T0 + 60,
                        customer="cus_LAST"),
              sub_event("deleted", "sub_1LASTB", [item(price(900, pid="price_addon"))], at=T0 + 120,
                        status="canceled", customer="cus_LAST"),
              sub_event("deleted", "sub_1LASTA", [item(price(1900))], at=T0 + 180, status="canceled",
                        customer="cus_LAST")]
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2]):
        await bot.deps.pool.execute(RESET)
        for i in order:
            await post(bot, events[i])
        f = await usd(bot)
        assert (f.mrr, f.active, f.new, f.expansion) == (0, 0, 1900, 900), order
        assert (f.churned, f.contraction, f.churned_count) == (1900, 900, 1), order


P = price(1000, pid="price_seat")


def seats(n: int) -> list[dict[str, Any]]:
    return [item(P, n, si="si_seat")]


def seat_story() -> list[dict[str, Any]]:
    """Created with one seat; then 1 → 2 and 2 → 3 seats in one second, the first update's id sorting last."""
    return [sub_event("created", "sub_1SEATS", seats(1), at=T0, evt_id="evt_1M000SEATS0"),
            sub_event("updated", "sub_1SEATS", seats(2), at=T0 + 100, evt_id="evt_1Z999SEATS1",
                      prev={"items": {"object": "list", "data": seats(1)}}),
            sub_event("updated", "sub_1SEATS", seats(3), at=T0 + 100, evt_id="evt_1A111SEATS2",
                      prev={"items": {"object": "list", "data": seats(2)}})]


async def test_the_later_of_two_same_second_updates_wins(bot: Bot) -> None:
    """Every arrival order: MRR $30.00 and only what happened (new $10.00, expansion $20.00), no invented
    contraction; the state row is the 3-seat one."""
    story = seat_story()
    for order in itertools.permutations(range(3)):
        await bot.deps.pool.execute(RESET)
        for i in order:
            await post(bot, story[i])
        f = await usd(bot)
        assert f.mrr == 3000, \
            f"MRR {f.mrr}: the subscription has 3 seats of $10.00 (each event's previous_attributes chain them)"
        assert (f.new, f.expansion, f.contraction, f.churned) == (1000, 2000, 0, 0), order
        assert await bot.deps.pool.fetchval("SELECT last_event_id FROM subscriptions") == "evt_1A111SEATS2", order


async def test_same_second_updates_in_one_batch_are_ordered_as_apart(conn: asyncpg.Connection) -> None:
    """Both updates in one batch (with or without the creation): the same ledger as one by one."""
    story = seat_story()
    for order in itertools.permutations(range(3)):
        for sizes in ([3], [1, 2], [2, 1]):
            await conn.execute(RESET)
            events = [story[i] for i in order]
            subs = [Submission("stripe", e["id"], e["type"], json.dumps(e), parse_event(e)) for e in events]
            start = 0
            for size in sizes:
                await ingest_batch(conn, subs[start:start + size], tz=ZoneInfo("UTC"), now=FAR,
                                   renewals=Renewals.REPORT)
                start += size
            state = await conn.fetchrow("SELECT mrr_units, last_event_id FROM subscriptions")
            assert (state["mrr_units"], state["last_event_id"]) == (3000 * 12_000_000, "evt_1A111SEATS2"), order
            moves = await conn.fetchrow("SELECT sum(new) AS new, sum(expansion) AS expansion,"
                                        " sum(contraction) AS contraction FROM mrr_movement_days")
            assert tuple(moves.values()) == (1000 * 12_000_000, 2000 * 12_000_000, 0), (order, sizes)


def _seat(eid: str, before: int, after: int) -> SecondEvent:
    return SecondEvent(eid, 1, {"items": {"data": [{"quantity": after}]}},
                       {"items": {"data": [{"quantity": before}]}})


def test_three_seat_updates_in_one_second_settle_by_their_chain() -> None:
    """Seats 1→2→3→4 in one second. Each update's previous_attributes match the one before it, so the chain orders
    all three; the first and third say nothing of each other, and that pair alone marked the second unsettled: a
    warning "not ordered by what they say" and a queued GET /v1/subscriptions for every such second."""
    ids, settled = ordered([_seat("evt_c", 3, 4), _seat("evt_a", 2, 3), _seat("evt_b", 1, 2)])
    assert ids == ["evt_b", "evt_a", "evt_c"]
    assert settled
    for events in itertools.permutations([_seat("evt_c", 3, 4), _seat("evt_a", 2, 3), _seat("evt_b", 1, 2)]):
        assert ordered(events) == (["evt_b", "evt_a", "evt_c"], True), events


def test_a_chain_with_a_gap_or_a_loop_stays_unsettled() -> None:
    """Settled only where the chain allows one order: 1→2→3 beside a 7→8 it says nothing of, or 1→2→1 (each matches
    the other), is still read again."""
    assert not ordered([_seat("evt_a", 1, 2), _seat("evt_b", 2, 3), _seat("evt_c", 7, 8)])[1]
    assert not ordered([_seat("evt_a", 1, 2), _seat("evt_b", 2, 1)])[1]


def seats_back_and_forth() -> list[dict[str, Any]]:
    """Created with one seat; then 1 → 2 and 2 → 1 seats in one second: each event's previous_attributes match the
    other's object, so the events cannot tell their order (by id, the 2-seat one would be last)."""
    return [sub_event("created", "sub_1SEATS", seats(1), at=T0, evt_id="evt_1M000SEATS0"),
            sub_event("updated", "sub_1SEATS", seats(2), at=T0 + 100, evt_id="evt_1Z999SEATS1",
                      prev={"items": {"object": "list", "data": seats(1)}}),
            sub_event("updated", "sub_1SEATS", seats(1), at=T0 + 100, evt_id="evt_1A111SEATS2",
                      prev={"items": {"object": "list", "data": seats(2)}})]


async def test_same_second_updates_the_events_cannot_order_are_ordered_by_reading_the_subscription(
        dsn: str, fake_slack: FakeSlack, fake: FakeStripe) -> None:  # noqa: F811  # the fixture imported above
    """With STRIPE_API_KEY the subscription is read again (the discounts job) and the event matching it now is put
    last, in every arrival order: MRR $10.00, and the ledger's steps are 1 → 2 → 1 seats."""
    story = seats_back_and_forth()
    fake.subscriptions["sub_1SEATS"] = copy.deepcopy(story[2]["data"]["object"])  # one seat, as Stripe has it now
    async with start_bot(dsn, fake_slack, STRIPE_API_KEY=API_KEY, STRIPE_API_URL=fake.url) as bot:
        for order in itertools.permutations(range(3)):
            await bot.deps.pool.execute(RESET)
            await bot.deps.pool.execute("TRUNCATE subscription_second_checks")
            for i in order:
                await post(bot, story[i])
            assert (await usd(bot)).mrr == 2000, order  # by event id until read
            await DiscountJob(bot.deps).tick()
            f = await usd(bot)
            assert (f.mrr, f.new, f.expansion, f.contraction) == (1000, 1000, 1000, 1000), order
            assert await bot.deps.pool.fetchval("SELECT last_event_id FROM subscriptions") == "evt_1A111SEATS2"
            assert not await bot.deps.pool.fetchval("SELECT count(*) FROM subscription_second_checks"), order
