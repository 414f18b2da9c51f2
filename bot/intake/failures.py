"""One failed payment attempt, one failure: the rule that folds Stripe's several events of an attempt into one.

A bank debit that fails sends checkout.session.async_payment_failed and payment_intent.payment_failed, both about
the same order, a second or two apart; a subscription's failed invoice sends invoice.payment_failed and its
PaymentIntent's failure (which the fold leaves to the invoice: `PaymentEvent.invoice_attempt`). Two failures of one
order within ATTEMPT_WINDOW are the same attempt when they name the same failed charge, or when one names none and
they are events of different types. A second card declined a few seconds later names another charge; a failed 3-D
Secure check names none, but the decline after it is another PaymentIntent failure: both are further attempts.
Of one attempt's events the first is kept, unless only a later one tells the bank's reason (the session's event
has none: ASYNC_FAILED). The same rule holds across batches in SQL (queries/intake.py INSERT_FAILURES, and
queries/intake_later.py TELL_ATTEMPTS for the reason that comes after).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.stripe.checkout import ASYNC_FAILED
from bot.stripe.payments import UNSAID
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


def tells_why(f: Failure) -> bool:
    """Whether a failure says why the payment failed (Stripe's generic wordings do not)."""
    return f[5] not in (None, ASYNC_FAILED, UNSAID)


def one_per_attempt(failures: Sequence[Failure]) -> tuple[list[Failure], set[str]]:
    """One failure of each attempt, in order: the first, or the first to tell the bank's reason where the first
    does not; and the event ids of the others."""
    kept: list[Failure] = []
    dropped: set[str] = set()
    for f in failures:
        i = next((i for i, k in enumerate(kept) if same_attempt(f, k)), None)
        if i is None:
            kept.append(f)
        elif kept[i][5] == ASYNC_FAILED and tells_why(f):
            dropped.add(kept[i][0])
            kept[i] = f
        else:
            dropped.add(f[0])
    return kept, dropped
