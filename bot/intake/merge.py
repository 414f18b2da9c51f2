"""One payment seen as two orders, made one: which row survives, and how it takes the other's facts.

From 2025-03-31.basil on, a subscription's PaymentIntent (pi_/ch_) and its invoice (in_/cs_) share no id until
invoice_payment.paid ties them, so the intake may hold two orders for one payment until that LINK arrives.
"""

from __future__ import annotations

import datetime as dt

from bot.intake.events import PaymentEvent
from bot.intake.refunds import merge_refunds, takes_amount
from queries.intake import OrderRow

# When two events about one payment carry the same second, the further-along state wins. A 'linked' row only
# holds ids and a customer until an event that counts the money takes it over.
_STATUS_RANK = {"linked": -1, "pending": 0, "failed": 1, "completed": 2, "refunded": 3}

# Descriptive fields that fill in what earlier events lacked, but never overwrite a stored value.
FILLED_IF_MISSING = ("customer_email", "customer_name", "product_name", "affiliate_id", "checkout_session_id",
                     "payment_intent_id", "invoice_id", "charge_id")


def fill(row: OrderRow, e: PaymentEvent, *, amount: bool, paid: bool) -> None:
    """Take an event's facts into its order: its amount when `amount`, what the order lacks, and its metadata; and
    when it `paid` the order, its charge — the one that paid, not a declined try's (the fees are read from it)."""
    if amount:  # the amount and its currency go together
        row.amount_total, row.currency = e.amount, e.currency or row.currency
    row.currency = row.currency or e.currency
    for name, value in zip(FILLED_IF_MISSING, (e.customer_email, e.customer_name, e.product, e.affiliate,
                                               e.checkout_session_id, e.payment_intent_id, e.invoice_id,
                                               e.charge_id), strict=True):
        if getattr(row, name) is None:
            setattr(row, name, value)
    if paid and e.charge_id is not None:
        row.charge_id = e.charge_id
    row.metadata = {**row.metadata, **e.metadata}
    row.dirty = True


def status_moves(current: str, current_at: dt.datetime, new: str, new_at: dt.datetime) -> bool:
    """Whether an event's status replaces the stored one: newer wins; a tie goes to the further state."""
    if current == "linked":
        return new != "linked"
    if new == "linked":
        return False
    if new_at != current_at:
        return new_at > current_at
    return _STATUS_RANK.get(new, 0) >= _STATUS_RANK.get(current, 0)


def survivor_of(rows: list[OrderRow]) -> OrderRow:
    """The row the others merge into: a real order before a placeholder, then the one known by its invoice or
    checkout session (its ping names the product, so it is the one likely posted at once), then ref order."""
    ranked = sorted(enumerate(rows), key=lambda p: (p[1].payment_status == "linked",
                                                    not p[1].id.startswith(("in_", "cs_")), p[0]))
    return ranked[0][1]


def absorb(survivor: OrderRow, loser: OrderRow) -> None:
    """Give `survivor` the facts of `loser` (one payment): status by the usual rules, the earliest time."""
    s, o = survivor, loser
    was, moves = s.payment_status, status_moves(s.payment_status, s.status_at, o.payment_status, o.status_at)
    if moves:
        placeholder = s.payment_status == "linked"
        s.payment_status, s.status_at, s.failure_reason = o.payment_status, o.status_at, o.failure_reason
        s.created_at = o.created_at if placeholder else min(s.created_at, o.created_at)
    elif o.payment_status != "linked":
        s.created_at = min(s.created_at, o.created_at)
    if o.amount_total is not None and takes_amount(s, was, o.payment_status, moves):
        s.amount_total, s.currency = o.amount_total, o.currency or s.currency
    s.currency = s.currency or o.currency
    merge_refunds(s, o)  # every charge.refunded and failed refund of both; the status follows
    for name in FILLED_IF_MISSING:
        if getattr(s, name) is None:
            setattr(s, name, getattr(o, name))
    s.livemode = s.livemode or o.livemode
    s.metadata = {**o.metadata, **s.metadata}
    s.dirty = True


def named(order: OrderRow) -> bool:
    """Whether a ping of this order would name both its product and its customer."""
    return bool(order.product_name and order.customer_email)


def settled(order: OrderRow) -> bool:
    """Named, and by the checkout session or invoice itself: nothing later would change the ping."""
    return named(order) and (order.checkout_session_id is not None or order.invoice_id is not None)
