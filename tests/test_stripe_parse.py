"""parse_event against real Stripe payloads, hand-made edge cases and arbitrary JSON."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.intake.events import Kind, MalformedEvent, PaymentEvent
from bot.stripe.parse import HANDLED_TYPES, parse_event
from tests.reference import STRIPE_DIR, stripe_fixture, wrap_event

RUBY = "stripe-ruby-mock"
FIXTURES3 = "openapi/fixtures3.json"

# dj-stripe names files after the object (charge_ch_…); these are the events such objects arrive in.
DJ_STRIPE_TYPES = {
    "payment_intent_": "payment_intent.succeeded",
    "charge_": "charge.succeeded",
    "dispute_": "charge.dispute.created",
    "invoice_": "invoice.paid",
}

# fixtures3 objects are in non-terminal states; each is patched into the state its event type implies.
FIXTURES3_EVENTS: dict[str, tuple[str, dict[str, Any]]] = {
    "checkout.session": (
        "checkout.session.completed",
        {
            "status": "complete",
            "payment_status": "paid",
            "amount_subtotal": 1099,
            "amount_total": 1099,
            "currency": "usd",
        },
    ),
    "payment_intent": (
        "payment_intent.succeeded",
        {"status": "succeeded", "amount_received": 1099, "last_payment_error": None},
    ),
    "charge": (
        "charge.refunded",
        {"refunded": True, "captured": True, "amount_captured": 100, "amount_refunded": 40},
    ),
    "invoice": (
        "invoice.paid",
        {"status": "paid", "amount_paid": 1000, "amount_remaining": 0, "last_finalization_error": None},
    ),
    "dispute": ("charge.dispute.created", {}),
}

# What each reference file means to salespulse: None is "nothing to record".
EXPECTED_KINDS: dict[str, Kind | None] = {
    f"{RUBY}/checkout.session.completed.json": Kind.SALE,
    f"{RUBY}/checkout.session.completed.payment_mode.json": Kind.SALE,
    f"{RUBY}/checkout.session.completed.setup_mode.json": None,
    f"{RUBY}/payment_intent.succeeded.json": Kind.SALE,
    f"{RUBY}/payment_intent.payment_failed.json": Kind.FAILURE,
    f"{RUBY}/payment_intent.requires_action.json": None,
    f"{RUBY}/payment_intent.canceled.json": None,
    # charge.succeeded links ch_ ↔ pi_ (and names the customer); payment_intent.succeeded counts the money.
    f"{RUBY}/charge.succeeded.json": Kind.LINK,
    f"{RUBY}/charge.failed.json": None,
    f"{RUBY}/charge.refunded.json": Kind.REFUND,
    f"{RUBY}/charge.dispute.created.json": Kind.DISPUTE,
    f"{RUBY}/charge.dispute.closed.json": Kind.DISPUTE_SETTLED,  # re-reads net (a won dispute), no ping
    f"{RUBY}/charge.dispute.funds_withdrawn.json": None,
    f"{RUBY}/invoice.paid.json": Kind.SALE,
    # invoice.payment_succeeded fires alongside invoice.paid: counting both would double the sale.
    f"{RUBY}/invoice.payment_succeeded.json": None,
    f"{RUBY}/invoice.payment_failed.json": Kind.FAILURE,
    f"{RUBY}/invoice.payment_action_required.json": None,
    f"{RUBY}/customer.subscription.created.json": Kind.SUBSCRIPTION,
    "pay-rails/charge.refunded.json": Kind.REFUND,
    "pay-rails/charge.succeeded.json": Kind.LINK,
    "pay-rails/checkout.session.completed.json": Kind.SALE,
    "pay-rails/invoice.payment_failed.json": Kind.FAILURE,
    "pay-rails/invoice.payment_action_required.json": None,
    "pay-rails/subscription.deleted.json": Kind.SUBSCRIPTION,
    "dj-stripe/charge_ch_fakefakefakefakefake0001.json": Kind.LINK,
    "dj-stripe/dispute_dp_fakefakefakefake01.json": Kind.DISPUTE,
    "dj-stripe/dispute_dp_funds_reinstated_full.json": Kind.DISPUTE,
    "dj-stripe/invoice_in_fakefakefakefakefake0001.json": Kind.SALE,
    "dj-stripe/payment_intent_pi_fakefakefakefakefake0001.json": Kind.SALE,
}


def reference_files() -> list[str]:
    """Every Stripe reference file except the fixtures3 resource bag, as paths relative to STRIPE_DIR."""
    return sorted(
        path.relative_to(STRIPE_DIR).as_posix()
        for path in STRIPE_DIR.rglob("*.json")
        if path.relative_to(STRIPE_DIR).as_posix() != FIXTURES3
        # derived stories, tested on their own below and in test_subscriptions.py
        and path.relative_to(STRIPE_DIR).parts[0] not in ("versions", "subscriptions")
    )


def reference_event(relpath: str) -> dict[str, Any]:
    """The webhook body a reference file stands for: envelopes as they are, bare objects wrapped."""
    raw = stripe_fixture(relpath)
    source, _, name = relpath.partition("/")
    stem = name.removesuffix(".json")
    if source in (RUBY, "versions"):  # the versions stories are webhook envelopes already
        return raw
    if source == "pay-rails":
        return wrap_event(raw, f"customer.{stem}" if stem.startswith("subscription.") else stem)
    if source == "dj-stripe":
        event_type = next(t for prefix, t in DJ_STRIPE_TYPES.items() if stem.startswith(prefix))
        return wrap_event(raw, event_type)
    raise AssertionError(f"no rule to turn {relpath} into an event")


def fixtures3_event(resource: str) -> dict[str, Any]:
    """A fixtures3 resource patched into a terminal state and wrapped in the event that reports it."""
    event_type, patch = FIXTURES3_EVENTS[resource]
    obj = {**stripe_fixture(FIXTURES3)["resources"][resource], **patch}
    return wrap_event(obj, event_type)


@cache
def parsed(relpath: str) -> PaymentEvent | None:
    """parse_event of a reference file, computed once per run."""
    return parse_event(reference_event(relpath))


def handled(relpath: str) -> PaymentEvent:
    """parse_event of a reference file that must yield an event."""
    event = parsed(relpath)
    assert event is not None, relpath
    return event


def ruby_object(name: str) -> dict[str, Any]:
    """A fresh copy of a stripe-ruby-mock event's data.object, to edit."""
    obj = stripe_fixture(f"{RUBY}/{name}.json")["data"]["object"]
    assert isinstance(obj, dict)
    return copy.deepcopy(obj)


