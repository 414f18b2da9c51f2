"""Alert messages as a phone shows them (a review's findings): the Status field fits its half-width column, with
any explanation on a line below; a push notification, which shows only the message's `text`, names the person
who acted (a live `<@U…>`, which Slack renders as their name), never a raw member id — while mentions typed into
store data stay inert."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from bot.blocks.alerts import RULE_OFF, AlertView, action_reply, alert_message, resolved_reply
from bot.blocks.settings import ChangeLine, changes_message
from tests.blockkit import assert_valid_message

UTC = ZoneInfo("UTC")
NOW = dt.datetime(2026, 12, 7, 15, 0, tzinfo=dt.UTC)
# A half-width `fields` column on a phone holds ~20 characters a line: at most a few lines beside "Started".
STATUS_MAX = 70


def _alert(**kw: Any) -> AlertView:
    base = dict(id=7, rule="payment_failure_rate", severity="warning", title="Payment failure rate high",
                summary="19% of payment attempts failed in the last hour (6 of 32)",
                started_at=NOW - dt.timedelta(hours=3), now=NOW)
    return AlertView(**{**base, **kw})


def test_alert_status_field_fits_a_phone_column() -> None:
    """Slack shows section `fields` two to a row ("a compact format that allows for 2 columns"); on a phone a column
    holds ~20 characters a line. An alert closed because its rule was turned off puts a 90-character sentence in the
    Status field, beside a one-line Started: six lines in a narrow column."""
    for a in (_alert(resolved_at=NOW, resolved_reason=RULE_OFF),
              _alert(rule="dispute_opened", resolved_at=NOW)):
        status = alert_message(a, tz=UTC).blocks[2]["fields"][0]["text"]
        assert len(status) <= 70, f"{len(status)} chars in a half-width field: {status!r}"


LONG = dt.timedelta(hours=47, minutes=59)
# Every status the module can say, each at its longest (a long member id, a long duration).
EVERY_STATE: dict[str, dict[str, Any]] = {
    "firing": dict(),
    "acknowledged": dict(acknowledged_by="W0ABCDEFGHIJ"),
    "silenced": dict(silenced_until=NOW + dt.timedelta(hours=1), silenced_by="W0ABCDEFGHIJ"),
    "silence over": dict(silenced_until=NOW - dt.timedelta(hours=1), silenced_by="W0ABCDEFGHIJ"),
    "resolved": dict(resolved_at=NOW),
    "resolved by hand": dict(resolved_at=NOW, resolved_by="W0ABCDEFGHIJ"),
    "rule off": dict(resolved_at=NOW, resolved_reason=RULE_OFF),
    "dispute aged out": dict(rule="dispute_opened", resolved_at=NOW),
    "dispute resolved by hand": dict(rule="dispute_opened", resolved_at=NOW, resolved_by="W0ABCDEFGHIJ"),
}


def test_every_status_fits_and_its_explanation_is_on_a_line_below() -> None:
    """Each state's Status field is short; what a closed-by-rule-off or aged-out alert must explain is said in full
    in a full-width line under the fields, and in the thread reply."""
    for state, kw in EVERY_STATE.items():
        msg = alert_message(_alert(started_at=NOW - LONG, **kw), tz=UTC)
        assert_valid_message(msg)
        status = msg.blocks[2]["fields"][0]["text"]
        assert len(status) <= STATUS_MAX, f"{state}: {len(status)} chars in a half-width field: {status!r}"
    off = _alert(resolved_at=NOW, resolved_reason=RULE_OFF)
    below = str(alert_message(off, tz=UTC).blocks[3:])
    assert "its rule no longer runs (turned off or replaced), not because it cleared" in below, below
    assert "its rule no longer runs" in resolved_reply(off, tz=UTC).text
    aged = _alert(rule="dispute_opened", resolved_at=NOW)
    assert "answer it in Stripe before its due date" in str(alert_message(aged, tz=UTC).blocks[3:])
    assert "answer it in Stripe" in resolved_reply(aged, tz=UTC).text


def test_acknowledged_reply_notification_names_a_person_not_an_id() -> None:
    """The thread reply when someone acknowledges: its `text` — the only thing a phone's push notification shows
    (docs.slack.dev changelog 2026-07-13: "Mobile notifications continue to exclusively use message.text") — reads
    "👀 Acknowledged by @U0ABCDEF12 …": the raw member id, where `<@U0ABCDEF12>` would show the name."""
    text = action_reply(_alert(acknowledged_by="U0ABCDEF12"), tz=UTC).text
    assert "@U0ABCDEF12" not in text or "<@U0ABCDEF12>" in text, text


def test_every_reply_names_who_acted_as_slack_shows_a_person() -> None:
    """Silenced, resolved by hand, and the settings change: the notification text mentions the person."""
    silenced = _alert(silenced_until=NOW + dt.timedelta(hours=1), silenced_by="U0SILENCER")
    assert action_reply(silenced, tz=UTC).text.startswith("🔕 Silenced by <@U0SILENCER> until")
    resolved = _alert(resolved_at=NOW, resolved_by="U0RESOLVER")
    assert resolved_reply(resolved, tz=UTC).text.startswith("✅ Resolved by <@U0RESOLVER> after 3 h")
    changed = changes_message("U0ADMIN", [ChangeLine("Quiet hours", "off", "22:00-07:00")])
    assert changed.text.startswith("Settings changed by <@U0ADMIN>: Quiet hours"), changed.text


def test_mentions_typed_into_store_data_stay_inert_in_the_notification() -> None:
    """The person's own mention goes through; a summary or setting value carrying `<@U…>`, `<!channel>` or
    `@here` does not ping anyone."""
    evil = "Ebook <@U0VICTIM> <!channel> @here <!subteam^S1|@team>"
    acked = dataclasses.replace(_alert(acknowledged_by="U0ABCDEF12"), summary=evil)
    for msg in (alert_message(acked, tz=UTC), action_reply(acked, tz=UTC),
                changes_message("U0ADMIN", [ChangeLine(evil, evil, "<@U0VICTIM>")])):
        assert_valid_message(msg)
        assert "<@U0VICTIM>" not in msg.text and "<!" not in msg.text and "@here" not in msg.text, msg.text
    assert "<@" not in changes_message("<@U0VICTIM>", [ChangeLine("a", "b", "c")]).text  # not a member id
