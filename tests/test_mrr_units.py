"""MRR summed finer than a minor unit (migration 0046), found by a review: it was rounded per subscription, then
summed, so the error grew with the subscribers. Three $100.00-a-year subscribers made $24.99 a month (each counted at
$8.33); three $10.00-a-quarter ones $9.99; three at $10.00 every 2 weeks $65.01. Now each is kept in MRR units (a
year's amount in millionths of a minor unit), summed, and rounded once where shown: every surface, the movements
too."""

from __future__ import annotations

import copy
import datetime as dt
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.answers.gather import gather_health, gather_sales
from bot.blocks.mrr import WORD_JOINER
from bot.blocks.reports import report_message
from bot.db import bundled_migrations, migrate
from bot.home.render import render_home
from bot.reports.figures import MorningFigures
from bot.reports.reporter import Reporter
from bot.reports.schedule import ReportKind, slot_for
from bot.subscriptions.mrr import PER_MINOR, Item, minor, subscription_mrr
from bot.web.view import dashboard_view
from queries import mrr as mrr_q
from queries.subscriptions import Snapshot, StateRow, insert_snapshots, upsert_states
from tests import old_mrr_sql
from tests.blockkit import assert_valid_message, assert_valid_view
from tests.conftest import Bot, start_bot
from tests.fakes import FakeSlack
from tests.test_subscriptions import post

NOW = dt.datetime(2026, 3, 20, 12, 0, tzinfo=dt.UTC)
TOKEN = "mon-token-mrr-rounding-long-enough"
STORY = Path(__file__).parent / "fixtures" / "stripe" / "subscriptions" / "clover"
AT = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
FLAGS = "SELECT event_id, prev_mrr_units, paid_before FROM subscription_events ORDER BY 1"


def subscriber(n: int, *, amount: int, interval: str, count: int = 1) -> dict[str, Any]:
    """The story's customer.subscription.created, three days ago, as subscription `n` on this price."""
    evt = copy.deepcopy(json.loads((STORY / "1_created.json").read_text("utf-8")))
    evt["id"], evt["created"] = f"evt_mrr_round_{n}", int((NOW - dt.timedelta(days=3)).timestamp()) + n
    obj = evt["data"]["object"]
    obj["id"], obj["customer"] = f"sub_round_{n:04d}", f"cus_round_{n:04d}"
    price = obj["items"]["data"][0]["price"]
    price.update(unit_amount=amount, unit_amount_decimal=str(amount), id=f"price_{interval}_{count}")
    price["recurring"].update(interval=interval, interval_count=count)
    return evt


def churned(created: dict[str, Any]) -> dict[str, Any]:
    """That subscription deleted a day ago."""
    evt = copy.deepcopy(created)
    ended = int((NOW - dt.timedelta(days=1)).timestamp())
    evt["id"], evt["type"], evt["created"] = evt["id"] + "_deleted", "customer.subscription.deleted", ended
    evt["data"]["object"].update(status="canceled", ended_at=ended, canceled_at=ended)
    evt["data"].pop("previous_attributes", None)
    return evt


async def monitoring(bot: Bot) -> dict[str, Any]:
    """GET /api/monitoring/sales' `subscriptions`."""
    resp = await bot.client.get("/api/monitoring/sales", headers={"Authorization": f"Bearer {TOKEN}"})
    body = await resp.json()
    assert isinstance(body["subscriptions"], dict)
    return body["subscriptions"]


async def mrr(dsn: str, fake_slack: FakeSlack, tmp_path: Path, events: list[dict[str, Any]]) -> int:
    async with start_bot(dsn, fake_slack, clock=lambda: NOW, MONITORING_TOKEN=TOKEN,
                         SALESPULSE_DATA_DIR=str(tmp_path)) as bot:
        for evt in events:
            assert (await bot.stripe(evt)).status == 200
        return int((await monitoring(bot))["mrr"])


async def test_three_yearly_subscribers_make_25_dollars_a_month(dsn: str, fake_slack: FakeSlack,
                                                                tmp_path: Path) -> None:
    events = [subscriber(n, amount=10000, interval="year") for n in range(3)]  # 3 × $100.00 a year
    assert await mrr(dsn, fake_slack, tmp_path, events) == 2500  # $300.00 / 12


