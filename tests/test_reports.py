"""The daily reports' figures against an independent computation over seeded history, in the store's time
zone (DST days included, several currencies), and every report as valid Block Kit."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from bot.blocks.reports import missed_message, report_message
from bot.money import format_money
from bot.reports.figures import EveningFigures, MorningFigures
from bot.reports.reporter import Reporter
from bot.reports.schedule import ReportKind, slot_for
from tests.blockkit import assert_valid_message
from tests.conftest import make_settings
from tests.report_seed import History, as_dict, at, completed_totals, generate, hourly, insert, insert_alert

NY = ZoneInfo("America/New_York")
DAY = dt.timedelta(days=1)


def reporter(pool: asyncpg.Pool, tmp_path: Path, now: dt.datetime, **env: str) -> Reporter:
    """A New York store's reporter with a fixed clock and no Slack client."""
    settings = make_settings(STORE_TIMEZONE="America/New_York", SALESPULSE_DATA_DIR=str(tmp_path), **env)
    return Reporter(pool=pool, settings=settings, slack=None, clock=lambda: now)


async def seed_around(pool: asyncpg.Pool, day: dt.date, *, seed: int) -> History:
    """Nine days of history before `day` and the day after, with orders on every report boundary."""
    boundaries = []
    for d in (day - 8 * DAY, day - 7 * DAY, day - DAY, day, day + DAY):
        boundaries += [at(NY, d.year, d.month, d.day), at(NY, d.year, d.month, d.day, 9),
                       at(NY, d.year, d.month, d.day, 18)]
    history = generate(tz=NY, first=day - 9 * DAY, last=day + DAY, seed=seed, boundaries=boundaries)
    await insert(pool, history)
    return history


def local_day(d: dt.date, hour: int = 0) -> dt.datetime:
    """Local `hour`:00 on day `d`, as an instant."""
    return at(NY, d.year, d.month, d.day, hour)


# Sun 8 Mar 2026: New York springs forward (23 hours); Sun 1 Nov 2026: it falls back (25 hours).
@pytest.mark.parametrize("day", [dt.date(2026, 3, 9), dt.date(2026, 11, 2), dt.date(2026, 6, 17)])
async def test_morning_figures_equal_an_independent_computation(pool: asyncpg.Pool, tmp_path: Path,
                                                                day: dt.date) -> None:
    """Overnight, yesterday against a week earlier, and the hourly chart match sums over the seeded rows."""
    history = await seed_around(pool, day, seed=day.toordinal())
    now = local_day(day, 9) + dt.timedelta(minutes=1)
    r = reporter(pool, tmp_path, now)
    figures = await r.figures(slot_for(ReportKind.MORNING, day, r.settings), now=now)
    assert isinstance(figures, MorningFigures)
    yesterday = day - DAY
    assert as_dict(figures.overnight_totals) == completed_totals(history, local_day(yesterday, 18), local_day(day, 9))
    assert as_dict(figures.yesterday.current) == completed_totals(history, local_day(yesterday), local_day(day))
    assert as_dict(figures.yesterday.previous) == completed_totals(
        history, local_day(yesterday - 7 * DAY), local_day(day - 7 * DAY))
    assert len(figures.yesterday.current) >= 2  # several currencies, never summed together
    chart = figures.chart
    assert (chart.day, chart.previous_day) == (yesterday, yesterday - 7 * DAY)
    assert list(chart.current) == hourly(history, local_day(yesterday), local_day(day), chart.currency, NY)
    assert list(chart.previous) == hourly(history, local_day(yesterday - 7 * DAY), local_day(day - 7 * DAY),
                                          chart.currency, NY)
    msg = report_message(figures, tz=NY)
    assert_valid_message(msg)
    usd = completed_totals(history, local_day(yesterday), local_day(day))["USD"]
    assert f"{format_money(usd[1], 'USD')} (" in json.dumps(msg.blocks, ensure_ascii=False)
    average = (2 * usd[1] + usd[0]) // (2 * usd[0])  # rounded half up
    assert f"avg {format_money(average, 'USD')}" in json.dumps(msg.blocks, ensure_ascii=False)


