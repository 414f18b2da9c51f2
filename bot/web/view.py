"""What the dashboard shows, as display-ready strings: money via Babel and times in the store's zone.

Pure, like bot/blocks: the same snapshots /sales and /health use go in, a JSON-able dict comes out, and the
page's script only places text (never HTML) — so formatting, currencies and DST live here, tested in Python.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from bot.access import GroupCheck
from bot.answers.hourly import Hourly
from bot.answers.json_views import primary_currency
from bot.answers.snapshots import HealthSnapshot, SalesSnapshot
from bot.blocks.alerts import duration
from bot.blocks.common import change, counted
from bot.blocks.currency import SETTLED_ELSEWHERE, breakdown_text, customers_text, gross_text, net_text
from bot.blocks.elements import local
from bot.blocks.sales import bucket_starts, last_order_label
from bot.currency import pending_of
from bot.money import format_money
from bot.periods import parse_period
from bot.web.health_view import health_items
from bot.web.mrr_view import mrr_card
from queries.alerts import AlertRow
from queries.sales import CurrencyTotal

UNKNOWN = "—"


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def money_list(totals: Sequence[CurrencyTotal] | None) -> str:
    """"$90.00 + €5.00" in the order /sales lists them (biggest first); never summed across currencies."""
    if totals is None:
        return UNKNOWN
    return " + ".join(format_money(t.revenue, t.currency) for t in totals) or "0"  # no currency to say 0 in


def _count(totals: Sequence[CurrencyTotal] | None) -> str:
    return UNKNOWN if totals is None else str(sum(t.orders for t in totals))


def _today_money(s: SalesSnapshot) -> dict[str, str]:
    """Today's revenue in the store currency (with net and the per-currency breakdown), else per currency."""
    if s.store is None:
        return {"today_revenue": money_list(s.totals), "today_net": "", "today_currencies": s.store_note or ""}
    many = s.totals is not None and any(t.currency != s.store.currency for t in s.totals)
    net = net_text(s.store)
    return {"today_revenue": gross_text(s.store), "today_net": f"Net {net}" if net else "",
            "today_currencies": breakdown_text(s.totals or []) if many else ""}


def _customers(s: SalesSnapshot) -> str:
    """Today's customers as a whole phrase: "1 customer", "2 customers (+1 order without an email)", "customers
    unknown (no email on the 3 orders)" — the page adds no word of its own; "—" when not known, like every figure."""
    if s.customers is None:
        return UNKNOWN
    text = customers_text(s.customers, s.customers_error, without_email=s.customers_without_email)
    if s.customers == 0 and s.customers_without_email:
        return f"customers {text}"
    number, _, rest = text.partition(" ")  # "≈15,200", "(±3.0%; +40 orders without an email)"
    return f"{number} customer{'s' * (s.customers != 1)} {rest}".rstrip()


def _figures(s: SalesSnapshot, tz: ZoneInfo) -> dict[str, str]:
    last = last_order_label(s, tz, age=" · {}")
    vs = ""
    if s.totals is not None and s.previous:  # nothing a week earlier: no percentage to show
        # Printed after the customers: it says whose change it is.
        vs = f"orders {change(sum(t.orders for t in s.totals), sum(t.orders for t in s.previous))} vs last " \
             f"{local(s.period.start, tz):%a}"
    conv = s.conversion
    if conv is None:
        rate, detail = UNKNOWN, ""
    elif conv.rate is None:
        rate, detail = UNKNOWN, "no checkouts started today"
    else:
        rate, detail = f"{conv.rate:.0%}", f"{conv.completed:,} of {counted(conv.started, 'checkout')} today"
        if s.abandoned_unknown:
            detail += "; abandoned ones count once they expire (up to 24 h)"
    return {
        "last_hour_orders": _count(s.last_hour),
        "last_hour_revenue": gross_text(s.store_last_hour) if s.store_last_hour is not None
        else money_list(s.last_hour),
        "last_order": last,
        "today_orders": _count(s.totals), "today_vs": vs, **_today_money(s),
        "today_customers": _customers(s),
        "pending": UNKNOWN if s.pending_checkouts is None else str(s.pending_checkouts),
        "conversion": rate, "conversion_detail": detail,
    }


