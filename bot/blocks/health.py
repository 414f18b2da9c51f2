"""The /health answer: one line per component with a status light, readable at a glance."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Final
from zoneinfo import ZoneInfo

from bot.access import GroupCheck
from bot.affiliation import TEAM_READ_MISSING
from bot.answers import health_levels as level
from bot.answers.snapshots import HealthSnapshot
from bot.blocks.common import ago, counted, firing_alerts_section, missing_context, share_actions
from bot.blocks.elements import context, header, local, message, section
from bot.blocks.message import Message
from bot.blocks.text import escape_mrkdwn
from bot.delivery.channels import Membership
from bot.scheduling import JobFailure

OK, WARN, BAD, OFF = "🟢", "🟡", "🔴", "⚪"
# Each line's state is decided in bot/answers/health_levels.py, shared with the dashboard; here it gets its light.
LIGHTS: Final = {level.OK: OK, level.WARN: WARN, level.BAD: BAD, level.OFF: OFF}
# How /health says the run mode the snapshot names (the JSON API gives the key itself).
MODE_LABELS: Final = {"local": "local mode", "socket": "Socket Mode", "webhooks": "incoming webhooks",
                      "http": "HTTP mode"}


def _lines(s: HealthSnapshot, tz: ZoneInfo) -> list[str]:
    """One line per component, in the order an on-call person checks them."""
    found = [_database_line(s), _socket_line(s, tz), *_activity_lines(s, tz), *_delivery_lines(s),
             *_channel_lines(s), _site_line(s),
             _stripe_sync_line(s), _stripe_fees_line(s), *_stripe_refusal_lines(s, tz), _team_read_line(s),
             *_scheduler_lines(s, tz), *_settings_lines(s, tz)]
    return [line for line in found if line is not None]


def _shown(value: object) -> str:
    text = "default" if value is None else "none" if value in ("", []) else \
        ", ".join(map(str, value)) if isinstance(value, list) else \
        ", ".join(f"{k} {v}" for k, v in value.items()) if isinstance(value, dict) else str(value)
    return escape_mrkdwn(text[:80])


def _settings_lines(s: HealthSnapshot, tz: ZoneInfo) -> list[str]:
    """What was changed from Slack's Settings view (it wins over the environment), and the latest changes."""
    lines = []
    if s.settings_overrides:
        keys = ", ".join(escape_mrkdwn(o.key) for o in s.settings_overrides[:20])
        lines.append(f"{OK} *Settings changed from Slack* (they win over the environment): {keys}")
    for c in s.settings_changes or ():
        who = f"<@{c.user_id}>" if c.user_id[:1] in "UW" and c.user_id.isalnum() else escape_mrkdwn(c.user_id)
        lines.append(f"      {local(c.at, tz):%a %d %b %H:%M} {who}: {escape_mrkdwn(c.key)}"
                     f" {_shown(c.before)} → {_shown(c.after)}")
    return lines


def _database_line(s: HealthSnapshot) -> str:
    light = LIGHTS[level.database(s)]
    if s.database_ok:
        return f"{light} *PostgreSQL* reachable ({s.database_rtt_ms:.0f} ms round trip)"
    return f"{light} *PostgreSQL* unreachable or too slow to answer"


def _socket_line(s: HealthSnapshot, tz: ZoneInfo) -> str | None:
    """Only when Socket Mode is configured and not connected: nothing from Slack reaches the bot meanwhile."""
    if s.socket is None or (light := level.socket(s)) is None:
        return None
    error = f", last error: `{escape_mrkdwn(s.socket.last_error[:200])}`" if s.socket.last_error else ""
    return (f"{LIGHTS[light]} *Socket Mode* not connected since {local(s.socket.since, tz):%a %H:%M}"
            f" ({ago(s.now - s.socket.since)}): commands, buttons and App Home wait{error}")


