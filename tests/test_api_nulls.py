"""The monitoring JSON and the dashboard: a figure that could not be read is null and named in `missing`, never a 0
or an empty list that reads as "nothing happened"."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator

import asyncpg

from bot.answers.errors_snapshot import ErrorsSnapshot
from bot.answers.json_views import errors_json
from bot.blocks.errors import errors_message
from bot.periods import parse_period
from bot.web.signin import COOKIE
from tests.conftest import Bot
from tests.test_commands import NOW, NY, TOKEN, orders_locked, store  # noqa: F401  # the New York store fixture
from tests.test_dashboard import session_cookie, sign_in

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@contextlib.asynccontextmanager
async def table_locked(dsn: str, table: str) -> AsyncIterator[None]:
    """`table` locked by another session (every lookup of it stalls) until the block ends."""
    blocker = await asyncpg.connect(dsn)
    tx = blocker.transaction()
    await tx.start()
    await blocker.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        await tx.rollback()
        await blocker.close()


async def test_hourly_sales_it_could_not_read_are_named_missing_not_an_empty_day(store: Bot, dsn: str) -> None:  # noqa: F811  # the fixture imported above
    """The orders table locked: `hourlySales` was not looked up in time. An empty list with `missing` silent about it
    tells the guide's dashboard (and a monitor) there were no sales in the last 24 hours. The dashboard's own view
    has no chart then (the page says it could not load the hourly figures) and names the hours as missing."""
    fine = await (await store.client.get("/api/monitoring/sales", headers=AUTH)).json()
    assert fine["hourlySales"] and "hourly" not in fine["missing"], fine  # the store sold in the last 24 h
    cookie = session_cookie(await sign_in(store, TOKEN)).value
    async with orders_locked(dsn):
        resp = await store.client.get("/api/monitoring/sales", headers=AUTH)
        body = await resp.json()
        dash = await (await store.client.get("/dashboard/data", cookies={COOKIE: cookie})).json()
    assert resp.status == 200, body
    assert body["hourlySales"] is None and "hourly" in body["missing"], (body["hourlySales"], body["missing"])
    assert dash["sales"]["hourlySales"] is None and "hourly" in dash["sales"]["missing"], dash["sales"]
    assert dash["view"]["chart"] is None and "hourly" in dash["view"]["missing"], dash["view"]


async def test_webhook_errors_it_could_not_read_are_null_not_zero(store: Bot, dsn: str) -> None:  # noqa: F811  # the fixture imported above
    """webhook_logs locked: the errors JSON names "webhook errors" as missing; its `errors.total` and `byType` must
    then be null (as `paymentFailures` is when its lookup is missing), not 0 and [] — "no errors" — beside it."""
    async with table_locked(dsn, "webhook_logs"):
        body = await (await store.client.get("/api/monitoring/errors", headers=AUTH)).json()
    assert "webhook errors" in body["missing"], body
    assert body["errors"] == {"total": None, "byType": None}, body["errors"]
    assert body["alertsTriggered"] is False, body  # the alert engine's state was read: nothing firing
    fine = await (await store.client.get("/api/monitoring/errors", headers=AUTH)).json()
    assert fine["errors"] == {"total": 0, "byType": []} and fine["missing"] == [], fine


def errors(**parts: object) -> ErrorsSnapshot:
    """An /errors snapshot of the last hour with every figure read (none, zero) unless `parts` says otherwise."""
    read = ErrorsSnapshot(period=parse_period("1h", now=NOW, tz=NY), now=NOW, webhook_errors=[], webhooks_received=10,
                          payment_failures=0, payments_succeeded=10, failure_reasons=[], app_counts={},
                          sync_failures=[], app_errors=[], alerts=None)
    return dataclasses.replace(read, **parts)


def test_alerts_triggered_without_the_alert_engine_says_only_what_the_figures_read_can_say() -> None:
    """Without the alert engine's state, the guide's thresholds (errors > 5, payment failures > 3) decide: true as
    soon as a figure read exceeds its own, false only when every figure was read, null otherwise."""
    assert errors_json(errors())["alertsTriggered"] is False
    assert errors_json(errors(payment_failures=4, webhook_errors=None))["alertsTriggered"] is True
    assert errors_json(errors(payment_failures=None, app_counts={"error": 6}))["alertsTriggered"] is True
    unknown = errors_json(errors(webhook_errors=None))
    assert unknown["alertsTriggered"] is None and unknown["errors"] == {"total": None, "byType": None}, unknown
    assert errors_json(errors(payment_failures=None))["alertsTriggered"] is None
    # The store app's reports unread: the total counts them, so it is unknown too, as ghlFailures is.
    app_unread = errors_json(errors(app_counts=None))
    assert app_unread["errors"]["total"] is None and app_unread["ghlFailures"] is None, app_unread


def test_the_errors_notification_text_says_unknown_not_zero() -> None:
    """/errors' notification text (what a phone's lock screen shows) says "?" for webhook errors not read in time,
    as it does for payment failures, never "0 webhook errors"."""
    assert errors_message(errors(), tz=NY).text.startswith("🚨 Errors · Last hour: 0 webhook errors, 0 payment")
    unread = errors_message(errors(webhook_errors=None, payment_failures=None), tz=NY).text
    assert unread == "🚨 Errors · Last hour: ? webhook errors, ? payment failures", unread