def parse_object(obj: dict[str, Any], event_type: str) -> PaymentEvent | None:
    """parse_event of `obj` wrapped in an event of `event_type`."""
    return parse_event(wrap_event(obj, event_type))


TEXT_FIELDS = """currency customer_email customer_name product affiliate failure_reason checkout_session_id
payment_intent_id invoice_id charge_id dispute_id dispute_reason dispute_status""".split()


def assert_well_formed(event: PaymentEvent) -> None:
    """The invariants every returned event keeps, whatever the input."""
    assert event.refs and all(isinstance(ref, str) and ref for ref in event.refs)
    assert len(set(event.refs)) == len(event.refs)
    assert event.occurred_at.utcoffset() is not None
    assert event.currency is None or (len(event.currency) == 3 and event.currency.isupper())
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in event.metadata.items())
    for name in ("amount", "amount_refunded"):
        value = getattr(event, name)
        assert value is None or (isinstance(value, int) and not isinstance(value, bool)), name
    for name in TEXT_FIELDS:
        assert getattr(event, name) is None or isinstance(getattr(event, name), str), name


# --- every reference payload ---------------------------------------------------------------------


def test_the_reference_set_is_present() -> None:
    """The reference payloads are found, so the parametrised tests below are not silently empty."""
    assert len(reference_files()) >= 30, f"Stripe reference payloads missing under {STRIPE_DIR}"


@pytest.mark.parametrize("relpath", reference_files())
def test_every_reference_payload_parses_without_an_exception(relpath: str) -> None:
    """Each real Stripe payload yields a well-formed event or None, never an exception."""
    event = parsed(relpath)
    if event is not None:
        assert_well_formed(event)


@pytest.mark.parametrize("resource", sorted(FIXTURES3_EVENTS))
def test_current_shape_objects_from_fixtures3_parse(resource: str) -> None:
    """Stripe's own current-shape objects, patched to a terminal state, each yield an event."""
    event = parse_event(fixtures3_event(resource))
    assert event is not None
    assert_well_formed(event)


@pytest.mark.parametrize(("relpath", "kind"), sorted(EXPECTED_KINDS.items()))
def test_reference_payloads_map_to_the_expected_kind(relpath: str, kind: Kind | None) -> None:
    """Each reference payload means what salespulse should record for it (or nothing)."""
    event = parsed(relpath)
    assert (event.kind if event else None) == kind


# --- exact expectations for key payloads ---------------------------------------------------------


def test_completed_checkout_is_a_sale_with_amount_currency_and_email() -> None:
    """stripe-ruby-mock checkout.session.completed: a 30.00 USD sale by stripe@example.com."""
    event = handled(f"{RUBY}/checkout.session.completed.json")
    assert (event.kind, event.amount, event.currency) == (Kind.SALE, 3000, "USD")
    assert event.customer_email == "stripe@example.com"
    assert event.event_id == "evt_000000000000000000000000"
    assert event.occurred_at == datetime.fromtimestamp(1648319959, tz=UTC)
    assert event.livemode is False
    assert event.checkout_session_id == event.refs[1] and event.checkout_session_id.startswith("cs_test_")
    assert event.refs[0] == event.payment_intent_id == "pi_000000000000000000000000"


def test_checkout_in_setup_mode_records_nothing() -> None:
    """A setup-mode session (card saved, amount null) is not a sale."""
    assert parsed(f"{RUBY}/checkout.session.completed.setup_mode.json") is None


def test_failed_payment_intent_carries_stripes_decline_message() -> None:
    """payment_intent.payment_failed: FAILURE with last_payment_error.message."""
    event = handled(f"{RUBY}/payment_intent.payment_failed.json")
    assert (event.kind, event.amount, event.failure_reason) == (Kind.FAILURE, 2000, "Your card was declined.")
    assert event.charge_id == "ch_000000000000000000000000"


def test_full_refund_reports_the_whole_amount_refunded() -> None:
    """stripe-ruby-mock charge.refunded: 100 refunded of 100."""
    event = handled(f"{RUBY}/charge.refunded.json")
    assert (event.kind, event.amount, event.amount_refunded) == (Kind.REFUND, 100, 100)
    assert event.refs == ("ch_000000000000000000000000",)


