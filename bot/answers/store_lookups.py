"""The /sales lookups that change with the store currency: the period's, the week earlier's and the last hour's
totals, per currency or with their settled figures (the same lookups either way, so /sales waits for no extra
connection), and the snapshot fields they give."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from bot.currency import ACCOUNT_UNKNOWN, NO_STORE_CURRENCY, CurrencyChoice, store_totals
from bot.periods import Period
from queries import sales, settlements
from queries.executor import Executor
from queries.sales import CurrencyTotal

Lookup = Callable[[Executor], Awaitable[Any]]
_WINDOWS = ("totals", "week earlier", "last hour")  # lookup name, and SalesSnapshot field below
_FIELDS = {"totals": ("totals", "store"), "week earlier": ("previous", "store_previous"),
           "last hour": ("last_hour", "store_last_hour")}


async def _settled(db: Executor, choice: CurrencyChoice, start: dt.datetime,
                   end: dt.datetime) -> tuple[list[settlements.SettledTotal], str | None]:
    """A window's totals with their settled figures, and the account's currency when it decides."""
    rows = await settlements.settled_totals(db, start=start, end=end)
    return rows, await settlements.account_currency(db) if choice.configured is None else None


def _lookup(choice: CurrencyChoice, start: dt.datetime, end: dt.datetime) -> Lookup:
    if not choice.wanted:
        return lambda db: sales.window_totals(db, start=start, end=end)
    return lambda db: _settled(db, choice, start, end)


def totals_lookups(choice: CurrencyChoice, period: Period, before: Period, *,
                   last_hour: tuple[dt.datetime, dt.datetime]) -> dict[str, Lookup]:
    """The period's, the week earlier's and the last hour's totals."""
    return {"totals": _lookup(choice, period.start, period.end),
            "week earlier": _lookup(choice, before.start, before.end),
            "last hour": _lookup(choice, *last_hour)}


def per_currency(rows: list[settlements.SettledTotal]) -> list[CurrencyTotal]:
    """Completed orders per currency, as sales.window_totals orders them (rows of refunded fees only left out)."""
    totals = [CurrencyTotal(r.currency, r.orders, r.revenue) for r in rows if r.orders]
    return sorted(totals, key=lambda t: (-t.revenue, t.currency))


def totals_fields(choice: CurrencyChoice, got: dict[str, Any]) -> dict[str, Any]:
    """SalesSnapshot's totals, and its store fields, from what the lookups brought."""
    if not choice.wanted:
        return {"totals": got.get("totals"), "previous": got.get("week earlier"), "last_hour": got.get("last hour"),
                "store_note": NO_STORE_CURRENCY}
    fields: dict[str, Any] = {_FIELDS[name][0]: None if got.get(name) is None else per_currency(got[name][0])
                              for name in _WINDOWS}
    known = [got[name][1] for name in _WINDOWS if got.get(name) is not None]
    code = choice.resolve(known[0] if known else None)
    if code is None:
        return {**fields, "store_note": ACCOUNT_UNKNOWN}
    for name in _WINDOWS:
        fields[_FIELDS[name][1]] = None if got.get(name) is None else store_totals(
            got[name][0], code, with_fees=choice.from_stripe)
    return fields
