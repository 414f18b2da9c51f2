"""The daily reports as Block Kit: the morning summary of the night and the evening total of the day."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Final
from zoneinfo import ZoneInfo

from bot.blocks.alerts import RULE_OFF
from bot.blocks.common import change, counted
from bot.blocks.currency import SETTLED_ELSEWHERE, customers_text, gross_text, net_text, refunds_text
from bot.blocks.elements import context, fields, header, local, message, section
from bot.blocks.message import Block, Message
from bot.blocks.mrr import mrr_report_line
from bot.blocks.pace import pace_block
from bot.blocks.text import escape_mrkdwn, inline
from bot.currency import StoreTotals, average
from bot.money import format_money, format_totals
from bot.reports.figures import Comparison, EveningFigures, Figures, MorningFigures
from bot.reports.schedule import CATCH_UP_WINDOW, LateCause, ReportKind, Slot
from queries.reports import ProductTotal, ReportAlert
from queries.sales import CurrencyTotal

LISTED: Final = 10  # alerts or findings listed before "…and N more"
# Currencies compared one line each, biggest revenue first (a section holds 3,000 characters: ~25 such lines).
MAX_CURRENCY_LINES: Final = 15
TITLE_CHARS: Final = 150
SUMMARY_CHARS: Final = 300
LIGHTS: Final = {"critical": "🔴", "warning": "🟡", "info": "ℹ️"}
# Why a report is late, only as far as known: a new install, or a report made by hand, was never "not running".
LATE_BECAUSE: Final = {LateCause.DOWN: "when salespulse was not running",
                       LateCause.FIRST_START: "before salespulse first started",
                       LateCause.ON_DEMAND: "made on demand (`salespulse report`)"}


def day_label(day: dt.date) -> str:
    """A local day as people read it, e.g. "Tue 10 Mar"."""
    return f"{day:%a} {day.day} {day:%b}"


def yesterday_names(day: dt.date, *, read: dt.date) -> tuple[str, str]:
    """How a morning names the day it covers, as a heading and in a sentence: ("Yesterday, Mon 30 Nov", "yesterday")
    when it is the day before the one the report is made on (`read`), else the day both times ("Mon 30 Nov"): a
    past day's morning, posted late or by hand days after, does not call its day yesterday."""
    if day == read - dt.timedelta(days=1):
        return f"Yesterday, {day_label(day)}", "yesterday"
    return day_label(day), day_label(day)


def _clip(text: str, limit: int) -> str:
    return inline(text, limit)


def _totals(totals: Sequence[CurrencyTotal], noun: str = "order", store: StoreTotals | None = None) -> str:
    """"12 orders · $340.00 + €20.00" (never summed across currencies), "12 orders · $361.60" in the store
    currency (orders not converted yet named apart), or "no orders"."""
    count = sum(t.orders for t in totals)
    if not count:
        return f"no {noun}s"
    amounts = gross_text(store) if store is not None else format_totals({t.currency: t.revenue for t in totals})
    return f"{counted(count, noun)} · {escape_mrkdwn(amounts)}"


def _avg(t: CurrencyTotal | None) -> str:
    # Integer minor units, rounded half up, as /sales shows it.
    return format_money(average(t.revenue, t.orders), t.currency) if t is not None and t.orders else "—"


def comparison_lines(c: Comparison) -> list[str]:
    """One line per currency: orders, revenue and average order, each against a week earlier."""
    before = {t.currency: t for t in c.previous}
    codes = [t.currency for t in c.current] + sorted(set(before) - {t.currency for t in c.current})
    now = {t.currency: t for t in c.current}
    lines = []
    for code in codes[:MAX_CURRENCY_LINES]:
        cur, prev = now.get(code, CurrencyTotal(code, 0, 0)), before.get(code)
        was_orders, was_revenue = (prev.orders, prev.revenue) if prev else (0, 0)
        # Escaped: a change under 1% reads "▲ <1%", and Slack takes "<" as the start of a link.
        orders, revenue = escape_mrkdwn(change(cur.orders, was_orders)), escape_mrkdwn(change(cur.revenue, was_revenue))
        lines.append(f"• *{escape_mrkdwn(code.upper())}* {counted(cur.orders)} ({orders})"
                     f" · {escape_mrkdwn(format_money(cur.revenue, code))} ({revenue})"
                     f" · avg {escape_mrkdwn(_avg(cur))} (was {escape_mrkdwn(_avg(prev))})")
    if (more := len(codes) - MAX_CURRENCY_LINES) > 0:
        lines.append(f"…and {more} more currencies")
    if c.store is not None and (c.store.orders or lines):
        lines.insert(0, store_line(c.store, c.store_previous))
    return lines or ["No orders, nor a week earlier."]


def store_line(st: StoreTotals, previous: StoreTotals | None) -> str:
    """All currencies in the store currency: gross against a week earlier, and net when Stripe's figures are in."""
    was = f" ({escape_mrkdwn(change(st.gross, previous.gross))})" if previous is not None else ""
    net = net_text(st)
    return (f"• *All in {escape_mrkdwn(st.currency)}* {escape_mrkdwn(gross_text(st))}{was}"
            + (f" · net {escape_mrkdwn(net)}" if net else ""))


