"""One failed payment attempt, one failure: the rule that folds Stripe's several events of an attempt into one.

A bank debit that fails sends checkout.session.async_payment_failed and payment_intent.payment_failed, both about
the same order, a second or two apart; a subscription's failed invoice sends invoice.payment_failed and its
PaymentIntent's failure (which the fold leaves to the invoice: `PaymentEvent.invoice_attempt`). Two failures of one
order within ATTEMPT_WINDOW are the same attempt unless each names a different failed charge (a second card
declined a few seconds later is a second attempt). The same rule holds across batches in SQL
(queries/intake.py INSERT_FAILURES).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Final

ATTEMPT_WINDOW: Final = dt.timedelta(seconds=60)  # keep in step with INSERT_FAILURES

Failure = tuple[Any, ...]  # queries.rows.FAILURES: event id, order id, amount, currency, email, reason, at, charge


def same_attempt(a: Failure, b: Failure) -> bool:
    """Whether two failures tell the same attempt: one order, close in time, no two different charges."""
    order_a, at_a, charge_a = a[1], a[6], a[7]
    order_b, at_b, charge_b = b[1], b[6], b[7]
    return (order_a is not None and order_a == order_b and abs(at_a - at_b) <= ATTEMPT_WINDOW
            and (charge_a is None or charge_b is None or charge_a == charge_b))


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