@pytest.mark.parametrize("day", [dt.date(2026, 3, 8), dt.date(2026, 11, 1), dt.date(2026, 6, 16)])
async def test_evening_figures_equal_an_independent_computation(pool: asyncpg.Pool, tmp_path: Path,
                                                                day: dt.date) -> None:
    """The day until 18:00, customers, top products, refunds, disputes and failures match the seeded rows."""
    history = await seed_around(pool, day, seed=day.toordinal() * 7)
    start, end = local_day(day), local_day(day, 18)
    now = end + dt.timedelta(minutes=2)
    r = reporter(pool, tmp_path, now)
    figures = await r.figures(slot_for(ReportKind.EVENING, day, r.settings), now=now)
    assert isinstance(figures, EveningFigures)
    assert as_dict(figures.day.current) == completed_totals(history, start, end)
    assert as_dict(figures.day.previous) == completed_totals(history, local_day(day - 7 * DAY),
                                                             local_day(day - 7 * DAY, 18))
    done = [o for o in history.orders if o.status == "completed" and start <= o.created_at < end]
    assert figures.customers == len({o.email for o in done})
    products: dict[tuple[str, str], tuple[int, int]] = {}
    for o in done:
        key = (o.product or "Unknown", o.currency)
        count, revenue = products.get(key, (0, 0))
        products[key] = (count + 1, revenue + o.amount)
    best = sorted(products.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0][0], kv[0][1]))[:5]
    assert [((p.product, p.currency), (p.orders, p.revenue)) for p in figures.top_products] == best
    refunds: dict[str, tuple[int, int]] = {}
    for o in history.orders:
        if o.refunded_at is not None and start <= o.refunded_at < end:
            count, amount = refunds.get(o.currency, (0, 0))
            refunds[o.currency] = (count + 1, amount + o.refunded)
    assert as_dict(figures.refunds) == refunds
    disputes: dict[str, tuple[int, int]] = {}
    for currency, amount, when in history.disputes:
        if start <= when < end:
            count, total = disputes.get(currency, (0, 0))
            disputes[currency] = (count + 1, total + amount)
    assert as_dict(figures.disputes) == disputes
    assert figures.payment_failures == sum(1 for t in history.failures if start <= t < end)
    assert list(figures.chart.current) == hourly(history, start, end, figures.chart.currency, NY)
    assert figures.chart.until == dt.time(18)
    assert_valid_message(report_message(figures, tz=NY))


async def test_morning_lists_overnight_alerts_with_their_state_and_info_findings(pool: asyncpg.Pool,
                                                                                 tmp_path: Path) -> None:
    """Alerts that started since yesterday's evening report — posted, muted or held until business hours — show
    resolved or still firing; info findings since the previous morning report are listed apart; older ones are
    not."""
    day = dt.date(2026, 3, 10)
    now = local_day(day, 9)
    await insert_alert(pool, severity="critical", title="Site down", started_at=local_day(day, 2),
                       resolved_at=local_day(day, 3))
    await insert_alert(pool, severity="warning", title="No sales", started_at=local_day(day, 7))
    await insert_alert(pool, severity="warning", title="Muted warning", started_at=local_day(day, 4), notified=False)
    await insert_alert(pool, severity="warning", title="Held warning", started_at=local_day(day, 5),
                       notified=local_day(day, 9))  # held until business hours: posted as the report is made
    await insert_alert(pool, severity="warning", title="Afternoon blip", started_at=local_day(day - DAY, 15),
                       resolved_at=local_day(day - DAY, 16))
    await insert_alert(pool, severity="info", title="Conversion dipped", started_at=local_day(day - DAY, 13))
    await insert_alert(pool, severity="info", title="Old finding", started_at=local_day(day - 2 * DAY, 13))
    r = reporter(pool, tmp_path, now)
    figures = await r.figures(slot_for(ReportKind.MORNING, day, r.settings), now=now)
    assert isinstance(figures, MorningFigures)
    assert [a.title for a in figures.alerts] == ["Site down", "Muted warning", "Held warning", "No sales"]
    assert [a.title for a in figures.findings] == ["Conversion dipped"]
    text = json.dumps(report_message(figures, tz=NY).blocks, ensure_ascii=False)
    assert "*Site down* — since Tue 02:00, resolved Tue 03:00 ✅" in text
    assert "*No sales* — since Tue 07:00, *still firing*" in text
    assert "Conversion dipped" in text and "Old finding" not in text and "Afternoon blip" not in text


