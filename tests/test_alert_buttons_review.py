"""Alert buttons with Slack's real block_actions shape (a review's findings): a click while the evaluator holds the
alert answers in time, and Acknowledge on the message of a resolved alert whose incident fired again points to the
alert now firing."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from typing import Any

from bot.alerts.jobs import AlertJobs
from tests import test_alerts
from tests.blockkit import assert_valid_message
from tests.conftest import Bot, FakeClock
from tests.test_alerts import failures, posted_ts, run

clock, store, jobs = test_alerts.clock, test_alerts.store, test_alerts.jobs  # a New York store, Tuesday 14:00


def real_payload(bot: Bot, action_id: str, alert_id: int, ts: str, *, user: str = "UONCALL") -> dict[str, Any]:
    """block_actions as Slack sends it from a channel message (desktop and mobile alike)."""
    return {
        "type": "block_actions",
        "user": {"id": user, "username": "oncall", "name": "oncall", "team_id": "T000"},
        "api_app_id": "A1", "token": "legacy",
        "container": {"type": "message", "message_ts": ts, "channel_id": "C0ALERTS", "is_ephemeral": False},
        "trigger_id": "123.456.abc",
        "team": {"id": "T000", "domain": "store"},
        "enterprise": None, "is_enterprise_install": False,
        "channel": {"id": "C0ALERTS", "name": "system-alerts"},
        "message": {"type": "message", "subtype": "bot_message", "text": "…", "ts": ts, "bot_id": "B0BOT",
                    "blocks": []},
        "state": {"values": {}},
        "response_url": bot.slack_api.url.replace("/api/", "/hooks/click"),
        "actions": [{"action_id": action_id, "block_id": f"alert-{alert_id}",
                     "text": {"type": "plain_text", "text": "Acknowledge", "emoji": True},
                     "value": str(alert_id), "style": "primary", "type": "button", "action_ts": "1796654585.1"}],
    }


async def test_real_payload_ack_and_fast_http_ack_while_row_locked(store: Bot, jobs: AlertJobs,
                                                                    clock: FakeClock) -> None:
    """Slack's real block_actions shape acknowledges the alert; the HTTP answer comes within 3 s even while the
    evaluator holds the alert's row."""
    await failures(store, 3, clock.now - dt.timedelta(minutes=1))
    await run(jobs, store)
    alert_id = await store.deps.pool.fetchval("SELECT id FROM alerts")
    async with store.deps.pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM alerts WHERE id = $1 FOR UPDATE", alert_id)
        started = time.monotonic()
        resp = await store.slack({"payload": json.dumps(real_payload(store, "alert_ack", alert_id,
                                                                     posted_ts(store)))})
        assert resp.status == 200 and time.monotonic() - started < 3
        await asyncio.sleep(0.3)
    for _ in range(100):
        if await store.deps.pool.fetchval("SELECT acknowledged_by FROM alerts WHERE id = $1", alert_id):
            break
        await asyncio.sleep(0.05)
    assert await store.deps.pool.fetchval("SELECT acknowledged_by FROM alerts WHERE id = $1", alert_id) == "UONCALL"


async def test_ack_on_the_old_message_while_the_same_incident_fires_again(store: Bot, jobs: AlertJobs,
                                                                           clock: FakeClock) -> None:
    """The failures age out (alert #1 resolves), come back (alert #2, a new message). On call taps Acknowledge on
    the first message (the one the phone notification opened): they are told "already resolved: nothing changed"
    while the same incident is firing unacknowledged — they should be pointed to (or the ack applied to) the
    alert now firing."""
    await failures(store, 3, clock.now - dt.timedelta(minutes=1))
    await run(jobs, store)
    first = await store.deps.pool.fetchval("SELECT id FROM alerts")
    first_ts = posted_ts(store)
    clock.advance(minutes=16)  # out of the 10-minute window, and past the 15 minutes it keeps firing for
    await run(jobs, store)
    await failures(store, 3, clock.now - dt.timedelta(seconds=30))
    await run(jobs, store)
    resp = await store.slack({"payload": json.dumps(real_payload(store, "alert_ack", first, first_ts))})
    assert resp.status == 200
    for _ in range(100):
        if [c for c in store.slack_api.calls if c.method.startswith("hook:")]:
            break
        await asyncio.sleep(0.05)
    said = [c.args for c in store.slack_api.calls if c.method.startswith("hook:")]
    firing = await store.deps.pool.fetch("SELECT id, acknowledged_by FROM alerts WHERE resolved_at IS NULL")
    assert len(firing) == 1
    assert firing[0]["acknowledged_by"] == "UONCALL" or any(
        f"#{firing[0]['id']}" in json.dumps(s) or "firing again" in json.dumps(s) for s in said), (said, firing)


async def test_the_answer_links_to_the_message_of_the_alert_firing_again(store: Bot, jobs: AlertJobs,
                                                                        clock: FakeClock) -> None:
    """The answer to a click on the resolved alert's message links to the message of the alert firing again (the
    workspace's domain from the click, the channel and ts Slack gave that message), and acknowledges nothing: the
    click was on another message."""
    await failures(store, 3, clock.now - dt.timedelta(minutes=1))
    await run(jobs, store)
    first, first_ts = await store.deps.pool.fetchval("SELECT id FROM alerts"), posted_ts(store)
    clock.advance(minutes=16)
    await run(jobs, store)
    await failures(store, 3, clock.now - dt.timedelta(seconds=30))
    await run(jobs, store)
    again = await store.deps.pool.fetchrow(
        "SELECT a.id, a.acknowledged_by, o.slack_channel, o.slack_ts FROM alerts AS a"
        " JOIN outbox AS o ON o.id = a.message_outbox_id WHERE a.resolved_at IS NULL")
    resp = await store.slack({"payload": json.dumps(real_payload(store, "alert_ack", first, first_ts))})
    assert resp.status == 200
    for _ in range(100):
        if [c for c in store.slack_api.calls if c.method.startswith("hook:")]:
            break
        await asyncio.sleep(0.05)
    said = json.dumps([c.args for c in store.slack_api.calls if c.method.startswith("hook:")])
    link = f"https://store.slack.com/archives/{again['slack_channel']}/p{again['slack_ts'].replace('.', '')}"
    assert f"<{link}|alert #{again['id']}>" in said and "firing again" in said, said
    assert_valid_message(next(c.args for c in store.slack_api.calls if c.method.startswith("hook:")))
    assert await store.deps.pool.fetchval("SELECT acknowledged_by FROM alerts WHERE id = $1", again["id"]) is None
