"""MRR, renewals and churn as Stripe bills them: package prices, coupons in other currencies, a trial's first
payment, churn of a subscription that never paid, refunded renewals, and reactivation after install."""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from bot.intake.batch import Submission, ingest_batch
from bot.stripe import discounts
from bot.stripe.parse import parse_event
from bot.subscriptions import pricing
from bot.subscriptions.mrr import minor
from bot.subscriptions.renewals import Renewals
from queries import mrr, sales, subscriptions
from tests.conftest import Bot, start_bot
from tests.fakes import FakeSlack
from tests.test_subscriptions import post, story_event

FAR = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
TRIAL_SUB = "sub_1TrialStory0001"
FIRST_PAID = "in_1TrialFirstPaid0001"
NEW_SALE = "💰 New Sale: $19.00"
RENEWAL_TYPES = ("invoice.paid", "invoice_payment.paid", "payment_intent.succeeded", "charge.succeeded")
RESET = """TRUNCATE subscriptions, subscription_events, subscription_invoices, renewal_invoices, webhook_logs, outbox,
         orders, payment_refs, delivery_attempts, order_rollups, channel_pace CASCADE"""


@pytest.fixture
async def quiet(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[Bot]:
    """The bot with SUBSCRIPTION_RENEWALS=report: a renewal pings nothing, a sale pings."""
    async with start_bot(dsn, fake_slack, SUBSCRIPTION_RENEWALS="report") as running_bot:
        yield running_bot


async def usd(bot: Bot) -> mrr.MrrFigures:
    """The store's USD MRR figures over all time."""
    got = await mrr.summary(bot.deps.pool, now=FAR, since=EPOCH)
    return {c.currency: c for c in got.currencies}["USD"]


def package_seats(round_: str) -> dict[str, Any]:
    """The basil story's subscription created with 25 seats of a package price: $50.00 per 10 seats."""
    evt = story_event("basil", "1_created")
    item = evt["data"]["object"]["items"]["data"][0]
    item["quantity"] = 25
    item["price"].update(unit_amount=5000, unit_amount_decimal="5000", nickname="Seats (per 10)",
                         transform_quantity={"divide_by": 10, "round": round_})
    item["plan"].update(amount=5000, amount_decimal="5000", transform_usage={"divide_by": 10, "round": round_})
    return evt


def with_coupon(evt: dict[str, Any], coupon: dict[str, Any]) -> dict[str, Any]:
    """An acacia subscription event whose legacy `discount` (sent expanded) carries this coupon."""
    obj = evt["data"]["object"]
    obj["discount"] = {"id": "di_1Coupon", "object": "discount", "end": None, "start": obj["created"],
                       "subscription": obj["id"], "customer": obj["customer"],
                       "coupon": {"object": "coupon", "percent_off": None, "duration": "forever", "valid": True,
                                  **coupon}}
    obj["discounts"] = ["di_1Coupon"]
    return evt


def acacia_created() -> dict[str, Any]:
    """acacia's customer.subscription.created of the $19.00/month story."""
    return story_event("acacia", "subscription_first/customer.subscription.created")


async def test_package_priced_seats_are_billed_per_package_not_per_seat(bot: Bot) -> None:
    """25 seats of $50.00 per 10 seats, rounded up, is 3 packages: $150.00 a month, not 25 × $50.00."""
    await post(bot, package_seats("up"))
    assert (await usd(bot)).mrr == 15000


def test_a_package_price_rounded_down_bills_only_whole_packages() -> None:
    """Rounded down, the 5 seats past the second package are not billed: $100.00 a month."""
    event = parse_event(package_seats("down"))
    assert event is not None and event.subscription is not None and minor(event.subscription.mrr) == 10000


def test_the_discounts_job_prices_packages_as_the_webhook_does() -> None:
    """What a snapshot keeps to recompute its MRR once discounts are read prices the package the same way."""
    obj = package_seats("up")["data"]["object"]
    kept = discounts.pricing(obj, counted=True)
    assert (kept["items"][0]["divide_by"], kept["items"][0]["round"]) == (10, "up")
    assert minor(pricing.mrr_of(kept, {}, currency="USD", at=FAR)) == 15000


async def test_acacia_amount_off_in_another_currency_is_not_taken_off(bot: Bot) -> None:
    """A €3.00 amount_off on a USD subscription (acacia sends the Discount expanded) is not applied: $19.00."""
    evt = with_coupon(acacia_created(), {"id": "EURO3", "amount_off": 300, "currency": "eur"})
    await post(bot, evt)
    assert (await usd(bot)).mrr == 1900


def test_an_amount_off_in_another_currency_applies_through_its_currency_options() -> None:
    """A €3.00 coupon whose currency_options give $3.50 takes $3.50 off a USD subscription."""
    options = {"usd": {"amount_off": 350}, "eur": {"amount_off": 300}}
    evt = with_coupon(acacia_created(), {"id": "EURO3", "amount_off": 300, "currency": "eur",
                                         "currency_options": options})
    event = parse_event(evt)
    assert event is not None and event.subscription is not None and minor(event.subscription.mrr) == 1550


def test_an_item_coupon_in_another_currency_is_not_taken_off() -> None:
    """An item's expanded Discount in euros leaves the USD item whole; one in dollars is taken off."""
    for currency, expected in (("eur", 1900), ("usd", 1600)):
        evt = acacia_created()
        evt["data"]["object"]["items"]["data"][0]["discounts"] = [
            {"id": "di_1Item", "object": "discount", "end": None,
             "coupon": {"id": "ITEM3", "object": "coupon", "amount_off": 300, "currency": currency,
                        "percent_off": None, "duration": "forever"}}]
        event = parse_event(evt)
        assert event is not None and event.subscription is not None
        assert minor(event.subscription.mrr) == expected, currency


def test_the_discounts_job_applies_an_amount_off_only_in_the_subscriptions_currency() -> None:
    """A coupon read by the job: its own amount in its currency, its currency_options in another, else nothing."""
    coupon = {"id": "EURO3", "amount_off": 300, "currency": "eur", "duration": "forever"}
    terms = discounts.coupon_terms(coupon, None)
    assert pricing.coupon_of(terms, currency="EUR").amount_off == 300
    assert pricing.coupon_of(terms, currency="USD").amount_off is None
    terms = discounts.coupon_terms(coupon | {"currency_options": {"usd": {"amount_off": 350}}}, None)
    assert pricing.coupon_of(terms, currency="USD").amount_off == 350


def trial_first_payment(name: str) -> dict[str, Any]:
    """One basil event of the trial's first real payment: the renewal story's, paying the trial subscription's
    first paid period (a `subscription_cycle` invoice, as Stripe bills a trial's end), under its own ids."""
    evt = copy.deepcopy(story_event("basil", f"subscription_renewal/{name}"))
    evt["id"] = evt["id"].replace("BAS", "TRIAL")
    text = json.dumps(evt)
    for old, new in (("in_1SubRenewStory0001", FIRST_PAID), ("pi_3SubRenewStory0001", "pi_3TrialFirstPaid0001"),
                     ("ch_3SubRenewStory0001", "ch_3TrialFirstPaid0001"), ("sub_1ProStory0001", TRIAL_SUB),
                     ("inpay_1SubRenewStory0001", "inpay_1TrialFirstPaid0001")):
        text = text.replace(old, new)
    out: dict[str, Any] = json.loads(text)
    return out


async def start_trial(bot: Bot) -> None:
    """The basil trial story: created trialing, its $0 invoice paid: no sale, no ping."""
    assert await post(bot, story_event("basil", "trial/customer.subscription.created")) == []
    assert await post(bot, story_event("basil", "trial/invoice.paid")) == []


async def test_the_first_payment_after_a_trial_is_a_sale_not_a_renewal(quiet: Bot) -> None:
    """At trial end Stripe bills the first paid period as `subscription_cycle`: still the subscription's first
    payment, so one sale ping even with SUBSCRIPTION_RENEWALS=report, and no renewal in the report's line."""
    await start_trial(quiet)
    invoice = trial_first_payment("invoice.paid")
    assert invoice["data"]["object"]["billing_reason"] == "subscription_cycle"
    texts = await post(quiet, invoice)
    assert [t for t in texts if t.startswith(NEW_SALE)], texts
    assert await quiet.deps.pool.fetchval("SELECT count(*) FROM renewal_invoices") == 0


def trial_update(n: int, at: int, before: str, after: str) -> dict[str, Any]:
    """The basil trial story's subscription moving from status `before` to `after` at `at`."""
    evt = copy.deepcopy(story_event("basil", "trial/customer.subscription.created"))
    evt.update(id=f"evt_1TrialMove{n}", created=at, type="customer.subscription.updated")
    evt["data"]["object"]["status"] = after
    evt["data"]["previous_attributes"] = {"status": before}
    return evt


async def test_a_trials_first_payment_after_a_declined_try_is_still_a_sale(quiet: Bot) -> None:
    """Trial ends (trialing → active), the first charge is declined (active → past_due: "MRR before > 0", yet no
    money was taken), a retry pays the cycle invoice: the subscription's first payment, one sale, no renewal
    (found by a review of the fix)."""
    await start_trial(quiet)
    invoice = trial_first_payment("invoice.paid")
    paid_at = invoice["created"]
    await post(quiet, trial_update(1, paid_at - 3 * 86_400, "trialing", "active"))
    await post(quiet, trial_update(2, paid_at - 3 * 86_400 + 3600, "active", "past_due"))
    texts = await post(quiet, invoice)
    assert await quiet.deps.pool.fetchval("SELECT count(*) FROM renewal_invoices") == 0
    assert [t for t in texts if t.startswith(NEW_SALE)], texts


async def test_a_trial_converted_before_invoices_were_kept_renews_quietly(quiet: Bot) -> None:
    """A trial that converted and paid before migration 0035 (no invoice of it kept): its next cycle invoice, a month
    on, is a renewal — its snapshots showed it in MRR weeks before (found by a review of the fix)."""
    await start_trial(quiet)
    first = trial_first_payment("invoice.paid")
    await post(quiet, trial_update(1, first["created"] - 60, "trialing", "active"))
    await post(quiet, first)
    await quiet.deps.pool.execute("DELETE FROM subscription_invoices")  # as before migration 0035
    nxt = trial_first_payment("invoice.paid")
    nxt["id"], nxt["created"] = "evt_1TrialSecondPaid", nxt["created"] + 31 * 86_400
    nxt["data"]["object"].update(id="in_1TrialSecondPaid01", created=nxt["created"] - 5)
    assert await post(quiet, nxt) == []
    renewed = await quiet.deps.pool.fetchval("SELECT array_agg(invoice_id) FROM renewal_invoices")
    assert "in_1TrialSecondPaid01" in renewed


async def test_the_payment_after_a_trials_first_one_is_a_renewal(quiet: Bot) -> None:
    """A month after the trial's first payment, the next cycle invoice renews a paying subscription: no ping."""
    await start_trial(quiet)
    await post(quiet, trial_first_payment("invoice.paid"))
    nxt = trial_first_payment("invoice.paid")
    nxt["id"], nxt["created"] = "evt_1TrialSecondPaid", nxt["created"] + 31 * 86_400
    nxt["data"]["object"].update(id="in_1TrialSecondPaid01", created=nxt["created"] - 5)
    assert await post(quiet, nxt) == []
    assert await quiet.deps.pool.fetchval("SELECT array_agg(invoice_id) FROM renewal_invoices") == [
        "in_1TrialSecondPaid01"]


async def test_a_subscription_first_seen_at_its_renewal_stays_a_renewal(quiet: Bot) -> None:
    """Installed mid-life: a cycle invoice of a subscription the bot never saw is taken at its word, a renewal."""
    assert await post(quiet, story_event("basil", "subscription_renewal/invoice.paid")) == []


async def test_a_trial_conversion_is_one_sale_whichever_event_comes_first(quiet: Bot) -> None:
    """The trial's first payment through all its basil events in every order: its "Subscription update"
    PaymentIntent is held as a likely renewal until the invoice says it is the first payment, then one sale."""
    events = [trial_first_payment(t) for t in RENEWAL_TYPES]
    assert events[2]["data"]["object"]["description"] == "Subscription update"
    for order in itertools.permutations(events):
        await quiet.deps.pool.execute(RESET)
        await start_trial(quiet)
        texts: list[str] = []
        for evt in order:
            texts += await post(quiet, evt)
        await quiet.deps.pool.execute("UPDATE outbox SET available_at = now() WHERE status = 'pending'")
        texts += await post_due(quiet)
        sold = [t for t in texts if t.startswith("💰")]
        assert len(sold) == 1 and sold[0].startswith(NEW_SALE), ([e["type"] for e in order], texts)


async def post_due(bot: Bot) -> list[str]:
    """Deliver what is due now; the texts Slack got."""
    before = len(bot.slack_api.posted())
    await bot.drain(until_idle=False, ignore_pace=True)
    return [p["text"] for p in bot.slack_api.posted()[before:]]


async def _ingest(conn: asyncpg.Connection, events: list[dict[str, Any]], sizes: list[int]) -> list[str]:
    """Apply the events to an empty ledger in batches of these sizes (report mode); the renewal invoices left."""
    await conn.execute(RESET)
    subs = [Submission("stripe", e["id"], e["type"], json.dumps(e), parse_event(e)) for e in events]
    i = 0
    for size in sizes:
        await ingest_batch(conn, subs[i:i + size], tz=ZoneInfo("UTC"), now=FAR, renewals=Renewals.REPORT)
        i += size
    return [r["invoice_id"] for r in await conn.fetch("SELECT invoice_id FROM renewal_invoices ORDER BY 1")]


@pytest.mark.parametrize(("order", "renewals"), [
    ((0, 1, 2, 3), ["in_1TrialSecondPaid01"]),
    # the first payment before anything of its trial: a subscription never seen, taken at its invoice's word
    ((2, 0, 1, 3), [FIRST_PAID, "in_1TrialSecondPaid01"]),
])
async def test_a_batch_tells_first_payments_from_renewals_as_batches_of_one(
        conn: asyncpg.Connection, order: tuple[int, ...], renewals: list[str]) -> None:
    """The trial, its first payment and the next renewal: one batch, or any split, tells the renewals batches of
    one do (a batch reads the ledger as it stood before it, plus its own earlier events)."""
    nxt = trial_first_payment("invoice.paid")
    nxt["id"], nxt["created"] = "evt_1TrialSecondPaid", nxt["created"] + 31 * 86_400
    nxt["data"]["object"]["id"] = "in_1TrialSecondPaid01"
    story = [story_event("basil", "trial/customer.subscription.created"), story_event("basil", "trial/invoice.paid"),
             trial_first_payment("invoice.paid"), nxt]
    stream = [story[i] for i in order]
    for sizes in ([1, 1, 1, 1], [4], [2, 2], [1, 3], [3, 1]):
        assert await _ingest(conn, stream, sizes) == renewals, sizes


def churn_story() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A 14-day trial that Stripe pauses at its end for want of a card (trial_settings.end_behavior
    .missing_payment_method = pause), canceled a week later: created, paused, deleted."""
    created = story_event("basil", "1_created")
    obj = created["data"]["object"]
    start = obj["created"]
    trial_end = start + 14 * 86_400
    obj.update(status="trialing", trial_start=start, trial_end=trial_end)
    paused = copy.deepcopy(created)
    paused.update(id="evt_1PausedTrial", type="customer.subscription.updated", created=trial_end + 1)
    paused["data"]["object"]["status"] = "paused"
    paused["data"]["previous_attributes"] = {"status": "trialing"}
    deleted = story_event("basil", "5_churned")
    canceled_at = trial_end + 7 * 86_400
    deleted.update(id="evt_1PausedTrialDeleted", created=canceled_at + 1)
    deleted["data"]["object"].update(items=copy.deepcopy(obj["items"]), status="canceled", trial_start=start,
                                     trial_end=trial_end, canceled_at=canceled_at, ended_at=canceled_at,
                                     cancel_at_period_end=False, cancel_at=None)
    return created, paused, deleted


async def test_a_trial_paused_for_want_of_a_card_then_canceled_is_no_churn(bot: Bot) -> None:
    """Never paid, never in MRR: the ledger counts no churn, and no "Subscriber churned" ping says otherwise."""
    texts: list[str] = []
    for evt in churn_story():
        texts += await post(bot, evt)
    got = await usd(bot)
    assert (got.mrr, got.churned, got.churned_count) == (0, 0, 0)
    assert texts == []


async def test_a_subscription_that_expired_incomplete_is_no_churn(bot: Bot) -> None:
    """Its first invoice never paid (incomplete_expired): deleted alone, it loses nothing and pings nothing."""
    deleted = story_event("basil", "5_churned")
    deleted["data"]["object"]["status"] = "incomplete_expired"
    assert await post(bot, deleted) == []
    got = await usd(bot)
    assert (got.churned, got.churned_count) == (0, 0)


def renewal(name: str) -> dict[str, Any]:
    """One acacia event of the $19.00 renewal."""
    return story_event("acacia", f"subscription_renewal/{name}")


@pytest.mark.parametrize(("refunded", "revenue"), [(1900, 0), (500, 1900)])
async def test_renewal_revenue_counts_refunds_as_all_revenue_does(quiet: Bot, refunded: int, revenue: int) -> None:
    """A renewal refunded in full leaves revenue and the report's "Renewals yesterday" line alike; one refunded in
    part stays whole in both (completed orders at their amount, queries/sales.py)."""
    for evt in (renewal("invoice.paid"), renewal("charge.succeeded")):
        assert (await quiet.stripe(evt)).status == 200
    refund = renewal("charge.succeeded")
    refund.update(id="evt_1RenewalRefunded", type="charge.refunded", created=refund["created"] + 600)
    refund["data"]["object"].update(refunded=refunded == 1900, amount_refunded=refunded)
    assert (await quiet.stripe(refund)).status == 200
    paid = dt.datetime.fromtimestamp(renewal("invoice.paid")["created"], dt.UTC)
    start, end = paid - dt.timedelta(hours=12), paid + dt.timedelta(hours=12)
    day = sum(t.revenue for t in await sales.window_totals(quiet.deps.pool, start=start, end=end))
    renewals = await subscriptions.renewal_totals(quiet.deps.pool, start=start, end=end)
    assert day == revenue and sum(t.revenue for t in renewals) == revenue, renewals


def status_change(n: int, at: int, before: str, after: str) -> dict[str, Any]:
    """The basil story's subscription ($19.00/month) moving from status `before` to `after` at `at`."""
    evt = story_event("basil", "2_renewed")
    evt.update(id=f"evt_1StatusChange{n}", created=at)
    evt["data"]["object"]["status"] = after
    evt["data"]["previous_attributes"] = {"status": before}
    return evt


async def test_a_paying_subscriber_who_comes_back_is_reactivation_not_new_mrr(bot: Bot) -> None:
    """First seen after install at past_due → unpaid (its event says it paid $19.00: churn), then unpaid → active:
    reactivation MRR, since it had paid before, not new MRR."""
    t0 = 1_760_000_000
    for n, (before, after) in enumerate([("past_due", "unpaid"), ("unpaid", "active")]):
        await post(bot, status_change(n, t0 + n * 86_400, before, after))
    got = await usd(bot)
    assert (got.mrr, got.churned, got.new, got.reactivation) == (1900, 1900, 0, 1900)
