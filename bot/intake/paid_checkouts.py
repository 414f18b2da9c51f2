"""A checkout session is completed once its order is paid, whichever event says so.

A manual-capture Checkout (payment_intent_data.capture_method=manual) completes 'unpaid' (the card is only
authorised), and the money is taken later: payment_intent.succeeded, which names no session, is all that follows. So
the session is completed from its order, in either order of arrival: in the batch's own checkout rows, or, when the
session was stored by an earlier batch, by queries/intake_later.py COMPLETE_CHECKOUTS through the order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from queries.intake import ORDER_COLUMNS, CheckoutRow, OrderRow

PAID = ("completed", "refunded")
_STATUS = ORDER_COLUMNS.index("payment_status")


def complete(orders: Iterable[OrderRow], checkouts: Mapping[str, CheckoutRow]) -> list[str]:
    """Complete the batch's pending checkout rows of paid orders; return the orders that became paid in this batch
    whose session is stored only (an earlier batch's), for COMPLETE_CHECKOUTS."""
    stored: list[str] = []
    for o in orders:
        if o.payment_status not in PAID or o.checkout_session_id is None:
            continue
        cur = checkouts.get(o.checkout_session_id)
        if cur is None:
            if o.is_new or (o.stored is not None and o.stored[_STATUS] not in PAID):
                stored.append(o.id)
        elif cur.status == "pending":
            cur.status, cur.completed_at = "completed", cur.completed_at or o.created_at
            cur.status_at = max(cur.status_at, o.created_at)
    return sorted(stored)