def test_partial_refund_reports_the_cumulative_amount_refunded() -> None:
    """pay-rails charge.refunded: 500 refunded of 1500."""
    event = handled("pay-rails/charge.refunded.json")
    assert (event.kind, event.amount, event.amount_refunded, event.currency) == (
        Kind.REFUND,
        1500,
        500,
        "USD",
    )
    assert event.charge_id == "ch_chargeid" and event.refs[-1] == "ch_chargeid"


def test_dispute_carries_its_id_reason_status_and_charge() -> None:
    """charge.dispute.created: DISPUTE, reason fraudulent, keyed by the disputed charge."""
    event = handled(f"{RUBY}/charge.dispute.created.json")
    assert (event.kind, event.amount, event.dispute_reason) == (Kind.DISPUTE, 100, "fraudulent")
    assert (event.dispute_id, event.dispute_status) == (
        "dp_000000000000000000000000",
        "warning_needs_response",
    )
    assert event.refs == ("ch_000000000000000000000000",)


def test_paid_invoice_is_a_sale_keyed_by_intent_invoice_then_charge() -> None:
    """stripe-ruby-mock invoice.paid: SALE of amount_paid, refs in preference order."""
    event = handled(f"{RUBY}/invoice.paid.json")
    assert (event.kind, event.amount, event.product) == (Kind.SALE, 2000, "(created by Stripe CLI)")
    assert event.refs == (
        "pi_000000000000000000000000",
        "in_000000000000000000000000",
        "ch_000000000000000000000000",
    )


def test_basil_invoice_failure_without_charge_or_intent_still_parses() -> None:
    """pay-rails invoice.payment_failed (2025 shape, no charge/payment_intent): FAILURE by attempt count."""
    event = handled("pay-rails/invoice.payment_failed.json")
    assert (event.kind, event.amount, event.failure_reason) == (
        Kind.FAILURE,
        24900,
        "Invoice payment failed (attempt 1)",
    )
    assert event.refs == ("in_1234",) and event.charge_id is None and event.payment_intent_id is None
    assert (event.customer_email, event.customer_name) == ("customer@example.org", "Example Customer")
    assert event.product == "Example"  # its line, "1 × Example (at $249.00 / year)"
    assert event.livemode is True


@pytest.mark.parametrize(("line", "product"), [
    ("1 × Pro plan (at $19.00 / month)", "Pro plan"),
    ("3 × Team seat (at €5.00 / month)", "Team seat × 3"),
    ("1 × Pro (à 29,00 € / mois)", "Pro"),  # an invoice in French
    ("2 × Box (Large) (at $3.00 / month)", "Box (Large) × 2"),
    ("Unused time on Pro plan after 05 Jan 2027", "Unused time on Pro plan after 05 Jan 2027"),
    ("Ebook", "Ebook"),
])
def test_an_invoice_lines_subscription_item_reads_as_its_product(line: str, product: str) -> None:
    """Stripe describes a subscription item's line as "N × name (at price / interval)": the ping shows the name."""
    evt = wrap_event(stripe_fixture("pay-rails/invoice.payment_failed.json"), "invoice.payment_failed")
    evt["data"]["object"]["lines"]["data"][0]["description"] = line
    event = parse_event(evt)
    assert event is not None and event.product == product


def test_old_shape_payment_intent_refs_include_its_charge_and_invoice() -> None:
    """A 2020-shape PaymentIntent is known by its id, its invoice and the charge in charges.data."""
    event = handled("dj-stripe/payment_intent_pi_fakefakefakefakefake0001.json")
    assert event.refs == (
        "pi_fakefakefakefakefake0001",
        "in_fakefakefakefakefake0001",
        "ch_fakefakefakefakefake0001",
    )
    assert event.amount == 2000 and event.customer_name == "alex-nesnes@hotmail.fr"


def test_checkout_session_and_payment_intent_of_one_payment_share_a_ref() -> None:
    """The same payment seen via checkout.session.completed and payment_intent.succeeded has one order ref."""
    session = handled(f"{RUBY}/checkout.session.completed.json")
    intent = handled(f"{RUBY}/payment_intent.succeeded.json")
    assert set(session.refs) & set(intent.refs)
    assert session.order_ref == intent.order_ref


def test_current_shape_checkout_session_and_payment_intent_share_a_ref() -> None:
    """fixtures3's session and intent (same pi_) line up too."""
    session = parse_event(fixtures3_event("checkout.session"))
    intent = parse_event(fixtures3_event("payment_intent"))
    assert session is not None and intent is not None
    assert session.order_ref == intent.order_ref == "pi_1PgafyB7WZ01zgkWSjxsAJo3"
    assert session.session_created_at == datetime.fromtimestamp(1234567890, tz=UTC)


def test_intent_invoice_and_dispute_of_one_payment_share_a_ref() -> None:
    """dj-stripe's payment intent, invoice and dispute of ch_fake…0001 overlap pairwise."""
    events = [
        handled(f"dj-stripe/{name}.json")
        for name in (
            "payment_intent_pi_fakefakefakefakefake0001",
            "invoice_in_fakefakefakefakefake0001",
            "dispute_dp_fakefakefakefake01",
        )
    ]
    for i, first in enumerate(events):
        for second in events[i + 1 :]:
            assert set(first.refs) & set(second.refs), (first.event_type, second.event_type)