@pytest.mark.parametrize(("amount", "interval", "count", "expected"), [
    (1000, "month", 3, 1000),  # $10.00 a quarter: 3 × 333⅓, not 3 × 333 = 999
    (1000, "week", 2, 6500),  # $10.00 every 2 weeks: 3 × 1000 × 26 / 12 = 6500, not 3 × 2167 = 6501
    (1000, "day", 1, 91250),  # $10.00 a day: 3 × 1000 × 365 / 12 = 91250, not 3 × 30417 = 91251
], ids=["quarter", "fortnight", "day"])
async def test_three_subscribers_on_any_interval_add_up_exactly(dsn: str, fake_slack: FakeSlack, tmp_path: Path,
                                                               amount: int, interval: str, count: int,
                                                               expected: int) -> None:
    events = [subscriber(n, amount=amount, interval=interval, count=count) for n in range(3)]
    assert await mrr(dsn, fake_slack, tmp_path, events) == expected


async def test_every_surface_and_the_movements_agree_with_the_total(dsn: str, fake_slack: FakeSlack,
                                                                    tmp_path: Path) -> None:
    """Three yearly subscribers: $25.00 of MRR and $25.00 of new MRR on /sales, the App Home, the report, the
    dashboard and the JSON; churning all three loses $25.00."""
    created = [subscriber(n, amount=10000, interval="year") for n in range(3)]
    async with start_bot(dsn, fake_slack, clock=lambda: NOW, MONITORING_TOKEN=TOKEN,
                         SALESPULSE_DATA_DIR=str(tmp_path)) as bot:
        for evt in created:
            assert (await bot.stripe(evt)).status == 200
        subs = await monitoring(bot)
        assert (subs["mrr"], subs["newMrr"], subs["netNewMrr"], subs["active"]) == (2500, 2500, 2500, 3)
        line = f"MRR $25.00* new vs 7 days ago · 3 subscribers\n30 days: new +{WORD_JOINER}$25.00 · none churned"
        body = await bot.command("/sales", "30d")
        assert_valid_message(body)
        assert line in json.dumps(body["blocks"], ensure_ascii=False).replace("\\n", "\n")
        view = await render_home(bot.deps, buttons=True)
        assert_valid_view(view)
        assert line in json.dumps(view["blocks"], ensure_ascii=False).replace("\\n", "\n")
        (today, hourly), health = await gather_sales(bot.deps), await gather_health(bot.deps)
        card = dashboard_view(today, hourly, health, tz=bot.deps.settings.tz)["subscriptions"]
        assert card["mrr"] == "$25.00" and card["detail"].endswith(f"30 days: new +{WORD_JOINER}$25.00 · none churned")
        reporter = Reporter.from_deps(bot.deps)
        figures = await reporter.figures(slot_for(ReportKind.MORNING, NOW.date(), bot.deps.settings), now=NOW)
        assert isinstance(figures, MorningFigures)
        msg = report_message(figures, tz=bot.deps.settings.tz)
        assert_valid_message(msg)
        assert "MRR $25.00 new this week" in msg.text
        for evt in created:
            assert (await bot.stripe(churned(evt))).status == 200
        subs = await monitoring(bot)
        assert (subs["mrr"], subs["newMrr"], subs["churnedMrr"], subs["churned"], subs["netNewMrr"]) == (
            0, 2500, 2500, 3, 0)


async def test_each_ping_shows_its_own_mrr_rounded_once(bot: Bot) -> None:
    """A ping is one subscription's: $100.00 a year is "MRR +$8.33", an upgrade to $200.00 a year "+$8.33" (the
    change, 8⅓, rounded once: not 16.67 − 8.33), its churn "−$16.67"."""
    created = subscriber(0, amount=10000, interval="year")
    upgraded = copy.deepcopy(created)
    upgraded["id"], upgraded["type"], upgraded["created"] = "evt_mrr_round_up", "customer.subscription.updated", \
        created["created"] + 60
    old_items = copy.deepcopy(created["data"]["object"]["items"])
    price = upgraded["data"]["object"]["items"]["data"][0]["price"]
    price.update(unit_amount=20000, unit_amount_decimal="20000", id="price_year_200", nickname="Pro yearly 200")
    upgraded["data"]["previous_attributes"] = {"items": old_items}
    texts = [t for evt in (created, upgraded, churned(upgraded)) for t in await post(bot, evt)]
    assert [t.rsplit(" — ", 1)[-1] for t in texts] == ["MRR +$8.33", "MRR +$8.33", "MRR −$16.67"]


