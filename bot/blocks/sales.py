"""The /sales answer: last hour, the period against a week earlier, trend, checkouts — phone-sized."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from bot.answers.snapshots import SalesSnapshot
from bot.blocks.common import ago, change, counted, missing_context, share_actions, sparkline
from bot.blocks.currency import average_text, breakdown_text, customers_text, gross_text, net_text, refunds_text
from bot.blocks.elements import context, fields, header, local, message, section
from bot.blocks.message import Block, Message
from bot.blocks.mrr import mrr_blocks
from bot.blocks.pace import pace_block
from bot.blocks.text import escape_mrkdwn
from bot.currency import StoreTotals, average
from bot.money import format_money
from bot.periods import Bucket, Period, local_midnight
from queries.sales import CurrencyTotal, TrendPoint

UNKNOWN = "—"


def _hour_start(t: dt.datetime) -> dt.datetime:
    """The start of the local hour `t` (aware, in the store's zone) is in, in UTC, as PostgreSQL's date_trunc gives
    it: a start that falls in a DST gap (02:00 when clocks went 02:00 → 02:30) is read with the later offset."""
    start = t.replace(minute=0, second=0, microsecond=0)
    if start.astimezone(dt.UTC).astimezone(start.tzinfo).replace(fold=0) != start.replace(fold=0):  # in a gap
        start = start.replace(fold=1)
    return start.astimezone(dt.UTC)


def bucket_starts(period: Period, tz: ZoneInfo) -> list[dt.datetime]:
    """Every local hour or day the period touches, as UTC instants (what date_trunc in tz returns)."""
    first = local(period.start, tz)
    starts: list[dt.datetime] = []
    if period.bucket is Bucket.HOUR:
        t = _hour_start(first)
        while t < period.end:
            starts.append(t)
            # The next local hour's start, not just an hour on: after a half-hour DST change (Lord Howe) local
            # hours start at :30 UTC.
            t = max(_hour_start(local(t + dt.timedelta(hours=1), tz)), t + dt.timedelta(minutes=30))
    else:
        day = first.date()
        while (t := local_midnight(day, tz)) < period.end:
            starts.append(t)
            day += dt.timedelta(days=1)
    return starts


def _bucket_key(bucket: dt.datetime, period: Period, tz: ZoneInfo) -> dt.datetime:
    """A trend point's bucket as bucket_starts names it. A day is keyed by its local date: on a day a zone falls
    back at midnight (America/Havana), PostgreSQL's date_trunc names it by the second 00:00, local_midnight by the
    first."""
    if period.bucket is Bucket.DAY:
        return local_midnight(bucket.astimezone(tz).date(), tz)
    return bucket


def trend_counts(points: Sequence[TrendPoint], period: Period, tz: ZoneInfo) -> list[int]:
    """Orders per bucket across currencies, zero-filled, in time order."""
    by_bucket: dict[dt.datetime, int] = {}
    for p in points:
        key = _bucket_key(p.bucket, period, tz)
        by_bucket[key] = by_bucket.get(key, 0) + p.orders
    return [by_bucket.get(start, 0) for start in bucket_starts(period, tz)]


def _money_list(totals: Sequence[CurrencyTotal]) -> str:
    """"$90.00 + €5.00"; empty when nothing sold (no currency to show a 0 in)."""
    return " + ".join(format_money(t.revenue, t.currency) for t in totals)


def _orders_and_money(orders: int, money: str) -> str:
    return f"{counted(orders)} · {money}" if money else counted(orders)


def _orders(totals: Sequence[CurrencyTotal] | None) -> int | None:
    return None if totals is None else sum(t.orders for t in totals)


def last_order_label(s: SalesSnapshot, tz: ZoneInfo, *, age: str = " ({})") -> str:
    """When the last order came, e.g. "14:05 (12 min ago)"; `age` formats the "N min ago" part."""
    if "last order" in s.missing:
        return UNKNOWN
    if s.last_order_at is None:
        return "no orders yet"
    return f"{local(s.last_order_at, tz):%H:%M}" + age.format(ago(s.now - s.last_order_at))


def _last_hour(s: SalesSnapshot, tz: ZoneInfo) -> Block:
    orders = _orders(s.last_hour)
    money = gross_text(s.store_last_hour) if s.store_last_hour is not None else _money_list(s.last_hour or [])
    hour = _orders_and_money(orders, money) if orders is not None else UNKNOWN
    return fields(("Last hour", hour), ("Last order", last_order_label(s, tz)))


def _period_fields(s: SalesSnapshot) -> list[Block]:
    totals, previous = s.totals, s.previous
    if totals is None:
        return [section(f"*{s.period.label}:* {UNKNOWN}")]
    orders = sum(t.orders for t in totals)
    # Escaped: a change under 1% reads "▲ <1%", and Slack takes "<" as the start of a link.
    vs = f"  {escape_mrkdwn(change(orders, sum(t.orders for t in previous)))}" if previous is not None else ""
    blocks: list[Block] = []
    if s.store is not None:
        pairs = [("Orders", f"{orders:,}{vs}"), *_store_pairs(s.store, s.store_previous)]
        if len(totals) > 1 or any(t.currency != s.store.currency for t in totals):
            blocks.append(context(breakdown_text(totals)))
    else:
        pairs, blocks = _per_currency(totals, previous, orders=f"{orders:,}{vs}", note=s.store_note)
    pairs.append(("Customers", UNKNOWN if s.customers is None
                  else customers_text(s.customers, s.customers_error, without_email=s.customers_without_email)))
    refunds = UNKNOWN if s.refunds is None else refunds_text(s.refunds)
    pairs.append(("Refunds made", refunds))  # in the period, of any order (not the net's); failed ones apart
    return [fields(*pairs), *blocks]


def _per_currency(totals: Sequence[CurrencyTotal], previous: Sequence[CurrencyTotal] | None, *, orders: str,
                  note: str | None) -> tuple[list[tuple[str, str]], list[Block]]:
    """Revenue in each currency, never summed, against a week earlier when known. A currency that sold then and not
    now is a 0, so its ▼ 100% shows (and a euro store's quiet morning is €0.00, not $0.00)."""
    before = {t.currency: t for t in previous or []}
    totals = [*totals, *(CurrencyTotal(c, 0, 0) for c in before if c not in {t.currency for t in totals})]

    def vs(t: CurrencyTotal, fmt: str) -> str:
        prev = before.get(t.currency)
        return fmt.format(escape_mrkdwn(change(t.revenue, prev.revenue if prev else 0))) if previous is not None else ""

    def avg(t: CurrencyTotal) -> str:
        return format_money(average(t.revenue, t.orders), t.currency) if t.orders else UNKNOWN

    if not totals:  # nothing sold in either window
        return [("Orders", orders), ("Revenue", "none"), ("Avg order", UNKNOWN)], []
    if len(totals) == 1:
        t = totals[0]
        return [("Orders", orders), ("Revenue", f"{format_money(t.revenue, t.currency)}{vs(t, '  {}')}"),
                ("Avg order", avg(t))], []
    lines = [f"• *{t.currency}* {counted(t.orders)} · {format_money(t.revenue, t.currency)}{vs(t, ' ({})')}"
             f" · avg {avg(t)}" for t in totals]
    return [("Orders", orders)], [section("\n".join(lines)), *([context(note)] if note else [])]


def _store_pairs(st: StoreTotals, prev: StoreTotals | None) -> list[tuple[str, str]]:
    """Revenue (gross) and net in the store currency, against a week earlier when known."""
    rev_vs = f"  {escape_mrkdwn(change(st.gross, prev.gross))}" if prev is not None else ""
    pairs = [("Revenue", f"{gross_text(st)}{rev_vs}")]
    if (net := net_text(st)) is not None:
        pairs.append(("Net", net))
    pairs.append(("Avg order", average_text(st) or UNKNOWN))
    return pairs


def _trend(s: SalesSnapshot, tz: ZoneInfo) -> Block:
    if s.trend is None:
        return section(f"*Trend:* {UNKNOWN}")
    counts = trend_counts(s.trend, s.period, tz)
    unit = "hourly" if s.period.bucket is Bucket.HOUR else "daily"
    peak = ""
    if (top := max(counts, default=0)) > 0:
        starts = bucket_starts(s.period, tz)
        at = local(starts[counts.index(top)], tz)
        peak = f" · peak {at:%H:00}" if s.period.bucket is Bucket.HOUR else f" · best {at:%a %d %b}"
    return section(f"*Trend* ({unit}, orders)\n`{sparkline(counts) or '·'}`{peak}")


def _checkouts(s: SalesSnapshot) -> Block:
    pending = f"🛒 {s.pending_checkouts} in checkout now (last 30 min)" if s.pending_checkouts is not None \
        else f"🛒 checkouts {UNKNOWN}"
    conv = s.conversion
    if conv is None:
        rate = f"conversion {UNKNOWN}"
    elif conv.rate is None:
        rate = "conversion: no checkouts started"
    else:
        rate = f"conversion {conv.rate:.0%} ({conv.completed:,} of {counted(conv.started, 'checkout')})"
        if s.abandoned_unknown:
            rate += " · abandoned ones count once they expire (up to 24 h)"
    return context(pending, f"🎯 {rate}")


def sales_message(s: SalesSnapshot, *, tz: ZoneInfo, share_arg: str | None = None) -> Message:
    """The /sales answer; `share_arg` adds the Share button that re-runs `/sales <arg>` in the channel."""
    blocks: list[Block] = [header(f"📊 Sales · {s.period.label}"), _last_hour(s, tz), *_period_fields(s),
                           *mrr_blocks(s.subscriptions, store=s.store.currency if s.store is not None else None),
                           *([pace_block(s.pace)] if s.pace is not None else []), _trend(s, tz), _checkouts(s)]
    if (warning := missing_context(s.missing)) is not None:
        blocks.append(warning)
    if share_arg is not None:
        blocks.append(share_actions("/sales", share_arg))
    orders = _orders(s.totals)
    money = gross_text(s.store) if s.store is not None else _money_list(s.totals or [])
    summary = "figures unavailable" if orders is None else _orders_and_money(orders, money)
    return message(f"📊 Sales · {s.period.label}: {summary}", blocks)
