"""CPU cost of reading one Stripe webhook, step by step: verify (signature), load_json, parse_event. From the root:

    python bench/parse.py [--repeat 7] [--budget 0.05]

One row per handled event type, each a reference payload from tests/fixtures/stripe sent as Stripe sends it
(pretty-printed), plus bench/common.py's ~2 KB checkout.session.completed (the load generators' event). Each figure
is the best of --repeat timed runs of about --budget seconds: the machine is shared, and the minimum is the
figure least disturbed by other work. Nothing is written; the table goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import checkout_completed
from bot.stripe.parse import HANDLED_TYPES, parse_event
from bot.stripe.received import load_json
from bot.stripe.signature import verify
from tests.fakes import stripe_signature
from tests.reference import stripe_fixture, wrap_event

SECRET = "whsec_bench"
RUBY = "stripe-ruby-mock"
BASIL = "versions/basil/subscription_first"

# event type → (reference file, how to send it: "wrap" a bare object, "retype" another type's envelope, as a
# "failed" refund — retyped, its Refund's status failed, as Stripe sends a refund that failed; any other update of a
# refund is nothing to record — or as a "legacy" Charge's, retyped without its PaymentIntent)
SOURCES: dict[str, tuple[str, str | None]] = {
    "checkout.session.completed": (f"{RUBY}/checkout.session.completed.json", None),
    "checkout.session.async_payment_succeeded": (f"{RUBY}/checkout.session.completed.json", "retype"),
    "checkout.session.async_payment_failed": (f"{RUBY}/checkout.session.completed.json", "retype"),
    "checkout.session.expired": (f"{RUBY}/checkout.session.completed.json", "retype"),
    "payment_intent.succeeded": (f"{RUBY}/payment_intent.succeeded.json", None),
    "payment_intent.payment_failed": (f"{RUBY}/payment_intent.payment_failed.json", None),
    "charge.succeeded": (f"{RUBY}/charge.succeeded.json", None),
    "charge.captured": (f"{RUBY}/charge.succeeded.json", "legacy"),
    "charge.failed": (f"{RUBY}/charge.failed.json", "legacy"),
    "charge.refunded": (f"{RUBY}/charge.refunded.json", None),
    "charge.refund.updated": (f"{RUBY}/charge.refund.updated.json", "failed"),
    "refund.failed": (f"{RUBY}/charge.refund.updated.json", "failed"),
    "refund.updated": (f"{RUBY}/charge.refund.updated.json", "failed"),
    "charge.dispute.created": (f"{RUBY}/charge.dispute.created.json", None),
    "charge.dispute.closed": (f"{RUBY}/charge.dispute.closed.json", None),
    "charge.dispute.funds_reinstated": ("dj-stripe/dispute_dp_funds_reinstated_full.json", "wrap"),
    "invoice.paid": (f"{RUBY}/invoice.paid.json", None),
    "invoice.payment_failed": (f"{RUBY}/invoice.payment_failed.json", None),
    "invoice_payment.paid": (f"{BASIL}/invoice_payment.paid.json", None),
    "customer.subscription.created": (f"{RUBY}/customer.subscription.created.json", None),
    "customer.subscription.updated": (f"{RUBY}/customer.subscription.updated.json", None),
    "customer.subscription.deleted": (f"{RUBY}/customer.subscription.deleted.json", None),
}


def reference_body(event_type: str) -> bytes:
    """The reference event of `event_type`, pretty-printed as Stripe sends it."""
    relpath, how = SOURCES[event_type]
    raw = stripe_fixture(relpath)
    if how == "wrap":
        raw = wrap_event(raw, event_type, event_id="evt_bench")
    elif how == "retype":
        raw = {**raw, "type": event_type}
    elif how == "legacy":
        raw = {**raw, "type": event_type, "data": {**raw["data"], "object": {**raw["data"]["object"],
                                                                           "payment_intent": None}}}
    elif how == "failed":
        refund = {**raw["data"]["object"], "status": "failed", "failure_reason": "expired_or_canceled_card"}
        raw = {**raw, "type": event_type, "data": {**raw["data"], "object": refund}}
    assert raw["type"] == event_type, relpath
    return json.dumps(raw, indent=2).encode()


def best_us(fn: Callable[[], Any], *, repeat: int, budget: float) -> float:
    """µs per call of fn: the best of `repeat` runs of about `budget` seconds each."""
    timer = timeit.Timer(fn)
    number, took = timer.autorange()
    number = max(1, int(number * budget / took))
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def measure(label: str, body: bytes, *, repeat: int, budget: float) -> tuple[str, int, float, float, float, str]:
    """One table row: the label, body size and µs for each step, and what parse_event made of it."""
    header = stripe_signature(body, SECRET)
    text = body.decode("utf-8")
    raw = load_json(text)
    event = parse_event(raw)
    return (
        label,
        len(body),
        best_us(lambda: verify(body, header, [SECRET]), repeat=repeat, budget=budget),
        best_us(lambda: load_json(text), repeat=repeat, budget=budget),
        best_us(lambda: parse_event(raw), repeat=repeat, budget=budget),
        event.kind.value if event else "-",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per figure (the best is shown)")
    parser.add_argument("--budget", type=float, default=0.05, help="seconds per timed run")
    args = parser.parse_args()
    assert set(SOURCES) == HANDLED_TYPES, "a handled event type has no reference payload here"
    cases = [("checkout.session.completed (bench/common.py)", checkout_completed("p", 1).body)]
    cases += [(event_type, reference_body(event_type)) for event_type in SOURCES]
    print(f"{'event type':<46} {'bytes':>6} {'verify':>8} {'load_json':>10} {'parse_event':>12}  kind")
    for label, body in cases:
        name, size, v, j, p, kind = measure(label, body, repeat=args.repeat, budget=args.budget)
        print(f"{name:<46} {size:>6} {v:>6.1f}µs {j:>8.1f}µs {p:>10.1f}µs  {kind}")


if __name__ == "__main__":
    main()