def test_a_subscription_is_kept_in_millionths_of_a_minor_unit_a_year() -> None:
    """$100.00 a year is 10,000 × 10⁶ MRR units, exactly; shown, each rounds once, half up (a change: away from 0)."""
    yearly = Item(price_id="price_y", name="Plan", unit_amount=Fraction(10000), interval="year")
    assert subscription_mrr([yearly], at=AT) == 10000 * 1_000_000 == 10000 * PER_MINOR // 12
    assert (minor(subscription_mrr([yearly], at=AT)), minor(3 * subscription_mrr([yearly], at=AT))) == (833, 2500)
    every_3_weeks = Item(price_id="price_w", name="Plan", unit_amount=Fraction(1), interval="week", interval_count=3)
    assert subscription_mrr([every_3_weeks], at=AT) == 17_333_333  # 52/3 millionths a year, rounded there
    assert [minor(u) for u in (PER_MINOR // 2 - 1, PER_MINOR // 2, -PER_MINOR // 2, -PER_MINOR // 2 + 1)] == [
        0, 1, -1, 0]


async def test_sql_rounds_as_python(conn: asyncpg.Connection) -> None:
    """mrr_minor() (migration 0046) and bot/subscriptions/mrr.py `minor` use the same scale and rounding."""
    values = [0, 1, PER_MINOR // 2 - 1, PER_MINOR // 2, PER_MINOR // 2 + 1, 7 * PER_MINOR + PER_MINOR // 2,
              -PER_MINOR // 2, -PER_MINOR // 2 + 1, -3 * PER_MINOR - 1, 10**24 + PER_MINOR // 2]
    got = await conn.fetchval("SELECT array_agg(mrr_minor(v) ORDER BY n) FROM unnest($1::numeric[]) "
                              "WITH ORDINALITY AS u (v, n)", values)
    assert got == [minor(v) for v in values]


def _state(sub: str, mrr_now: int, event_id: str, at: dt.datetime) -> StateRow:
    return StateRow(sub, f"cus_{sub}", "active" if mrr_now else "canceled", mrr_now, "usd", "Pro", False, None, None,
                    None, None, None, False, event_id, at, 0)


async def test_the_upgrade_converts_what_is_stored_and_the_next_event_is_exact(empty_dsn: str) -> None:
    """A store from before 0046, in minor units: three yearly subscribers at 833 (one churned since) and one at
    $19.00 a month. After it the figures are what they were (the roundings stored stay), in MRR units, equal to a
    rebuild; each subscriber's next event stores its exact MRR, and the ledger moves by the cents the rounding had
    lost."""
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate(conn, [m for m in bundled_migrations() if m.version < "0046"])
        await old_mrr_sql.insert_snapshots(conn, [
            *(Snapshot(f"evt_y{n}", f"sub_y{n}", AT + dt.timedelta(days=n), 0, "active", 833, "usd", "Pro")
              for n in range(3)),
            Snapshot("evt_y2x", "sub_y2", AT + dt.timedelta(days=5), 2, "canceled", 0, "usd", "Pro", 833),
            Snapshot("evt_m", "sub_m", AT, 0, "active", 1900, "usd", "Pro")])
        await old_mrr_sql.upsert_states(conn, [_state("sub_y0", 833, "evt_y0", AT), _state("sub_y1", 833, "evt_y1", AT),
                                   _state("sub_y2", 0, "evt_y2x", AT + dt.timedelta(days=5)),
                                   _state("sub_m", 1900, "evt_m", AT)])
        assert await conn.fetchval("SELECT sum(new) FROM mrr_movement_days") == 833 * 3 + 1900
        await migrate(conn)
        got = (await mrr_q.summary(conn, now=AT + dt.timedelta(days=10), since=AT)).currencies[0]
        assert (got.mrr, got.new, got.churned, got.active) == (833 * 2 + 1900, 833 * 3 + 1900, 833, 3)
        assert await conn.fetchval("SELECT sum(mrr_units) FROM subscriptions") == (833 * 2 + 1900) * PER_MINOR
        kept = await conn.fetch("SELECT * FROM mrr_movement_days ORDER BY day, currency")
        flags = await conn.fetch(FLAGS)
        await conn.execute("SELECT mrr_movements_rebuild()")
        assert await conn.fetch("SELECT * FROM mrr_movement_days ORDER BY day, currency") == kept
        assert await conn.fetch(FLAGS) == flags
        exact = 10000 * PER_MINOR // 12  # $100.00 a year, as bot/subscriptions/mrr.py keeps it now
        renewed = AT + dt.timedelta(days=20)
        await insert_snapshots(conn, [Snapshot(f"evt_y{n}r", f"sub_y{n}", renewed, 1, "active", exact, "usd", "Pro",
                                               exact) for n in range(2)])
        await upsert_states(conn, [_state(f"sub_y{n}", exact, f"evt_y{n}r", renewed) for n in range(2)])
        got = (await mrr_q.summary(conn, now=renewed, since=renewed - dt.timedelta(days=1))).currencies[0]
        assert (got.mrr, got.expansion, got.new) == (round(2 * 10000 / 12) + 1900, 1, 0)  # 2 × ⅓ ¢: 1 ¢
    finally:
        await conn.close()
