"""Alert messages: one message per alert, re-rendered in place as it moves firing → acknowledged → resolved."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final
from zoneinfo import ZoneInfo

from bot.blocks.common import ago
from bot.blocks.elements import actions, button, context, fields, header, local, message, section
from bot.blocks.message import Block, Message
from bot.blocks.text import escape_mrkdwn

ACK_ACTION: Final = "alert_ack"
SILENCE_HOUR_ACTION: Final = "alert_silence_1h"
SILENCE_TOMORROW_ACTION: Final = "alert_silence_tomorrow"
RESOLVE_ACTION: Final = "alert_resolve"
ALERT_ACTIONS: Final = (ACK_ACTION, SILENCE_HOUR_ACTION, SILENCE_TOMORROW_ACTION, RESOLVE_ACTION)
LIGHTS: Final = {"critical": "🔴", "warning": "🟡", "info": "🔵"}
# Alerts that tell of something that happened, whose closing by itself is only the news aging out of the rule's
# window: "✅ Resolved" would read as settled (a dispute still awaits its answer in Stripe). Closed by hand, they
# say who resolved them as any alert does. Their status stays short (a phone shows the Status field in a half-width
# column, ~20 characters a line); what it owes the reader is said in full on a line below (status_note).
RULE_OFF: Final = "rule off"  # alerts.resolved_reason (migration 0044) of an alert whose rule is off now
RULE_OFF_NOTE: Final = "its rule no longer runs (turned off or replaced), not because it cleared"
AGED_OUT: Final = {"dispute_opened": "if you have not answered it yet, answer it in Stripe before its due date"}


@dataclass(frozen=True, slots=True)
class AlertView:
    """An alert as its message shows it."""

    id: int
    rule: str
    severity: str
    title: str
    summary: str
    started_at: dt.datetime
    now: dt.datetime
    acknowledged_by: str | None = None
    silenced_until: dt.datetime | None = None
    silenced_by: str | None = None
    resolved_at: dt.datetime | None = None
    resolved_by: str | None = None
    resolved_reason: str | None = None  # RULE_OFF: closed because its rule is off now, not because it cleared
    mention: str | None = None  # e.g. <!here> for critical alerts
    buttons: bool = True  # off with incoming webhooks, which cannot receive clicks


def duration(delta: dt.timedelta) -> str:
    """"42 min", "3 h 5 min", "2 days"."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60} min" if minutes % 60 else f"{minutes // 60} h"
    return f"{minutes // 1440} days"


def _user(user: str | None) -> str:
    return f"<@{escape_mrkdwn(user)}>" if user else "someone"


def _aged_out(a: AlertView) -> bool:
    return a.resolved_at is not None and a.resolved_by is None and a.rule in AGED_OUT


def status_line(a: AlertView, tz: ZoneInfo) -> str:
    """Where the alert is in its lifecycle, in a few words (the Status field); status_note says the rest."""
    if a.resolved_at is not None and a.resolved_reason == RULE_OFF:
        return f"⏹ Closed after {duration(a.resolved_at - a.started_at)} · rule off"
    if a.resolved_at is not None and _aged_out(a):
        return f"📭 No longer new after {duration(a.resolved_at - a.started_at)}"
    if a.resolved_at is not None:
        by = f" by {_user(a.resolved_by)}" if a.resolved_by else ""
        return f"✅ Resolved{by} after {duration(a.resolved_at - a.started_at)}"
    if a.silenced_until is not None and a.silenced_until > a.now:
        return f"🔕 Silenced by {_user(a.silenced_by)} until {local(a.silenced_until, tz):%a %H:%M}"
    if a.acknowledged_by:
        return f"👀 Acknowledged by {_user(a.acknowledged_by)} · firing for {duration(a.now - a.started_at)}"
    return f"🔥 Firing for {duration(a.now - a.started_at)}"


def status_note(a: AlertView) -> str | None:
    """What the short status of an alert closed unwatched must add: why it closed, what is left to do."""
    if a.resolved_at is not None and a.resolved_reason == RULE_OFF:
        return RULE_OFF_NOTE
    return AGED_OUT[a.rule] if _aged_out(a) else None


def _users(a: AlertView) -> tuple[str | None, ...]:
    """The people the alert's status names: their mentions stay live in a notification's text."""
    return a.acknowledged_by, a.silenced_by, a.resolved_by


def alert_message(a: AlertView, *, tz: ZoneInfo) -> Message:
    """The alert's one message, in its current state (with buttons while it is open)."""
    aged_out = _aged_out(a)
    closed = a.resolved_at is not None and a.resolved_reason == RULE_OFF
    light = "📭" if aged_out else "⏹" if closed else "✅" if a.resolved_at else LIGHTS.get(a.severity, "⚪")
    title = f"{light} {a.severity.upper()} · {a.title}"
    mention = f"{a.mention} " if a.mention and a.resolved_at is None else ""
    blocks: list[Block] = [
        header(title),
        section(f"{mention}{escape_mrkdwn(a.summary)}"),
        fields(("Status", status_line(a, tz)), ("Started", f"{local(a.started_at, tz):%a %d %b %H:%M %Z}")),
    ]
    if (note := status_note(a)) is not None:  # full width, under the half-width fields
        blocks.append(section(f"{'⏹ Closed' if closed else '📭 No longer new'}: {note}"))
    blocks.append(context(f"rule `{escape_mrkdwn(a.rule)}` · alert #{a.id}"))
    if a.buttons and a.resolved_at is None:
        value = str(a.id)
        blocks.append(actions(
            button("Acknowledge", action_id=ACK_ACTION, value=value, style="primary"),
            button("Silence 1 h", action_id=SILENCE_HOUR_ACTION, value=value),
            button("Silence until tomorrow 9:00", action_id=SILENCE_TOMORROW_ACTION, value=value),
            button("Resolve", action_id=RESOLVE_ACTION, value=value, style="danger"),
            block_id=f"alert-{a.id}"))
    state = "no longer new" if aged_out else "resolved" if a.resolved_at else "firing"
    return message(f"{title} — {a.summary} ({state})", blocks, mention=mention.strip())