# --- checkout session states ---------------------------------------------------------------------


def test_unpaid_completed_checkout_is_pending() -> None:
    """A session completed with a delayed method (payment_status unpaid) is PENDING, not a sale."""
    obj = ruby_object("checkout.session.completed") | {"payment_status": "unpaid"}
    event = parse_object(obj, "checkout.session.completed")
    assert event is not None and event.kind is Kind.PENDING and event.amount == 3000


@pytest.mark.parametrize(
    "patch",
    [
        {"amount_total": 0, "payment_status": "no_payment_required"},
        {"amount_total": 0},
        {"payment_status": "no_payment_required"},
    ],
)
def test_free_checkout_is_free_not_a_sale(patch: dict[str, Any]) -> None:
    """A zero-total or no_payment_required session (trial, 100% coupon) takes no money: FREE, not a sale."""
    event = parse_object(ruby_object("checkout.session.completed") | patch, "checkout.session.completed")
    assert event is not None and event.kind is Kind.FREE


@pytest.mark.parametrize(
    ("event_type", "kind"),
    [
        ("checkout.session.async_payment_succeeded", Kind.SALE),
        ("checkout.session.async_payment_failed", Kind.FAILURE),
        ("checkout.session.expired", Kind.CHECKOUT_EXPIRED),
    ],
)
def test_later_checkout_events_map_to_their_kind(event_type: str, kind: Kind) -> None:
    """Async success, async failure and expiry each have their own kind, with the session's created time."""
    obj = ruby_object("checkout.session.completed") | {"created": 1648319000}
    event = parse_object(obj, event_type)
    assert event is not None and event.kind is kind
    assert event.session_created_at == datetime.fromtimestamp(1648319000, tz=UTC)


def test_async_failure_has_a_default_reason() -> None:
    """checkout.session.async_payment_failed says the asynchronous payment failed."""
    event = parse_object(ruby_object("checkout.session.completed"), "checkout.session.async_payment_failed")
    assert event is not None and event.failure_reason == "Asynchronous payment failed"


def test_expanded_payment_intent_is_read_like_an_id() -> None:
    """A session whose payment_intent is the expanded object is keyed by that object's id and error."""
    intent = ruby_object("payment_intent.payment_failed")
    obj = ruby_object("checkout.session.completed") | {"payment_intent": intent}
    event = parse_object(obj, "checkout.session.async_payment_failed")
    assert event is not None
    assert event.payment_intent_id == "pi_000000000000000000000000" == event.order_ref
    assert event.charge_id == "ch_000000000000000000000000"
    assert event.failure_reason == "Your card was declined."


# --- field sources and hostile shapes ------------------------------------------------------------


def test_nulls_everywhere_do_not_break_a_sale() -> None:
    """customer_details, metadata, payment_intent and the rest may all be null."""
    obj = ruby_object("checkout.session.completed")
    obj |= {"customer_details": None, "metadata": None, "payment_intent": None, "currency": None}
    event = parse_object(obj, "checkout.session.completed")
    assert event is not None and event.kind is Kind.SALE
    assert (event.customer_email, event.currency, event.metadata) == (None, None, {})
    assert event.refs == (event.checkout_session_id,)


def test_metadata_keeps_string_pairs_and_names_product_and_affiliate() -> None:
    """Scalars are stringified, nested values dropped; productName and affiliateId are read from it."""
    meta = {"productName": "Course", "affiliateId": 42, "flag": True, "nested": {"a": 1}, "none": None}
    obj = ruby_object("payment_intent.succeeded") | {"metadata": meta}
    event = parse_object(obj, "payment_intent.succeeded")
    assert event is not None
    assert event.metadata == {"productName": "Course", "affiliateId": "42", "flag": "true"}
    assert (event.product, event.affiliate) == ("Course", "42")


@pytest.mark.parametrize(
    ("metadata", "product"),
    [
        ({"product_name": "A", "product": "B", "offerId": "C"}, "A"),
        ({"product": "B", "offerId": "C"}, "B"),
        ({"offerId": "C"}, "C"),
        ({}, "(created by Stripe CLI)"),
    ],
)
def test_product_prefers_metadata_then_description(metadata: dict[str, str], product: str) -> None:
    """productName, product_name, product, offerId, then the object's description."""
    obj = ruby_object("payment_intent.succeeded") | {"metadata": metadata}
    event = parse_object(obj, "payment_intent.succeeded")
    assert event is not None and event.product == product


def test_email_and_name_come_from_an_expanded_latest_charge() -> None:
    """A current-shape PaymentIntent (no charges list) gives email and name through latest_charge."""
    charge = {"id": "ch_1", "billing_details": {"email": "a@example.com", "name": "Ann"}}
    obj = ruby_object("payment_intent.succeeded") | {"latest_charge": charge}
    del obj["charges"]
    event = parse_object(obj, "payment_intent.succeeded")
    assert event is not None
    assert (event.customer_email, event.customer_name, event.charge_id) == ("a@example.com", "Ann", "ch_1")


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        ({"decline_code": "insufficient_funds", "code": "card_declined"}, "insufficient_funds"),
        ({"code": "card_declined"}, "card_declined"),
        (None, "Payment failed"),
        ("not an object", "Payment failed"),
    ],
)
def test_payment_failure_reason_falls_back_through_decline_code_and_code(error: Any, reason: str) -> None:
    """message, else decline_code, else code, else a generic reason."""
    obj = ruby_object("payment_intent.payment_failed") | {"last_payment_error": error}
    event = parse_object(obj, "payment_intent.payment_failed")
    assert event is not None and event.failure_reason == reason