def _alert_line(a: ReportAlert, *, now: dt.datetime, tz: ZoneInfo, past: bool = False) -> str:
    """An alert and whether it is resolved by `now`; `past`: listed as it stood at an earlier time (a past day's
    report), so an unresolved one is "not resolved yet" rather than "still firing" then."""
    light = LIGHTS.get(a.severity, "•")
    started = f"{local(a.started_at, tz):%a %H:%M}"
    if a.severity == "info":
        return f"{light} *{_clip(a.title, TITLE_CHARS)}* — {_clip(a.summary, SUMMARY_CHARS)}"
    if a.resolved_at is not None and a.resolved_at <= now and a.resolved_reason == RULE_OFF:
        status = f"closed {local(a.resolved_at, tz):%a %H:%M}, its rule no longer runs ⏹"  # not "it cleared"
    elif a.resolved_at is not None and a.resolved_at <= now:
        status = f"resolved {local(a.resolved_at, tz):%a %H:%M} ✅"
    else:
        status = "*not resolved yet*" if past else "*still firing*"
    return f"{light} *{_clip(a.title, TITLE_CHARS)}* — since {started}, {status}"


def _alert_list(title: str, alerts: Sequence[ReportAlert], *, now: dt.datetime, tz: ZoneInfo,
                empty: str) -> str:
    lines = [_alert_line(a, now=now, tz=tz) for a in alerts[:LISTED]]
    if len(alerts) > LISTED:
        lines.append(f"…and {len(alerts) - LISTED} more")
    return f"*{title}*\n" + ("\n".join(lines) if lines else empty)


def _timing(slot: Slot, now: dt.datetime, *, late: bool, cause: LateCause, tz: ZoneInfo) -> Block | None:
    """Say when a report is late (after downtime, a first start, or made by hand) or early (figures so far)."""
    due = local(slot.scheduled_at, tz)
    if late:  # sent on another day (the command a "was not sent" notice gives), the day it was due is named
        when = f"{due:%H:%M %Z}" if due.date() == local(now, tz).date() else f"{day_label(due.date())} {due:%H:%M %Z}"
        return context(f"⏰ Sent late, at {local(now, tz):%a %H:%M}: due at {when}, {LATE_BECAUSE[cause]}")
    if now < slot.scheduled_at:
        return context(f"⏳ Made at {local(now, tz):%a %H:%M}, before its time ({due:%H:%M %Z}): figures so far")
    return None


def _footer(slot: Slot, tz: ZoneInfo, chart_note: str | None) -> Block:
    parts = [f"salespulse · {slot.kind.value} report for {day_label(slot.day)} · times in {tz.key}"]
    if chart_note:
        parts.insert(0, f"📈 {escape_mrkdwn(chart_note)}")
    return context(*parts)


def morning_message(f: MorningFigures, *, tz: ZoneInfo, late: bool, cause: LateCause,
                    chart_note: str | None) -> Message:
    """Overnight orders, yesterday against the same weekday a week earlier, overnight alerts, findings."""
    title = f"☀️ Morning report · {day_label(f.slot.day)}"
    start, end = local(f.overnight.start, tz), local(f.overnight.end, tz)
    yesterday = local(f.yesterday.window.start, tz).date()
    named, said = yesterday_names(yesterday, read=local(f.now, tz).date())
    overnight = _totals(f.overnight_totals, store=f.overnight_store)
    blocks: list[Block] = [header(title)]
    if (timing := _timing(f.slot, f.now, late=late, cause=cause, tz=tz)) is not None:
        blocks.append(timing)
    blocks += [
        section(f"*Overnight* ({start:%a %H:%M} → {end:%a %H:%M %Z})\n{overnight}"),
        section(f"*{named}* · against {day_label(yesterday - dt.timedelta(days=7))}\n"
                + "\n".join(comparison_lines(f.yesterday))),
        section(_alert_list("Alerts overnight", f.alerts, now=f.now, tz=tz, empty="None ✅")),
    ]
    store = f.yesterday.store.currency if f.yesterday.store is not None else None
    if (mrr_line := mrr_report_line(f.subscriptions, store=store)) is not None:
        blocks.insert(-1, section(f"🔁 {mrr_line}"))
    renewed = f"Renewals {said}: {_totals(f.renewals, 'renewal')}" if f.renewals is not None else None
    if renewed is not None:  # SUBSCRIPTION_RENEWALS=report: pinged nowhere else
        blocks.insert(-1, section(f"🔄 {renewed}"))
    if f.findings:
        blocks.append(section(_alert_list("Findings", f.findings, now=f.now, tz=tz, empty="")))
    blocks.append(_footer(f.slot, tz, chart_note))
    text = (f"{title}{' (late)' if late else ''}: {said} {_totals(f.yesterday.current, store=f.yesterday.store)};"
            f" overnight {overnight}" + (f"; {mrr_line}" if mrr_line else "")
            + (f"; {renewed}" if renewed else ""))
    return message(text, blocks)