async def test_evening_needs_attention_lists_firing_alerts_and_delivery_errors(pool: asyncpg.Pool,
                                                                               tmp_path: Path) -> None:
    """Alerts firing at report time and today's Slack delivery errors are what still needs attention."""
    day = dt.date(2026, 3, 10)
    now = local_day(day, 18)
    await insert_alert(pool, severity="critical", title="Checkout errors", started_at=local_day(day, 17))
    await insert_alert(pool, severity="warning", title="Fixed earlier", started_at=local_day(day, 10),
                       resolved_at=local_day(day, 11))
    await pool.execute("INSERT INTO delivery_errors (channel, error, permanent, created_at)"
                       " VALUES ('sales', 'channel_not_found', true, $1)", local_day(day, 12))
    r = reporter(pool, tmp_path, now)
    figures = await r.figures(slot_for(ReportKind.EVENING, day, r.settings), now=now)
    msg = report_message(figures, tz=NY)
    assert_valid_message(msg)
    text = json.dumps(msg.blocks, ensure_ascii=False)
    assert "🔴 *Checkout errors* — since Tue 17:00, *still firing*" in text
    assert "Fixed earlier" not in text
    assert "*Slack delivery* 1 error today (1 permanent), last: `sales: channel_not_found`" in text
    assert "recovered that the webhook missed" not in text


async def test_evening_says_when_the_events_api_recovered_what_the_webhook_missed(pool: asyncpg.Pool,
                                                                                  tmp_path: Path) -> None:
    """Three events recovered today (and one yesterday): the evening report asks to check the endpoint."""
    day = dt.date(2026, 3, 10)
    now = local_day(day, 18)
    moments = [local_day(day, 9), local_day(day, 12), local_day(day, 15), local_day(day - dt.timedelta(days=1), 21)]
    for n, moment in enumerate(moments):
        await pool.execute("INSERT INTO webhook_logs (event_id, event_type, status, payload, via, created_at)"
                           " VALUES ($1, 'checkout.session.completed', 'processed', '{}', 'recovered', $2)",
                           f"evt_rec_{n}", moment)
    r = reporter(pool, tmp_path, now)
    msg = report_message(await r.figures(slot_for(ReportKind.EVENING, day, r.settings), now=now), tz=NY)
    assert_valid_message(msg)
    assert "3 events recovered that the webhook missed — check the endpoint" in json.dumps(msg.blocks,
                                                                                            ensure_ascii=False)


