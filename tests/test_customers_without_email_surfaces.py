"""Orders without an email on the evening report and the dashboard: the same "Customers" wording as /sales ("1 (+2
orders without an email)", "unknown (no email on the order)"), not a 0 beside the orders. The /sales answer, the
JSON and the rollups are in tests/test_customers_without_email.py."""

from __future__ import annotations

import datetime as dt
import json
import re

from bot.blocks.reports import report_message
from bot.periods import local_midnight
from bot.reports.figures import evening
from bot.reports.schedule import ReportKind, Slot
from bot.web.signin import COOKIE
from tests.blockkit import assert_valid_message
from tests.conftest import Bot

# The same store: today a@ twice and two orders without an email, yesterday one without.
from tests.test_customers_without_email import NOW, TOKEN, store  # noqa: F401  # a fixture, taken by name
from tests.test_dashboard import session_cookie, sign_in


async def evening_customers(bot: Bot, day: dt.date, until: dt.datetime) -> str:
    """The "Unique customers" value of the evening report of `day` up to `until`, its blocks valid."""
    slot = Slot(ReportKind.EVENING, day, until)
    async with bot.deps.pool.acquire() as conn:
        msg = report_message(await evening(conn, slot, settings=bot.deps.settings, now=NOW), tz=bot.deps.settings.tz)
    assert_valid_message(msg.as_payload())
    found = re.search(r"\*Unique customers:\*\\n([^\"]*)", json.dumps(msg.as_payload(), ensure_ascii=False))
    assert found is not None, msg.as_payload()
    return found.group(1)


async def test_the_evening_report_says_so(store: Bot) -> None:  # noqa: F811  # the fixture imported above
    """Today until 18:10 and the whole of yesterday."""
    tz = store.deps.settings.tz
    today, yesterday = NOW.date(), NOW.date() - dt.timedelta(days=1)
    assert await evening_customers(store, today, NOW - dt.timedelta(minutes=10)) == "1 (+2 orders without an email)"
    assert await evening_customers(store, yesterday, local_midnight(today, tz) - dt.timedelta(minutes=1)) == \
        "unknown (no email on the order)"


async def test_the_dashboard_says_so(store: Bot) -> None:  # noqa: F811  # the fixture imported above
    """The dashboard's customers figure is /sales' wording, its noun included; its JSON carries the count."""
    cookie = session_cookie(await sign_in(store, TOKEN)).value
    body = await (await store.client.get("/dashboard/data", cookies={COOKIE: cookie})).json()
    assert body["view"]["figures"]["today_customers"] == "1 customer (+2 orders without an email)"
    assert body["sales"]["today"]["orders_without_email"] == 2