def _hours_minutes(span: dt.timedelta | None) -> str:
    """A business time as "1 h 20 min" (whole minutes)."""
    hours, minutes = divmod(int((span or dt.timedelta()).total_seconds()) // 60, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _activity_lines(s: HealthSnapshot, tz: ZoneInfo) -> list[str]:
    lines = []
    if (light := level.last_webhook(s)) is not None:
        lines.append(f"{LIGHTS[light]} *Last webhook* "
                     + (ago(s.now - s.last_webhook_at) if s.last_webhook_at is not None else "none received yet"))
    if (light := level.last_order(s)) is None:
        return lines
    if s.last_order_at is None:
        return [*lines, f"{LIGHTS[light]} *Last order* none yet"]
    note = "" if not s.order_silence_suspicious else \
        " — unusually long for this hour (Sales stopped)" if s.rhythm else \
        f" — {_hours_minutes(s.order_silence)} of business hours without one"
    return [*lines, f"{LIGHTS[light]} *Last order* {local(s.last_order_at, tz):%a %H:%M}"
                    f" ({ago(s.now - s.last_order_at)}){note}"]


def _delivery_lines(s: HealthSnapshot) -> list[str]:
    lines = []
    if s.backlog is not None and (light := level.delivery(s)) is not None:
        if s.backlog.pending == 0:
            lines.append(f"{LIGHTS[light]} *Slack delivery* nothing waiting")
        elif light == level.BAD and s.backlog.oldest_due is not None:
            lines.append(f"{LIGHTS[light]} *Slack delivery stuck* {s.backlog.pending} waiting, the oldest due"
                         f" {ago(s.now - s.backlog.oldest_due)} and still not in Slack")
        else:
            oldest = ago(s.now - s.backlog.oldest) if s.backlog.oldest else "?"
            lines.append(f"{LIGHTS[light]} *Slack delivery* {s.backlog.pending} waiting, oldest queued {oldest}")
    # Answered 202 in a burst, applied moments later as a rule.
    if s.inbox is not None and (light := level.intake(s)) is not None:
        oldest = ago(s.now - s.inbox.oldest) if s.inbox.oldest else "?"
        lines.append(f"{LIGHTS[light]} *Webhook intake* {s.inbox.waiting:,} events stored and not applied yet,"
                     f" oldest received {oldest}")
    errs = s.delivery_errors
    if errs is not None and (light := level.delivery_errors(s)) is not None:
        lines.append(f"{LIGHTS[light]} *Slack errors (24 h)* {errs.count} ({errs.permanent} permanent),"
                     f" last: `{escape_mrkdwn(errs.last_error or '?')}`" if errs.count
                     else f"{LIGHTS[light]} *Slack errors (24 h)* none")
    return lines


def _channel_lines(s: HealthSnapshot) -> list[str]:
    """One line when every configured channel is usable; else one per channel the bot cannot use, and why."""
    if not s.channels:
        return []
    trouble = [c for c in s.channels if c.membership is not Membership.MEMBER]
    if not trouble:
        names = ", ".join(f"{c.logical} {escape_mrkdwn(c.label)}" for c in s.channels)
        return [f"{OK} *Slack channels* {names}: the bot is in each"]
    return [f"{LIGHTS[level.channel(c)]} *Slack channel {c.logical}* {escape_mrkdwn(c.describe())}" for c in trouble]


def _site_line(s: HealthSnapshot) -> str:
    light = LIGHTS[level.site(s)]
    if not s.site_url:
        return f"{light} *Site probe* set SITE_URL to enable"
    if s.probe is None:
        return f"{light} *Site probe* not run yet"
    p = s.probe
    took = f"{p.elapsed_ms / 1000:.1f} s" if p.elapsed_ms is not None else "?"
    result = f"HTTP {p.status} in {took}" if p.ok else escape_mrkdwn(p.error or "failed")
    return f"{light} *Site* {result} ({ago(s.now - p.checked_at)})"


def _scheduler_lines(s: HealthSnapshot, tz: ZoneInfo) -> list[str]:
    lines = []
    if (failed := level.job_failures(s)) is not None:
        last = s.job_failures[-1]
        lines.append(f"{LIGHTS[failed]} *Scheduler* {len(s.job_failures)} failed run(s),"
                     f" last: {escape_mrkdwn(last.job_id)} {ago(s.now - last.at)}: `{escape_mrkdwn(last.error[:200])}`")
    if s.next_jobs:
        jobs = ", ".join(f"{escape_mrkdwn(name)} {local(at, tz):%a %H:%M}" for name, at in s.next_jobs[:5])
        lines.append(f"{OK} *Scheduler* next: {jobs}")
    else:
        lines.append(f"{OFF} *Scheduler* no scheduled jobs")
    return lines


def _stripe_sync_line(s: HealthSnapshot) -> str | None:
    """The Events API: last poll, events recovered from missed webhooks (24 h), last error."""
    sync, light = s.stripe_sync, level.stripe_sync(s)
    if light is None:
        return None
    if sync is None:
        return f"{LIGHTS[light]} *Stripe Events API* set STRIPE_API_KEY to recover events the webhook misses"
    polled = f"polled {ago(s.now - sync.last_poll_at)}" if sync.last_poll_at else "not polled yet"
    if sync.failing:
        return f"{LIGHTS[light]} *Stripe Events API* {polled}, failing:" \
            f" `{escape_mrkdwn((sync.last_error or '?')[:300])}`"
    line = f"*Stripe Events API* {polled} · {sync.recovered_24h} events recovered (24 h)"
    if sync.recovered_24h:
        line += " that the webhook missed — check the endpoint"
    if sync.last_error_at is not None and s.now - sync.last_error_at < dt.timedelta(hours=24):
        line += f" · last error {ago(s.now - sync.last_error_at)}: `{escape_mrkdwn((sync.last_error or '?')[:200])}`"
    return f"{LIGHTS[light]} {line}"


def _stripe_fees_line(s: HealthSnapshot) -> str | None:
    """Orders whose balance transactions (net of fees) are still to be read, and those given up on; None if none."""
    fees, light = s.stripe_fees, level.stripe_fees(s)
    if fees is None or light is None:
        return None
    parts = [f"{counted(fees.waiting)} waiting to be read"] if fees.waiting else []
    if fees.given_up:
        parts.append(f"{counted(fees.given_up)} given up on (\"not converted yet\"; tried again daily)")
    return f"{LIGHTS[light]} *Stripe fees* {' · '.join(parts)}"


def _stripe_refusal_lines(s: HealthSnapshot, tz: ZoneInfo) -> list[str]:
    """Each job Stripe refuses (a restricted key without a permission it needs), naming what to grant."""
    return [f"{LIGHTS[level.stripe_refusal(r)]} *{escape_mrkdwn(r.job)}* {escape_mrkdwn(r.advice)}"
            f" (since {local(r.since, tz):%a %H:%M})" for r in s.stripe_refusals]


def _team_read_line(s: HealthSnapshot) -> str | None:
    if (light := level.team_read(s)) is None:
        return None
    return f"{LIGHTS[light]} *Slack app* {TEAM_READ_MISSING}"


def _responders_line(groups: Sequence[GroupCheck]) -> str | None:
    """The user groups of ALERT_RESPONDERS: their sizes, or which Slack could not list (their members are refused
    on alert buttons meanwhile); None when no group is named."""
    if (light := level.responders(groups)) is None:
        return None
    failed = [g for g in groups if g.error is not None]
    if not failed:
        sizes = ", ".join(f"{escape_mrkdwn(g.group)} {counted(len(g.members), 'member')}" for g in groups)
        return f"{LIGHTS[light]} *Alert responders* user groups {sizes}"
    named = ", ".join(f"{escape_mrkdwn(g.group)} (`{escape_mrkdwn(g.error or '?')}`)" for g in failed)
    return (f"{LIGHTS[light]} *Alert responders* Slack could not list"
            f" user group{'s' if len(failed) > 1 else ''} {named}:"
            " their members cannot act on alerts — check the app's usergroups:read scope and ALERT_RESPONDERS")


def health_message(s: HealthSnapshot, *, tz: ZoneInfo, share_arg: str | None = None,
                   groups: Sequence[GroupCheck] = ()) -> Message:
    """The /health answer; `share_arg` adds the Share button, `groups` the alert responders' user groups."""
    uptime = ago(s.now - s.started_at).removesuffix(" ago")
    lines = _lines(s, tz)
    if (responders := _responders_line(groups)) is not None:
        lines.append(responders)
    blocks = [header("🩺 Health"), section("\n".join(lines))]
    if (firing := firing_alerts_section(s.alerts, now=s.now)) is not None:
        blocks.append(firing)
    blocks.append(context(f"salespulse {s.version} · up {uptime} · {MODE_LABELS.get(s.mode, s.mode)}"
                          f" · times in {tz.key}"))  # a teammate in another zone reads them right
    if (warning := missing_context([m for m in s.missing if m != "database"])) is not None:
        blocks.append(warning)
    if share_arg is not None:
        blocks.append(share_actions("/health", share_arg))
    return message(f"🩺 Health: {'degraded' if s.degraded else 'ok'}", blocks)


def job_failure_message(failure: JobFailure, *, tz: ZoneInfo) -> Message:
    """A scheduled job failed: say which, when, and the error."""
    text = f"⚠️ Scheduled job {failure.job_id} failed"
    blocks = [section(f"*{escape_mrkdwn(text)}*\n`{escape_mrkdwn(failure.error[:500])}`"),
              context(f"⏰ {local(failure.at, tz):%a %H:%M %Z} · details in /health")]
    return message(text, blocks)
