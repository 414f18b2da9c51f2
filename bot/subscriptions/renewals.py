"""SUBSCRIPTION_RENEWALS: how loud a renewal is. A renewal is money the store expected, so by default it is quieter
than a new sale: `coalesce` holds each renewal's sale ping to the end of the hour, where the delivery worker's burst
summary sends the hour's renewals (with any sale waiting then) as one message; `report` sends none (the daily report
and /sales count the money); `ping` sends each like any sale. The first payment of a subscription is always a sale."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from enum import StrEnum

import asyncpg

from queries import subscriptions as q


class Renewals(StrEnum):
    """SUBSCRIPTION_RENEWALS: what a renewal's sale ping does."""

    PING = "ping"  # a sale ping like any other
    COALESCE = "coalesce"  # held to the end of the hour: the hour's renewals go out as one summary
    REPORT = "report"  # no ping: counted in /sales and the daily report only


RENEWAL_SLOT = dt.timedelta(hours=1)


async def quiet_renewals(conn: asyncpg.Connection, order_ids: Sequence[str], invoices: Sequence[str], *,
                         mode: Renewals, now: dt.datetime) -> None:
    """Apply SUBSCRIPTION_RENEWALS to the untried sale pings of the batch's orders that paid a renewal invoice.

    The renewal invoices are remembered, so a later event of the same payment (basil's invoice_payment.paid, which
    re-renders and releases a waiting ping) does not send the held renewal early."""
    if mode is Renewals.PING:
        return
    await q.remember_renewals(conn, invoices)
    slot_end = now.replace(minute=0, second=0, microsecond=0) + RENEWAL_SLOT
    await q.quiet_renewals(conn, order_ids, hold_until=slot_end if mode is Renewals.COALESCE else None)