def _bars(s: SalesSnapshot, tz: ZoneInfo, currency: str,
          hours: dict[dt.datetime, tuple[int, int]]) -> list[dict[str, Any]]:
    """One bar per local hour of the last 24 h, oldest first: (revenue, orders) from `hours`, zero-filled."""
    bars: list[dict[str, Any]] = []
    for start in bucket_starts(parse_period("24h", now=s.now, tz=tz), tz):
        revenue, orders = hours.get(start, (0, 0))
        label = f"{local(start, tz):%H:00}"
        bars.append({"hour": _iso(start), "label": label, "revenue": revenue, "orders": orders,
                     "text": f"{label} · {format_money(revenue, currency)} · {orders} order{'s' * (orders != 1)}"})
    return bars


def _chart(s: SalesSnapshot, hourly: Hourly | None, tz: ZoneInfo) -> dict[str, Any] | None:
    """Revenue per local hour over the last 24 h, zero-filled, oldest first: in the store currency when one
    applies (orders not converted yet named apart, never at a guessed rate), else in the main currency."""
    if hourly is None:
        return None
    code = s.store.currency if s.store is not None else \
        next((st.currency for st in (hourly.store or {}).values()), None)
    if hourly.store is not None and code is not None:
        pending = pending_of(list(hourly.store.values()))
        aside = pending_of(list(hourly.store.values()), aside=True)
        hours = {b: (st.gross, st.converted) for b, st in hourly.store.items()}
        bars = _bars(s, tz, code, hours)
        gross = sum(int(b["revenue"]) for b in bars)
        notes = ([f"also {money_list(pending)} not converted yet, not charted"] if pending else []) + \
            ([f"{money_list(aside)} {SETTLED_ELSEWHERE}"] if aside else [])
        return {"currency": code, "bars": bars, "max": format_money(max(int(b["revenue"]) for b in bars), code),
                "total": format_money(gross, code), "note": "; ".join(notes)}
    by_currency: dict[str, CurrencyTotal] = {}
    for p in hourly.points:
        t = by_currency.get(p.currency, CurrencyTotal(p.currency, 0, 0))
        by_currency[p.currency] = CurrencyTotal(p.currency, t.orders + p.orders, t.revenue + p.revenue)
    currency = primary_currency(s.totals, s.last_hour, list(by_currency.values()), account=hourly.account)
    bars = _bars(s, tz, currency, {p.bucket: (p.revenue, p.orders) for p in hourly.points if p.currency == currency})
    others = [t for c, t in sorted(by_currency.items()) if c != currency]
    total = by_currency.get(currency, CurrencyTotal(currency, 0, 0))
    top = max((int(b["revenue"]) for b in bars), default=0)
    return {"currency": currency, "bars": bars, "max": format_money(top, currency),
            "total": format_money(total.revenue, currency),
            "note": f"also {money_list(others)} in other currencies, not charted" if others else ""}


def _alert_state(a: AlertRow, now: dt.datetime, tz: ZoneInfo) -> str:
    if a.silenced_until is not None and a.silenced_until > now:
        return f"Silenced until {local(a.silenced_until, tz):%a %H:%M}"
    if a.acknowledged_by:
        return f"Acknowledged · firing for {duration(now - a.started_at)}"
    return f"Firing for {duration(now - a.started_at)}"


def _alerts(h: HealthSnapshot, tz: ZoneInfo) -> list[dict[str, str]] | None:
    if h.alerts is None:
        return None
    return [{"severity": a.severity, "title": a.title, "summary": a.summary, "state": _alert_state(a, h.now, tz)}
            for a in h.alerts]


def dashboard_view(today: SalesSnapshot, hourly: Hourly | None, health: HealthSnapshot, *,
                   tz: ZoneInfo, groups: Sequence[GroupCheck] = ()) -> dict[str, Any]:
    """Everything the page shows, ready to be placed as text; `groups`: ALERT_RESPONDERS' user groups, as /health
    gets them."""
    critical = any(a.severity == "critical" for a in health.alerts or [])
    degraded = health.degraded or critical
    return {
        "title": today.period.label,
        "timezone": tz.key,
        "updated": f"{local(today.now, tz):%H:%M:%S %Z}",
        "updated_at": _iso(today.now),
        "status": "degraded" if degraded else "ok",
        "figures": _figures(today, tz),
        "subscriptions": mrr_card(today.subscriptions, store=today.store.currency if today.store else None),
        "chart": _chart(today, hourly, tz),
        "alerts": _alerts(health, tz),
        "health": health_items(health, tz, groups),
        "missing": sorted({*today.missing, *(m for m in health.missing if m != "database")}),
    }