def reminder_message(a: AlertView, *, tz: ZoneInfo, after_quiet: bool = False, promoted: bool = False) -> Message:
    """A thread reply: still firing, nobody has acknowledged it. With `a.mention` (a critical outside quiet hours)
    it pages; `after_quiet`: the alert was posted, or made a critical, inside quiet hours, without it; `promoted`:
    it has just been made a critical (its rule's severity changed in Settings), its message edited, which pages
    nobody. Either way it says why it comes before its repeat interval."""
    quietly = (" (a critical during quiet hours, not paged until now)" if after_quiet
               else " (now a critical: its rule's severity was changed in Settings)" if promoted else "")
    text = f"⏰ Still firing after {duration(a.now - a.started_at)} and not acknowledged{quietly}: {a.summary}"
    mention = a.mention or ""
    return message(text, [section(f"{mention} {escape_mrkdwn(text)}".lstrip())], mention=mention)


def action_reply(a: AlertView, *, tz: ZoneInfo) -> Message:
    """A thread reply when someone acknowledges or silences the alert: who, and when."""
    text = f"{status_line(a, tz)} · {local(a.now, tz):%H:%M}"
    return message(text, [section(text)], users=_users(a))


def resolved_reply(a: AlertView, *, tz: ZoneInfo) -> Message:
    """A thread reply when the alert resolves."""
    started, ended = local(a.started_at, tz), local(a.resolved_at or a.now, tz)
    # An alert of days names the day it began: a bare "14:00" reads as today's.
    since = f"{started:%H:%M}" if started.date() == ended.date() else f"{started:%a %d %b %H:%M}"
    note = status_note(a)
    text = status_line(a, tz) + f" (since {since})" + (f": {note}" if note else "")
    return message(text, [section(text)], users=_users(a))


@dataclass(frozen=True, slots=True)
class FiringAgain:
    """The open alert of the same rule and labels as a resolved one: the incident fired again."""

    id: int
    slack_channel: str | None  # where its message is, once delivered
    slack_ts: str | None
    team_domain: str | None = None  # the workspace's, from the click: its message's link


def already_over_message(again: FiringAgain | None = None) -> Message:
    """The answer to a button pressed on an alert that is over: its message may not show it yet. When the same
    incident fires again as another alert, the answer points to that one's message (acted on there, not here)."""
    if again is None:
        text = "This alert is already resolved: nothing changed. Its message is updated in a moment."
        return message(text, [section(f"✅ {text}")])
    channel = again.slack_channel if (again.slack_channel or "").isalnum() else None
    ts = (again.slack_ts or "").replace(".", "", 1)
    domain = again.team_domain if (again.team_domain or "").replace("-", "").isalnum() else None
    where = f"alert #{again.id}"
    if channel and domain and ts.isdigit():  # Slack's own message link
        where = f"<https://{domain}.slack.com/archives/{channel}/p{ts}|alert #{again.id}>"
    elif channel:
        where = f"alert #{again.id} in <#{channel}>"
    text = (f"This alert is resolved, but the same problem is firing again as {where}: nothing changed here."
            " Acknowledge or silence it on that message.")
    return message(text, [section(f"🔥 {text}")])


def database_owed_page(*, since: dt.datetime, now: dt.datetime, tz: ZoneInfo, mention: str) -> Message:
    """In the database alert's thread, when the quiet hours it was posted in (without paging) are over."""
    said = (f"🔴 Database unreachable since {local(since, tz):%H:%M} ({ago(now - since)}) and still down: a critical"
            " during quiet hours, not paged until now")
    return message(said, [section(f"{mention} {said}")], mention=mention)


def database_down_message(*, since: dt.datetime, now: dt.datetime, error: str, tz: ZoneInfo, mention: str,
                          resolved_at: dt.datetime | None = None) -> Message:
    """Posted straight to Slack (it cannot be queued in the database it is about)."""
    if resolved_at is not None:
        text = f"✅ Database reachable again after {duration(resolved_at - since)}"
        return message(text, [header("✅ RESOLVED · Database unreachable"), section(text),
                              context(f"down since {local(since, tz):%a %H:%M %Z}")])
    said = f"PostgreSQL is unreachable since {local(since, tz):%H:%M} ({ago(now - since)})"
    text = f"{mention} {said}" if mention else said  # no mention inside quiet hours
    return message(f"🔴 CRITICAL · Database unreachable — {said}", mention=mention, blocks=[
        header("🔴 CRITICAL · Database unreachable"), section(text),
        context(f"`{escape_mrkdwn(error[:300])}` · webhooks answer 503 so Stripe retries; nothing is lost")])
