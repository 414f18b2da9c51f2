"""One failed payment attempt, one failure: the rule that folds Stripe's several events of an attempt into one.

A bank debit that fails sends checkout.session.async_payment_failed and payment_intent.payment_failed, both about
the same order, a second or two apart; a subscription's failed invoice sends invoice.payment_failed and its
PaymentIntent's failure (which the fold leaves to the invoice: `PaymentEvent.invoice_attempt`). Two failures of one
order within ATTEMPT_WINDOW are the same attempt when they name the same failed charge, or when one names none and
they are events of different types. A second card declined a few seconds later names another charge; a failed 3-D
Secure check names none, but the decline after it is another PaymentIntent failure: both are further attempts.
The same rule holds across batches in SQL (queries/intake.py INSERT_FAILURES).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from queries.intake import ATTEMPT_WINDOW  # the window INSERT_FAILURES applies across batches

# queries.rows.FAILURES: event id, order id, amount, currency, email, reason, at, charge id, event type, invoice id,
# customer id
Failure = tuple[Any, ...]


def same_attempt(a: Failure, b: Failure) -> bool:
    """Whether two failures tell the same attempt: one order, close in time, and the same charge, or a charge
    missing on one side of two events of different types."""
    order_a, at_a, charge_a, type_a = a[1], a[6], a[7], a[8]
    order_b, at_b, charge_b, type_b = b[1], b[6], b[7], b[8]
    if order_a is None or order_a != order_b or abs(at_a - at_b) > ATTEMPT_WINDOW:
        return False
    if charge_a is not None and charge_b is not None:
        return bool(charge_a == charge_b)
    return bool(type_a != type_b)


def one_per_attempt(failures: Sequence[Failure]) -> tuple[list[Failure], set[str]]:
    """The first failure of each attempt, in order, and the event ids of the others."""
    kept: list[Failure] = []
    dropped: set[str] = set()
    for f in failures:
        if any(same_attempt(f, k) for k in kept):
            dropped.add(f[0])
        else:
            kept.append(f)
    return kept, dropped