def test_invoice_failure_prefers_stripes_finalization_message() -> None:
    """invoice.payment_failed uses last_finalization_error.message when Stripe sends one."""
    obj = ruby_object("invoice.payment_failed") | {"last_finalization_error": {"message": "No tax ID"}}
    event = parse_object(obj, "invoice.payment_failed")
    assert event is not None and event.failure_reason == "No tax ID"


def test_basil_invoice_payments_list_supplies_intent_and_charge() -> None:
    """A 2025 invoice with `payments` expanded is keyed by the payment intent inside it."""
    obj = stripe_fixture("pay-rails/invoice.payment_failed.json")["object"] | {
        "payments": {"data": [{"payment": {"type": "payment_intent", "payment_intent": {"id": "pi_9"}}}]}
    }
    event = parse_object(obj, "invoice.paid")
    assert event is not None and event.refs == ("pi_9", "in_1234")


def test_currency_is_upper_cased_and_nonsense_dropped() -> None:
    """ "eur" becomes "EUR"; something that cannot be an ISO code becomes None."""
    eur = parse_object(ruby_object("charge.refunded") | {"currency": "eur"}, "charge.refunded")
    bad = parse_object(ruby_object("charge.refunded") | {"currency": "currency"}, "charge.refunded")
    assert eur is not None and eur.currency == "EUR"
    assert bad is not None and bad.currency is None


def test_occurred_at_falls_back_to_the_objects_created() -> None:
    """An event without a usable `created` takes the object's."""
    raw = reference_event(f"{RUBY}/charge.refunded.json") | {"created": "yesterday"}
    event = parse_event(raw)
    assert event is not None and event.occurred_at == datetime.fromtimestamp(1648319947, tz=UTC)


def test_livemode_defaults_to_false() -> None:
    """A missing or non-boolean livemode is test mode."""
    raw = reference_event(f"{RUBY}/charge.refunded.json")
    for livemode in (None, "true", 1):
        event = parse_event({**raw, "livemode": livemode})
        assert event is not None and event.livemode is False


def test_unhandled_types_return_none_whatever_their_object() -> None:
    """customer.created and the like are ignored, even with an empty object."""
    assert parse_event({"id": "evt_1", "type": "customer.created", "data": {"object": {}}}) is None


# --- malformed bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        [],
        {},
        "evt_1",
        {"id": "evt_1", "type": "charge.refunded"},
        {"id": "evt_1", "type": "charge.refunded", "data": None},
        {"id": "evt_1", "type": "charge.refunded", "data": {"object": []}},
        {"id": 1, "type": "charge.refunded", "data": {"object": {"id": "ch_1", "created": 1}}},
        {"id": "", "type": "charge.refunded", "data": {"object": {"id": "ch_1", "created": 1}}},
        {"id": "evt_1", "type": None, "data": {"object": {"id": "ch_1", "created": 1}}},
    ],
    ids=["list", "empty", "string", "no-data", "null-data", "list-object", "int-id", "empty-id", "null-type"],
)
def test_bodies_that_are_not_events_raise_malformed(raw: Any) -> None:
    """No string id, no string type, or no data.object: MalformedEvent."""
    with pytest.raises(MalformedEvent):
        parse_event(raw)


def test_handled_event_without_any_time_raises_malformed() -> None:
    """Neither the event nor its object says when: MalformedEvent, not a guessed time."""
    with pytest.raises(MalformedEvent, match="created"):
        parse_event({"id": "evt_1", "type": "charge.refunded", "data": {"object": {"id": "ch_1"}}})


def test_handled_event_without_any_id_raises_malformed() -> None:
    """An object with no id of its own or of its payment cannot be keyed: MalformedEvent."""
    with pytest.raises(MalformedEvent, match="id"):
        parse_event({"id": "evt_1", "type": "charge.refunded", "created": 1, "data": {"object": {}}})


# --- arbitrary JSON ------------------------------------------------------------------------------

# Keys the parser reads, at any depth, so arbitrary JSON reaches its branches rather than only unknown keys.
KEYS = st.sampled_from(
    """id object created amount amount_total amount_received amount_refunded amount_paid amount_due
    attempt_count currency mode payment_status customer_details customer_email customer_name receipt_email
    billing_details metadata description payment_intent latest_charge charges charge invoice payments lines
    last_payment_error last_finalization_error reason status data email name message code decline_code
    payment_method price plan nickname payment productName affiliateId livemode type parent
    subscription subscription_details subscription_item_details billing_reason pricing price_details product
    api_version""".split()
) | st.text(max_size=6)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=16,
)


def parse_or_reject(raw: Any) -> None:
    """parse_event returns an event or None, or raises MalformedEvent: nothing else."""
    try:
        event = parse_event(raw)
    except MalformedEvent:
        return
    if event is not None:
        assert isinstance(event, PaymentEvent)
        assert_well_formed(event)


