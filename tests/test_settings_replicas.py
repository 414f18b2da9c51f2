"""Two `salespulse run` processes on one database: a change saved through one is in force on the other within a
second, as its own /api/monitoring/health (read from its in-memory settings) shows."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

from bot.alerts.rules import RuleSet
from bot.blocks import settings as view
from bot.blocks.settings import CALLBACK_ID, settings_view
from bot.settings.form import form_of
from tests.conftest import SLACK_SIGNING_SECRET, make_settings
from tests.fakes import FakeSlack, slack_signature
from tests.settings_forms import ADMIN, put, state_of
from tests.test_replicas import Replica, start_replica

TOKEN = "monitoring-token-for-replicas"


async def in_force(session: aiohttp.ClientSession, replica: Replica) -> dict[str, Any]:
    """What the replica says was changed from Slack."""
    async with session.get(f"{replica.url}/api/monitoring/health",
                           headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        body: dict[str, Any] = await resp.json()
        settings: dict[str, Any] = body["components"]["settings"]["from_slack"]
        return settings


async def test_a_change_reaches_another_process_within_a_second(dsn: str, fake_slack: FakeSlack,
                                                                  tmp_path: Path) -> None:
    """Save a time zone through replica 0 (a signed view_submission); replica 1 has it in under a second."""
    env = {"SALESPULSE_ADMINS": ADMIN, "MONITORING_TOKEN": TOKEN}
    replicas = [await start_replica(dsn, fake_slack, tmp_path, n, **env) for n in range(2)]
    try:
        state = state_of(settings_view(form_of(make_settings(BUSINESS_HOURS="00:00-23:59"), RuleSet(), None)))
        put(state, view.TZ, value="Pacific/Auckland")
        submitted = {"id": "V1", "type": "modal", "callback_id": CALLBACK_ID, "state": {"values": state}}
        payload = {"type": "view_submission", "team": {"id": "T000"}, "user": {"id": ADMIN}, "api_app_id": "A1",
                   "token": "legacy", "trigger_id": "1.2", "view": submitted}
        body = urlencode({"payload": json.dumps(payload)}).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", **slack_signature(body, SLACK_SIGNING_SECRET)}
        async with aiohttp.ClientSession() as session:
            assert await in_force(session, replicas[1]) == {}
            await asyncio.sleep(1)  # the settings listeners connect right after start-up; give them that second
            started = time.perf_counter()
            async with session.post(f"{replicas[0].url}/slack/events", data=body, headers=headers) as resp:
                assert resp.status == 200 and not (await resp.text()).strip()
            while (await in_force(session, replicas[1])).get("STORE_TIMEZONE") != "Pacific/Auckland":
                assert time.perf_counter() - started < 1.0, "not in force on the other replica within 1 s"
                await asyncio.sleep(0.01)
            took = time.perf_counter() - started
        print(f"in force on the other process {took * 1000:.0f} ms after the submission was sent")
    finally:
        for r in replicas:
            r.proc.send_signal(signal.SIGTERM)
        for r in replicas:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(r.proc.wait(), 20)
            if r.proc.returncode is None:
                r.proc.kill()
