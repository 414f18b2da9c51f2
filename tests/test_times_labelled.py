"""/health and /errors print clock times in the store's zone: each says which zone, so a teammate elsewhere (the
on-call person abroad) does not read 14:02 as their own 14:02 (found by the time-zone review)."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

from bot.answers.gather import gather_health
from bot.blocks.errors import errors_message
from bot.blocks.health import health_message
from tests.conftest import FakeClock, start_bot
from tests.fakes import FakeSlack
from tests.test_api_nulls import errors
from tests.test_commands import NY

TOKYO = ZoneInfo("Asia/Tokyo")


def test_errors_says_its_zone() -> None:
    for tz in (NY, TOKYO):
        text = json.dumps(errors_message(errors(), tz=tz).as_payload(), ensure_ascii=False)
        assert f"Times in {tz.key}" in text, text


async def test_health_says_its_zone(dsn: str, fake_slack: FakeSlack) -> None:
    clock = FakeClock(dt.datetime(2026, 6, 9, 14, 0, tzinfo=dt.UTC))
    async with start_bot(dsn, fake_slack, clock=clock, STORE_TIMEZONE="Asia/Tokyo") as bot:
        health = await gather_health(bot.deps)
        text = json.dumps(health_message(health, tz=TOKYO).as_payload(), ensure_ascii=False)
        assert "times in Asia/Tokyo" in text, text