def _past(f: EveningFigures, tz: ZoneInfo) -> bool:
    """A report made after its day (`salespulse report --date`, or posted late): it must not call that day "today"."""
    return local(f.now, tz).date() > f.slot.day


def _attention(f: EveningFigures, tz: ZoneInfo) -> str:
    """What needed attention at the report time; a report made after its day says so, in the past tense, rather
    than "today"."""
    past = _past(f, tz)
    lines = [_alert_line(a, now=f.now, tz=tz, past=past) for a in f.firing[:LISTED]]
    if len(f.firing) > LISTED:
        lines.append(f"…and {len(f.firing) - LISTED} more alerts")
    errs = f.delivery_errors
    if errs.count:
        last = _clip(errs.last_error or "?", SUMMARY_CHARS)
        lines.append(f"{'🔴' if errs.permanent else '🟡'} *Slack delivery* {counted(errs.count, 'error')}"
                     f" {'that day' if past else 'today'} ({errs.permanent} permanent), last: `{last}`")
    if f.recovered:
        lines.append(f"🟡 *Stripe webhook* {f.recovered} events recovered that the webhook missed"
                     " — check the endpoint")
    title = f"*Needed attention at {local(f.day.window.end, tz):%H:%M} that day*" if past else "*Needs attention*"
    return f"{title}\n" + ("\n".join(lines) if lines else "Nothing ✅")


def _product_line(n: int, p: ProductTotal, *, converts: bool) -> str:
    """"2. Course — 12 orders · $490.00", in the store currency saying how many of the orders it could not count
    yet, "(2 not converted yet)", and those it never will, as /sales words them: "(1 settled in another currency,
    not counted)"."""
    apart = []
    if p.not_converted:
        apart.append(f"{p.not_converted:,} " + ("not converted yet" if converts else "in other currencies"))
    if p.aside:
        apart.append(f"{p.aside:,} {SETTLED_ELSEWHERE}")
    rest = f" ({'; '.join(apart)})" if apart else ""
    return f"{n}. {_clip(p.product, 80)} — {counted(p.orders)} · {escape_mrkdwn(format_money(p.revenue, p.currency))}" \
        + rest


def evening_message(f: EveningFigures, *, tz: ZoneInfo, late: bool, cause: LateCause,
                    chart_note: str | None) -> Message:
    """The day so far against the same weekday a week earlier, customers, products, money back, issues."""
    title = f"🌆 Evening report · {day_label(f.slot.day)}"
    until = local(f.day.window.end, tz)
    blocks: list[Block] = [header(title)]
    if (timing := _timing(f.slot, f.now, late=late, cause=cause, tz=tz)) is not None:
        blocks.append(timing)
    day = day_label(f.slot.day) if _past(f, tz) else "Today"
    blocks.append(section(f"*{day} until {until:%H:%M %Z}* · against"
                          f" {day_label(f.slot.day - dt.timedelta(days=7))}\n" + "\n".join(comparison_lines(f.day))))
    if f.pace is not None:
        blocks.append(pace_block(f.pace))
    blocks.append(fields(("Unique customers", customers_text(f.customers, f.customers_error,
                                                             without_email=f.customers_without_email)),
                         ("Refunds made", refunds_text(f.refunds, noun=True)),
                         ("Disputes", _totals(f.disputes, "dispute")),
                         ("Payment failures", str(f.payment_failures))))
    if f.top_products:
        converts = f.day.store is not None and f.day.store.with_fees
        lines = [_product_line(n, p, converts=converts) for n, p in enumerate(f.top_products, 1)]
        blocks.append(section("*Top products*\n" + "\n".join(lines)))
    blocks += [section(_attention(f, tz)), _footer(f.slot, tz, chart_note)]
    text = f"{title}{' (late)' if late else ''}: {_totals(f.day.current, store=f.day.store)}"
    return message(text, blocks)


def report_message(f: Figures, *, tz: ZoneInfo, late: bool = False, cause: LateCause = LateCause.DOWN,
                   chart_note: str | None = None) -> Message:
    """The report for its kind; `cause`: why it is late, if it is; `chart_note` says where the chart went when it is
    not in Slack."""
    if isinstance(f, MorningFigures):
        return morning_message(f, tz=tz, late=late, cause=cause, chart_note=chart_note)
    return evening_message(f, tz=tz, late=late, cause=cause, chart_note=chart_note)


def missed_message(slot: Slot, *, tz: ZoneInfo) -> Message:
    """A report that could not be sent in time: say so, and how to see it, rather than skip it silently."""
    due = local(slot.scheduled_at, tz)
    hours = int(CATCH_UP_WINDOW.total_seconds() // 3600)
    text = (f"⏰ The {slot.kind.value} report for {day_label(slot.day)} (due {due:%H:%M %Z}) was not sent:"
            f" salespulse was not running then, nor in the {hours} hours after.")
    command = f"salespulse report {slot.kind.value} --date {slot.day.isoformat()}"
    kind = "☀️" if slot.kind is ReportKind.MORNING else "🌆"
    return message(text, [section(f"{kind} {text}"), context(f"See it with `{command}`")])
