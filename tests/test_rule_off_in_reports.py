"""An alert closed because its rule no longer runs (alerts.resolved_reason, migration 0044) is listed by the reports
as closed, not "resolved … ✅", the wording its own message dropped because teammates read it as the problem fixed
(found by the upgrade review)."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import asyncpg

from bot.blocks.alerts import RULE_OFF
from bot.blocks.reports import report_message
from bot.reports.figures import MorningFigures
from bot.reports.schedule import ReportKind, slot_for
from tests.report_seed import insert_alert
from tests.test_reports import NY, local_day, reporter


async def test_the_morning_report_does_not_call_an_alert_closed_unwatched_resolved(pool: asyncpg.Pool,
                                                                                  tmp_path: Path) -> None:
    day = dt.date(2026, 3, 10)
    now = local_day(day, 9)
    await insert_alert(pool, severity="critical", title="Site down", started_at=local_day(day, 2),
                       resolved_at=local_day(day, 3))
    # The leader closed it because SITE_URL was removed / the rule turned Off (engine._resolve_cleared).
    await pool.execute("UPDATE alerts SET resolved_reason = $1", RULE_OFF)
    r = reporter(pool, tmp_path, now)
    figures = await r.figures(slot_for(ReportKind.MORNING, day, r.settings), now=now)
    assert isinstance(figures, MorningFigures)
    text = json.dumps(report_message(figures, tz=NY).blocks, ensure_ascii=False)
    assert "Site down" in text
    assert "resolved Tue 03:00 ✅" not in text, text
    assert "closed Tue 03:00, its rule no longer runs ⏹" in text, text