@settings(max_examples=300)
@given(
    event_type=st.sampled_from(sorted(HANDLED_TYPES)),
    obj=st.dictionaries(KEYS, JSON, max_size=10),
    # A valid time and object id, so every example reaches the field readers (junk in those two is
    # covered by the tests below and the malformed-body cases above).
    created=st.integers(0, 2**32),
    own_id=st.text(min_size=1, max_size=6),
)
def test_arbitrary_objects_never_raise_anything_but_malformed(
    event_type: str, obj: dict[str, Any], created: int, own_id: str
) -> None:
    """Any JSON object under a handled type parses or is rejected as malformed."""
    obj = obj | {"id": own_id}
    parse_or_reject({"id": "evt_1", "type": event_type, "created": created, "data": {"object": obj}})


@given(raw=JSON)
def test_arbitrary_bodies_never_raise_anything_but_malformed(raw: Any) -> None:
    """Any JSON value at all as the body parses or is rejected as malformed."""
    parse_or_reject(raw)


HANDLED_REFERENCE = sorted(path for path, kind in EXPECTED_KINDS.items() if kind is not None)


def json_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a node inside a decoded JSON value."""
    children: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    paths = [prefix]
    for key, child in children:
        paths += json_paths(child, (*prefix, key))
    return paths


@settings(max_examples=300)
@given(data=st.data())
def test_real_payloads_with_any_field_replaced_never_raise_anything_but_malformed(
    data: st.DataObject,
) -> None:
    """A real event with a few nodes, at any depth, swapped for arbitrary JSON still parses or is rejected."""
    raw = copy.deepcopy(reference_event(data.draw(st.sampled_from(HANDLED_REFERENCE), label="file")))
    for _ in range(data.draw(st.integers(1, 4), label="swaps")):
        path = data.draw(st.sampled_from(json_paths(raw)[1:]), label="path")
        node = raw
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = data.draw(JSON, label="replacement")
    parse_or_reject(raw)


# --- one payment across API versions (tests/fixtures/stripe/versions, see its PROVENANCE.md) ---------

VERSIONS_DIR = Path(__file__).parent / "fixtures" / "stripe" / "versions"
API_VERSIONS = {"acacia": "2024-09-30.acacia", "basil": "2025-03-31.basil", "clover": "2025-09-30.clover",
                "dahlia": "2026-03-25.dahlia", "endive": "2026-09-30.endive"}
CS, PI, CH = "cs_test_a1OneOffStory0001", "pi_3OneOffStory0001", "ch_3OneOffStory0001"
SUB_CS, SUB_IN, SUB_PI, SUB_CH = (
    "cs_test_b1SubStartStory0001", "in_1SubFirstStory0001", "pi_3SubFirstStory0001", "ch_3SubFirstStory0001")
RE_IN, RE_PI, RE_CH = "in_1SubRenewStory0001", "pi_3SubRenewStory0001", "ch_3SubRenewStory0001"
TRIAL_CS, TRIAL_IN = "cs_test_c1TrialStory0001", "in_1TrialStory0001"
PLAN_LINE = "Pro plan"  # the invoice line "1 × Pro plan (at $19.00 / month)", as a product name
ADA, GRACE = ("ada@example.com", "Ada Lovelace"), ("grace@example.com", "Grace Hopper")


def story_files() -> list[tuple[str, str, str]]:
    """(version, story, event type) for every versioned fixture."""
    return sorted(
        (path.parts[-3], path.parts[-2], path.stem) for path in VERSIONS_DIR.glob("*/*/*.json")
    )


def story_event(version: str, story: str, event_type: str) -> dict[str, Any]:
    """A versioned fixture's webhook body."""
    raw = json.loads((VERSIONS_DIR / version / story / f"{event_type}.json").read_text(encoding="utf-8"))
    assert isinstance(raw, dict)
    return raw


def story_events(version: str, story: str) -> dict[str, PaymentEvent | None]:
    """Every event of one story in one version, parsed, by event type."""
    return {t: parse_event(story_event(v, s, t)) for v, s, t in story_files() if (v, s) == (version, story)}


@dataclass(frozen=True)
class Expect:
    """What one versioned event must parse to; refs per version where the shapes differ."""

    kind: Kind | None
    refs: tuple[str, ...] = ()
    basil_refs: tuple[str, ...] | None = None  # basil, clover and dahlia, when not `refs`
    amount: int | None = None
    product: str | None = None
    customer: tuple[str, str] | tuple[None, None] = (None, None)

    def refs_in(self, version: str) -> tuple[str, ...]:
        """The refs expected in `version`."""
        return self.refs if version == "acacia" or self.basil_refs is None else self.basil_refs


