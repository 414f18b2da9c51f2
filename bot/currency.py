"""One currency for every total: which one (STORE_CURRENCY, else the Stripe account's default), and a window's
per-currency rows turned into gross, fees, refunds and net in it.

Orders already in the store currency count at face value until Stripe's figures arrive (then at what settled,
which is the same amount, with the fee known). Orders in another currency count at what Stripe settled for them;
until that is known they stay `pending`, listed in their own currency and never converted at a guessed rate. Those
Stripe settled in another currency than the store's are given up on (their figures set aside), neither waiting to
convert nor with fees still to come: `aside`, named apart in their own currency and in no total (an order charged in
the store currency itself still counts at face value, its fee unknown).
Without STRIPE_API_KEY nothing ever settles, so with STORE_CURRENCY alone the other currencies stay listed apart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from bot.config import Settings
from queries import settlements
from queries.executor import Executor
from queries.sales import CurrencyTotal
from queries.settlements import SettledPoint, SettledTotal

# Said wherever per-currency totals stand in for one currency, so the owner knows how to change it.
NO_STORE_CURRENCY = "Totals per currency: set STORE_CURRENCY, or STRIPE_API_KEY for the account's currency " \
                    "and net of fees"
ACCOUNT_UNKNOWN = "Totals per currency until the Stripe account's currency has been read"


@dataclass(frozen=True, slots=True)
class StoreTotals:
    """A window's completed orders in the store currency (minor units); `pending` is what is not in it yet."""

    currency: str
    orders: int  # every completed order of the window, whatever its currency
    gross: int  # store-currency orders at face value, plus what settled for the others
    fees: int  # Stripe's fees where known (charge fees and dispute fees)
    refunds: int  # refunds and dispute withdrawals of these orders, settled
    unsettled: int  # orders counted in `gross` whose fees are not known yet, or whose refunds are not read yet
    pending: tuple[CurrencyTotal, ...] = ()  # orders in other currencies with nothing settled yet
    with_fees: bool = True  # False without STRIPE_API_KEY: fees and net are never known, gross only
    aside: tuple[CurrencyTotal, ...] = ()  # orders in other currencies settled in a third: given up, not counted
    fees_unknown: int = 0  # orders in the store currency settled in another: at face value in `gross`, fees never known

    @property
    def net(self) -> int:
        """Gross − fees − refunds, of what is known."""
        return self.gross - self.fees - self.refunds

    @property
    def converted(self) -> int:
        """The orders `gross` counts: neither waiting to be converted nor settled in another currency."""
        return self.orders - sum(t.orders for t in self.pending) - sum(t.orders for t in self.aside)


def average(total: int, count: int) -> int:
    """An average order value in minor units, rounded half up (not cut down): $10.00, $10.01 and $10.01 → $10.01.
    Shared by every surface that shows one, so /sales, the reports and the JSON API agree to the minor unit."""
    return (2 * total + count) // (2 * count)


def gross_in(store: str, currency: str, *, revenue: int, settled_revenue: int, settled: int) -> int:
    """What completed orders in `currency` count in the store currency: what settled for them, plus, in the
    store's own currency, the face value of those not read yet."""
    return settled + (revenue - settled_revenue if currency == store else 0)


def store_totals(rows: Sequence[SettledTotal], currency: str, *, with_fees: bool = True) -> StoreTotals:
    """Fold a window's per-currency rows into the store currency. Orders whose figures were read in another currency
    (set aside: the fees job gave them up) are not waited for: in another currency than the store's they are not
    counted (`aside`, in their own currency); in the store's own, at face value, their fees unknown."""
    gross = fees = refunds = unsettled = orders = fees_unknown = 0
    pending: list[CurrencyTotal] = []
    aside: list[CurrencyTotal] = []
    for r in rows:
        orders += r.orders
        fees += r.fees
        refunds += r.deducted
        gross += gross_in(currency, r.currency, revenue=r.revenue, settled_revenue=r.settled_revenue,
                          settled=r.settled)
        waiting = r.orders - r.settled_orders - r.aside_orders
        unsettled += r.stale_orders  # refunded since their figures were read: an estimate until they are read again
        if r.currency == currency:
            unsettled += waiting
            fees_unknown += r.aside_orders
        elif waiting:
            pending.append(CurrencyTotal(r.currency, waiting, r.revenue - r.settled_revenue - r.aside_revenue))
        if r.aside_orders and r.currency != currency:
            aside.append(CurrencyTotal(r.currency, r.aside_orders, r.aside_revenue))
    pending.sort(key=lambda t: (-t.revenue, t.currency))
    # Settled figures without a key (the demo's, or kept from before a key was removed) still give a net.
    with_fees = with_fees or any(r.settled_orders for r in rows)
    return StoreTotals(currency=currency, orders=orders, gross=gross, fees=fees, refunds=refunds,
                       unsettled=unsettled, pending=tuple(pending), with_fees=with_fees,
                       aside=tuple(sorted(aside, key=lambda t: (-t.revenue, t.currency))), fees_unknown=fees_unknown)


def store_series(points: Sequence[SettledPoint], currency: str, *,
                 with_fees: bool = True) -> dict[dt.datetime, StoreTotals]:
    """settlements.settled_trend's points folded into the store currency, bucket by bucket."""
    rows: dict[dt.datetime, list[SettledTotal]] = {}
    for p in points:
        rows.setdefault(p.bucket, []).append(p.total)
    return {bucket: store_totals(group, currency, with_fees=with_fees) for bucket, group in rows.items()}


def pending_of(totals: Sequence[StoreTotals], *, aside: bool = False) -> tuple[CurrencyTotal, ...]:
    """What several windows left not converted yet (with `aside`: settled in another currency), merged per currency,
    biggest first."""
    merged: dict[str, CurrencyTotal] = {}
    for st in totals:
        for t in st.aside if aside else st.pending:
            was = merged.get(t.currency, CurrencyTotal(t.currency, 0, 0))
            merged[t.currency] = CurrencyTotal(t.currency, was.orders + t.orders, was.revenue + t.revenue)
    return tuple(sorted(merged.values(), key=lambda t: (-t.revenue, t.currency)))


@dataclass(frozen=True, slots=True)
class CurrencyChoice:
    """What decides the store currency: STORE_CURRENCY, else (with STRIPE_API_KEY) the account's default."""

    configured: str | None  # STORE_CURRENCY, upper-case
    from_stripe: bool  # STRIPE_API_KEY is set: settled figures, fees, and the account's currency

    @classmethod
    def of(cls, settings: Settings) -> CurrencyChoice:
        """The choice the settings make."""
        return cls(configured=settings.store_currency, from_stripe=settings.stripe_api_key is not None)

    @property
    def wanted(self) -> bool:
        """Whether totals are given in one currency at all."""
        return self.configured is not None or self.from_stripe

    def resolve(self, account_currency: str | None) -> str | None:
        """The store currency: STORE_CURRENCY wins over the account's default (None until it has been read)."""
        return self.configured or (account_currency if self.from_stripe else None)

    async def read(self, db: Executor) -> str | None:
        """The store currency now: STORE_CURRENCY, else the account's as last read (None: per currency)."""
        if not self.wanted:
            return None
        return self.resolve(await settlements.account_currency(db) if self.configured is None else None)


PER_CURRENCY = CurrencyChoice(configured=None, from_stripe=False)  # neither STORE_CURRENCY nor STRIPE_API_KEY
