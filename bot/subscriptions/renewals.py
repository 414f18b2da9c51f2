"""SUBSCRIPTION_RENEWALS: how loud a renewal is. A renewal is money the store expected, so by default it is quieter
than a new sale: `coalesce` holds each renewal's sale ping to the end of the hour, where the delivery worker's burst
summary sends the hour's renewals (with any sale waiting then) as one message; `report` sends none (the daily report
and /sales count the money); `ping` sends each like any sale. The first payment of a subscription is always a sale,
even a trial's, which Stripe bills as a renewal (`subscription_cycle`): first_payments.py tells them apart."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from enum import StrEnum

import asyncpg

from bot.subscriptions.first_payments import PaidInvoice, renewing
from queries import subscriptions as q


class Renewals(StrEnum):
    """SUBSCRIPTION_RENEWALS: what a renewal's sale ping does."""

    PING = "ping"  # a sale ping like any other
    COALESCE = "coalesce"  # held to the end of the hour: the hour's renewals go out as one summary
    REPORT = "report"  # no ping: counted in /sales and the daily report only


RENEWAL_SLOT = dt.timedelta(hours=1)
# Report mode: how long a likely renewal's ping waits for its invoice before it is sent as a sale after all.
LIKELY_WAIT = dt.timedelta(hours=1)


async def quiet_renewals(conn: asyncpg.Connection, order_ids: Sequence[str], paid: Sequence[PaidInvoice], *,
                         mode: Renewals, now: dt.datetime, likely: Sequence[str] = ()) -> None:
    """Apply SUBSCRIPTION_RENEWALS to the untried sale pings of the batch's orders that paid a renewal invoice:
    of the batch's subscription invoices `paid`, the cycle invoices of subscriptions that had paid before.

    The renewal invoices are remembered, so a later event of the same payment (basil's invoice_payment.paid, which
    re-renders and releases a waiting ping) does not send the held renewal early. A `likely` renewal (paid by a
    "Subscription update" PaymentIntent whose invoice has not arrived) is held like one — to the slot's end, or
    in report mode for LIKELY_WAIT — rather than pinged when its settle window ends: its invoice then drops it (a
    renewal, report mode), keeps it held (a renewal, coalesce), or releases it at once (a change charged now)."""
    invoices = await renewing(conn, paid)  # in every mode: it remembers the invoices, for the ones to come
    if mode is Renewals.PING:
        return
    await q.remember_renewals(conn, invoices)
    slot_end = now.replace(minute=0, second=0, microsecond=0) + RENEWAL_SLOT
    await q.hold_pings(conn, likely, hold_until=slot_end if mode is Renewals.COALESCE else now + LIKELY_WAIT)
    await q.quiet_renewals(conn, order_ids, hold_until=slot_end if mode is Renewals.COALESCE else None)