EXPECTED_STORIES: dict[tuple[str, str], Expect] = {
    ("one_off", "checkout.session.completed"): Expect(Kind.SALE, (PI, CS), amount=4900,
                                                      product="Async Python course", customer=ADA),
    ("one_off", "payment_intent.succeeded"): Expect(Kind.SALE, (PI, CH), amount=4900),
    ("one_off", "charge.succeeded"): Expect(Kind.LINK, (PI, CH), customer=ADA),
    ("subscription_first", "checkout.session.completed"): Expect(Kind.SALE, (SUB_CS, SUB_IN), amount=1900,
                                                                 customer=GRACE),
    ("subscription_first", "invoice.paid"): Expect(Kind.SALE, (SUB_PI, SUB_IN, SUB_CH), (SUB_IN,), amount=1900,
                                                   product=PLAN_LINE, customer=GRACE),
    ("subscription_first", "invoice_payment.paid"): Expect(Kind.LINK, (SUB_PI, SUB_IN)),
    ("subscription_first", "payment_intent.succeeded"): Expect(Kind.SALE, (SUB_PI, SUB_IN, SUB_CH), (SUB_PI, SUB_CH),
                                                               amount=1900),
    ("subscription_first", "charge.succeeded"): Expect(Kind.LINK, (SUB_PI, SUB_IN, SUB_CH), (SUB_PI, SUB_CH),
                                                       customer=GRACE),
    ("subscription_first", "customer.subscription.created"): Expect(Kind.SUBSCRIPTION, ("sub_1ProStory0001",),
                                                                    amount=1900, product="Pro monthly"),
    ("subscription_renewal", "invoice.paid"): Expect(Kind.SALE, (RE_PI, RE_IN, RE_CH), (RE_IN,), amount=1900,
                                                     product=PLAN_LINE, customer=GRACE),
    ("subscription_renewal", "invoice_payment.paid"): Expect(Kind.LINK, (RE_PI, RE_IN)),
    ("subscription_renewal", "payment_intent.succeeded"): Expect(Kind.SALE, (RE_PI, RE_IN, RE_CH), (RE_PI, RE_CH),
                                                                 amount=1900),
    ("subscription_renewal", "charge.succeeded"): Expect(Kind.LINK, (RE_PI, RE_IN, RE_CH), (RE_PI, RE_CH),
                                                         customer=GRACE),
    ("trial", "invoice.paid"): Expect(Kind.FREE, (TRIAL_IN,), amount=0, product="Trial period for Pro plan",
                                      customer=("katherine@example.com", "Katherine Johnson")),
    ("trial", "checkout.session.completed"): Expect(Kind.FREE, (TRIAL_CS, TRIAL_IN), amount=0,
                                                    customer=("katherine@example.com", "Katherine Johnson")),
    ("trial", "customer.subscription.created"): Expect(Kind.SUBSCRIPTION, ("sub_1TrialStory0001",), amount=0,
                                                       product="Pro monthly"),  # trialing: no MRR yet
    ("setup", "checkout.session.completed"): Expect(None),
}
# The events that count the money, per story: every other event of the story is a LINK, FREE or nothing.
STORY_SALES = {
    "one_off": ({"checkout.session.completed", "payment_intent.succeeded"}, 4900),
    "subscription_first": ({"checkout.session.completed", "invoice.paid", "payment_intent.succeeded"}, 1900),
    "subscription_renewal": ({"invoice.paid", "payment_intent.succeeded"}, 1900),
    "trial": (set(), 0),
    "setup": (set(), 0),
}
STORIES = sorted({(v, s) for v, s, _ in story_files()})


def test_every_version_has_every_story() -> None:
    """Each API version holds the five stories, and invoice_payment.paid only from basil on."""
    assert {v for v, _, _ in story_files()} == set(API_VERSIONS)
    assert len(STORIES) == 5 * len(API_VERSIONS)
    for version, _, event_type in story_files():
        assert (event_type == "invoice_payment.paid") <= (version != "acacia")


@pytest.mark.parametrize(("version", "story", "event_type"), story_files())
def test_versioned_event_parses_to_its_kind_refs_amount_product_and_customer(
    version: str, story: str, event_type: str
) -> None:
    """Each versioned fixture means the same thing for salespulse whatever its API version's shape."""
    expect = EXPECTED_STORIES[story, event_type]
    event = parse_event(story_event(version, story, event_type))
    if expect.kind is None:
        assert event is None
        return
    assert event is not None
    assert_well_formed(event)
    assert (event.kind, event.refs, event.amount) == (expect.kind, expect.refs_in(version), expect.amount)
    assert (event.product, (event.customer_email, event.customer_name)) == (expect.product, expect.customer)
    assert event.api_version == API_VERSIONS[version] and event.livemode is False


def connected(refs: list[tuple[str, ...]]) -> bool:
    """Whether every ref set joins every other through shared refs (transitively)."""
    groups: list[set[str]] = []
    for event_refs in refs:
        touching = [g for g in groups if g & set(event_refs)]
        merged = set(event_refs).union(*touching)
        groups = [g for g in groups if g not in touching] + [merged]
    return len(groups) <= 1


@pytest.mark.parametrize(("version", "story"), STORIES)
def test_a_storys_events_join_into_one_payment(version: str, story: str) -> None:
    """Every recorded event of one payment shares a ref with the others, directly or through a LINK."""
    events = [e for e in story_events(version, story).values() if e is not None and e.kind is not Kind.SUBSCRIPTION]
    assert connected([e.refs for e in events]), [(e.event_type, e.refs) for e in events]


@pytest.mark.parametrize(("version", "story"), STORIES)
def test_exactly_the_right_events_of_a_story_are_sales_of_the_right_amount(version: str, story: str) -> None:
    """One-off: session and PaymentIntent; subscriptions: session, invoice, PaymentIntent; trials and setup: none."""
    sales = {t: e for t, e in story_events(version, story).items() if e is not None and e.kind is Kind.SALE}
    expected_types, amount = STORY_SALES[story]
    assert set(sales) == expected_types
    assert {e.amount for e in sales.values()} <= {amount}
    assert all(e.currency == "USD" for e in sales.values())


