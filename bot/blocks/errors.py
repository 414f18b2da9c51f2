"""The /errors answer: webhook errors by type, payment failures, sync failures reported by the store."""

from __future__ import annotations

from collections.abc import Sequence
from zoneinfo import ZoneInfo

from bot.answers.errors_snapshot import ErrorsSnapshot
from bot.blocks.common import ago, firing_alerts_section, missing_context, share_actions
from bot.blocks.elements import context, fields, header, local, message, section
from bot.blocks.message import Block, Message
from bot.blocks.text import escape_mrkdwn, inline
from queries.app_events import AppEvent

UNKNOWN = "—"
LISTED = 5  # groups or events listed before "…and N more"
ERROR_TEXT_CHARS = 200


def _clip(text: str | None) -> str:
    return inline(text or "", ERROR_TEXT_CHARS + 1)


def _webhook_section(s: ErrorsSnapshot, tz: ZoneInfo) -> Block:
    if s.webhook_errors is None:
        return section(f"*Webhook errors:* {UNKNOWN}")
    if not s.webhook_errors:
        return section("*Webhook errors:* none ✅")
    lines = [f"• `{escape_mrkdwn(g.event_type)}` × {g.count} — last {local(g.last_at, tz):%H:%M}"
             f" ({ago(s.now - g.last_at)}): _{_clip(g.last_error)}_" for g in s.webhook_errors[:LISTED]]
    if len(s.webhook_errors) > LISTED:
        lines.append(f"…and {len(s.webhook_errors) - LISTED} more event types")
    return section("*Webhook errors by event type*\n" + "\n".join(lines))


def _payments(s: ErrorsSnapshot) -> Block:
    failures = UNKNOWN if s.payment_failures is None else str(s.payment_failures)
    rate = s.payment_failure_rate
    rate_text = UNKNOWN if rate is None and s.payment_failures is None else (
        "no attempts" if rate is None else f"{rate:.1%} of attempts")
    received = s.webhooks_received
    failed = s.webhook_only_errors  # the app's errors have their own field: "of N webhooks" counts webhooks only
    err_rate = UNKNOWN if received is None or s.webhook_errors is None else (
        f"{failed} of {received}" + (f" ({failed / received:.1%})" if received else ""))
    reported = s.app_counts
    sync = UNKNOWN if reported is None else str(reported.get("sync_failure", 0))
    app_errors = UNKNOWN if reported is None else str(reported.get("error", 0))
    return fields(("Payment failures", failures), ("Failure rate", rate_text), ("Webhook errors", err_rate),
                  ("Sync failures", sync), ("App errors", app_errors))


def _reasons(s: ErrorsSnapshot) -> Block | None:
    if not s.failure_reasons:
        return None
    return context("💳 " + " · ".join(f"{_clip(r.reason)} × {r.count}" for r in s.failure_reasons))


def _events(title: str, events: Sequence[AppEvent] | None, s: ErrorsSnapshot, tz: ZoneInfo) -> Block | None:
    if not events:
        return None
    lines = []
    for e in events[:LISTED]:
        system = e.system or e.source or ""
        label = f"`{escape_mrkdwn(system)}` " if system else ""
        at = e.occurred_at
        lines.append(f"• {label}{local(at, tz):%H:%M} ({ago(s.now - at)}): _{_clip(e.message)}_")
    return section(f"*{title}*\n" + "\n".join(lines))


def errors_message(s: ErrorsSnapshot, *, tz: ZoneInfo, share_arg: str | None = None) -> Message:
    """The /errors answer; `share_arg` adds the Share button."""
    blocks: list[Block] = [header(f"🚨 Errors · {s.period.label}"), _payments(s)]
    for extra in (firing_alerts_section(s.alerts, now=s.now), _reasons(s), _webhook_section(s, tz),
                  _events("Latest sync failures", s.sync_failures, s, tz),
                  _events("Latest errors reported by the store", s.app_errors, s, tz),
                  missing_context(s.missing)):
        if extra is not None:
            blocks.append(extra)
    blocks.append(context(f"Times in {tz.key}"))  # a teammate in another zone reads them right
    if share_arg is not None:
        blocks.append(share_actions("/errors", share_arg))
    failures = "?" if s.payment_failures is None else s.payment_failures
    webhook = "?" if s.webhook_errors is None else s.webhook_only_errors  # not read in time: never a false 0
    app = (s.app_counts or {}).get("error", 0)
    return message(f"🚨 Errors · {s.period.label}: {webhook} webhook errors,"
                   + (f" {app} app errors," if app else "") + f" {failures} payment failures", blocks)
