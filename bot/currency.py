"""One currency for every total: which one (STORE_CURRENCY, else the Stripe account's default), and a window's
per-currency rows turned into gross, fees, refunds and net in it.

Orders already in the store currency count at face value until Stripe's figures arrive (then at what settled,
which is the same amount, with the fee known). Orders in another currency count at what Stripe settled for them;
until that is known they stay `pending`, listed in their own currency and never converted at a guessed rate.
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
    unsettled: int  # orders counted in `gross` whose fees are not known yet
    pending: tuple[CurrencyTotal, ...] = ()  # orders in other currencies with nothing settled yet
    with_fees: bool = True  # False without STRIPE_API_KEY: fees and net are never known, gross only

    @property
    def net(self) -> int:
        """Gross − fees − refunds, of what is known."""
        return self.gross - self.fees - self.refunds


def gross_in(store: str, currency: str, *, revenue: int, settled_revenue: int, settled: int) -> int:
    """What completed orders in `currency` count in the store currency: what settled for them, plus, in the
    store's own currency, the face value of those not read yet."""
    return settled + (revenue - settled_revenue if currency == store else 0)


def store_totals(rows: Sequence[SettledTotal], currency: str, *, with_fees: bool = True) -> StoreTotals:
    """Fold a window's per-currency rows into the store currency."""
    gross = fees = refunds = unsettled = orders = 0
    pending: list[CurrencyTotal] = []
    for r in rows:
        orders += r.orders
        fees += r.fees
        refunds += r.deducted
        gross += gross_in(currency, r.currency, revenue=r.revenue, settled_revenue=r.settled_revenue,
                          settled=r.settled)
        waiting = r.orders - r.settled_orders
        if r.currency == currency:
            unsettled += waiting
        elif waiting:
            pending.append(CurrencyTotal(r.currency, waiting, r.revenue - r.settled_revenue))
    pending.sort(key=lambda t: (-t.revenue, t.currency))
    # Settled figures without a key (the demo's, or kept from before a key was removed) still give a net.
    with_fees = with_fees or any(r.settled_orders for r in rows)
    return StoreTotals(currency=currency, orders=orders, gross=gross, fees=fees, refunds=refunds,
                       unsettled=unsettled, pending=tuple(pending), with_fees=with_fees)


def store_series(points: Sequence[SettledPoint], currency: str, *,
                 with_fees: bool = True) -> dict[dt.datetime, StoreTotals]:
    """settlements.settled_trend's points folded into the store currency, bucket by bucket."""
    rows: dict[dt.datetime, list[SettledTotal]] = {}
    for p in points:
        rows.setdefault(p.bucket, []).append(p.total)
    return {bucket: store_totals(group, currency, with_fees=with_fees) for bucket, group in rows.items()}


def pending_of(totals: Sequence[StoreTotals]) -> tuple[CurrencyTotal, ...]:
    """What several windows left not converted yet, merged per currency, biggest first."""
    merged: dict[str, CurrencyTotal] = {}
    for st in totals:
        for t in st.pending:
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