async def test_reports_stay_valid_with_long_lists_and_hostile_text(pool: asyncpg.Pool, tmp_path: Path) -> None:
    """Dozens of alerts and products with mrkdwn-looking names keep within Block Kit's limits, escaped."""
    day = dt.date(2026, 3, 10)
    for i in range(30):
        await insert_alert(pool, severity="warning", title=f"<!channel> alert {i} " + "x" * 300,
                           started_at=local_day(day, 1) + dt.timedelta(minutes=i))
    await pool.executemany(
        "INSERT INTO orders (id, payment_status, amount_total, currency, product_name, created_at, status_at)"
        " VALUES ($1, 'completed', 1000, $2, $3, $4, $4)",
        [(f"pi_{i}", "KWD" if i % 2 else "JPY", f"<@U123> & product {i}" * 20, local_day(day, 10))
         for i in range(20)])
    for kind, hour in ((ReportKind.MORNING, 9), (ReportKind.EVENING, 18)):
        r = reporter(pool, tmp_path, local_day(day, hour))
        msg = report_message(await r.figures(slot_for(kind, day, r.settings), now=local_day(day, hour)), tz=NY)
        assert_valid_message(msg)
        text = json.dumps(msg.blocks, ensure_ascii=False)
        assert "<!channel>" not in text and "<@U123>" not in text
    assert_valid_message(missed_message(slot_for(ReportKind.EVENING, day, r.settings), tz=NY))


async def test_an_empty_store_still_gets_both_reports(pool: asyncpg.Pool, tmp_path: Path) -> None:
    """No orders at all: the reports say so instead of failing, and the chart is drawn empty."""
    day = dt.date(2026, 3, 10)
    for kind, hour in ((ReportKind.MORNING, 9), (ReportKind.EVENING, 18)):
        r = reporter(pool, tmp_path, local_day(day, hour))
        figures = await r.figures(slot_for(kind, day, r.settings), now=local_day(day, hour))
        msg = report_message(figures, tz=NY)
        assert_valid_message(msg)
        assert "no orders" in msg.text
        assert figures.chart.currency == "USD" and not any(figures.chart.current)


# 40 of Stripe's presentment currencies, zero-, two- and three-decimal ones mixed.
MANY_CODES = ("AED AUD BGN BHD BRL CAD CHF CLP CNY CZK DKK EUR GBP HKD HUF IDR ILS INR ISK JOD "
              "JPY KRW KWD MXN MYR NOK NZD OMR PHP PLN RON SEK SGD THB TND TRY TWD USD VND ZAR").split()


@pytest.mark.parametrize("kind", [ReportKind.MORNING, ReportKind.EVENING])
async def test_a_store_selling_in_forty_currencies_is_told_how_many_are_not_listed(
        pool: asyncpg.Pool, tmp_path: Path, kind: ReportKind) -> None:
    """The biggest currencies are listed whole, the rest counted ("…and 25 more"), no line cut off by Slack's
    3,000-character section limit — before, the last currencies silently fell off the end (a review's find)."""
    rows = [(f"pi_{code}_{week}", 1_234_567 + i, code, "Course", when)
            for i, code in enumerate(MANY_CODES)
            for week, when in ((0, at(NY, 2026, 6, 17, 6)), (1, at(NY, 2026, 6, 10, 6)))]
    await pool.executemany(
        "INSERT INTO orders (id, payment_status, amount_total, currency, product_name, created_at, status_at)"
        " VALUES ($1, 'completed', $2, $3, $4, $5, $5)", rows)
    day = dt.date(2026, 6, 17 if kind is ReportKind.EVENING else 18)
    settings = make_settings(STORE_TIMEZONE="America/New_York", SALESPULSE_DATA_DIR=str(tmp_path))
    slot = slot_for(kind, day, settings)
    r = Reporter(pool=pool, settings=settings, slack=None, clock=lambda: slot.scheduled_at)
    msg = report_message(await r.figures(slot, now=slot.scheduled_at), tz=NY)
    assert_valid_message(msg)
    texts = [b["text"]["text"] for b in msg.blocks if b["type"] == "section" and "text" in b]
    [listing] = [t for t in texts if "*ZAR*" in t]  # the biggest revenue comes first
    listed = [c for c in MANY_CODES if f"*{c}*" in listing]
    assert len(listed) == 15 and listing.endswith("\n…and 25 more currencies")
    assert all(line.endswith(")") for line in listing.split("\n")[1:-1])  # every listed line whole