@pytest.mark.parametrize("version", ["basil", "clover", "dahlia", "endive"])
def test_basil_payment_intent_and_invoice_meet_only_through_invoice_payment_paid(version: str) -> None:
    """From basil on the PaymentIntent does not name its invoice: without the LINK the two look like two payments."""
    events = story_events(version, "subscription_first")
    intent, invoice, link = (events[t] for t in ("payment_intent.succeeded", "invoice.paid", "invoice_payment.paid"))
    assert intent is not None and invoice is not None and link is not None
    assert not set(intent.refs) & set(invoice.refs)
    assert set(link.refs) >= {intent.payment_intent_id, invoice.invoice_id}
    assert intent.invoice_unstated and link.amount is None


@pytest.mark.parametrize(("version", "story"), STORIES)
def test_subscription_facts_ride_along_but_a_subscription_is_never_a_ref(version: str, story: str) -> None:
    """sub_… names every renewal, so it is `subscription_id`, never a ref; billing_reason and mode are kept."""
    for event_type, event in story_events(version, story).items():
        if event is None or event.kind is Kind.SUBSCRIPTION:  # a subscription's own events: no order, no payment
            continue
        assert not any(ref.startswith("sub_") for ref in event.refs)
        if event_type == "invoice.paid":
            assert event.subscription_id == ("sub_1TrialStory0001" if story == "trial" else "sub_1ProStory0001")
            assert event.billing_reason == ("subscription_cycle" if story == "subscription_renewal"
                                            else "subscription_create")
        if event_type == "checkout.session.completed":
            assert event.mode == ("payment" if story == "one_off" else "subscription")
        if event_type in ("payment_intent.succeeded", "charge.succeeded"):
            assert event.invoice_unstated is (version != "acacia")


def test_acacia_payment_intent_outside_any_invoice_is_not_unstated() -> None:
    """An acacia PaymentIntent with `invoice: null` says plainly that no invoice is involved."""
    event = parse_event(story_event("acacia", "one_off", "payment_intent.succeeded"))
    assert event is not None and event.invoice_unstated is False


def test_handled_types_include_the_link_events() -> None:
    """The webhook endpoint must be subscribed to invoice_payment.paid and charge.succeeded too."""
    assert {"invoice_payment.paid", "charge.succeeded", "invoice.paid", "payment_intent.succeeded"} <= HANDLED_TYPES
    assert {f"customer.subscription.{t}" for t in ("created", "updated", "deleted")} <= HANDLED_TYPES


def test_readme_lists_exactly_the_event_types_to_enable() -> None:
    """README's "Connect Stripe" step names every handled type and no other: an owner copies that list."""
    import re

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    step = readme.split("## Connect Stripe", 1)[1].split("2. Copy its signing secret", 1)[0]
    listed = set(re.findall(r"`([a-z_]+(?:\.[a-z_]+)+)`", step)) - {"2025-03-31.basil"}
    assert listed == set(HANDLED_TYPES), (sorted(listed - HANDLED_TYPES), sorted(HANDLED_TYPES - listed))


def test_invoice_payment_paid_by_a_charge_links_invoice_and_charge() -> None:
    """An InvoicePayment whose payment is a Charge (payment.type charge) links in_ ↔ ch_."""
    raw = story_event("basil", "subscription_first", "invoice_payment.paid")
    raw["data"]["object"]["payment"] = {"type": "charge", "charge": "ch_legacy"}
    event = parse_event(raw)
    assert event is not None and (event.kind, event.refs) == (Kind.LINK, (SUB_IN, "ch_legacy"))


def test_invoice_payment_without_a_payment_to_link_records_nothing() -> None:
    """A clover payment_record (or no payment at all) gives no second id to link: nothing to record."""
    raw = story_event("clover", "subscription_first", "invoice_payment.paid")
    raw["data"]["object"]["payment"] = {"type": "payment_record", "payment_record": "prec_1"}
    assert parse_event(raw) is None


def test_basil_invoice_product_falls_back_to_the_expanded_product_name() -> None:
    """With no line description, an expanded `pricing.price_details.product` names what was sold."""
    raw = story_event("basil", "subscription_renewal", "invoice.paid")
    line = raw["data"]["object"]["lines"]["data"][0]
    line["description"] = None
    line["pricing"]["price_details"]["product"] = {"id": "prod_RProPlan", "object": "product", "name": "Pro plan"}
    event = parse_event(raw)
    assert event is not None and event.product == "Pro plan"


def test_stripe_written_payment_descriptions_are_not_products() -> None:
    """ "Subscription creation" on a PaymentIntent is Stripe's wording, not the product; metadata still wins."""
    raw = story_event("clover", "subscription_first", "payment_intent.succeeded")
    assert (event := parse_event(raw)) is not None and event.product is None
    raw["data"]["object"]["metadata"] = {"productName": "Pro plan"}
    assert (event := parse_event(raw)) is not None and event.product == "Pro plan"


def _read_only(value: Any) -> Any:
    """value with every JSON object a read-only Mapping, not a dict."""
    if isinstance(value, dict):
        return MappingProxyType({key: _read_only(item) for key, item in value.items()})
    if isinstance(value, list):
        return [_read_only(item) for item in value]
    return value


@pytest.mark.parametrize("relpath", [path for path, kind in sorted(EXPECTED_KINDS.items()) if kind])
def test_any_mapping_reads_as_a_dict_does(relpath: str) -> None:
    """The readers answer dicts first (json.loads' type) but read any Mapping the same way."""
    raw = reference_event(relpath)
    assert parse_event(_read_only(raw)) == parse_event(raw)
