"""Pieces the command answers share: usage, refusal, share button, ages, changes, sparklines."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Final

from bot.blocks.elements import actions, button, context, message, section
from bot.blocks.message import Block, Message
from bot.blocks.text import escape_mrkdwn
from queries.alerts import AlertRow

SPARK_CHARS: Final = "▁▂▃▄▅▆▇█"
SHARE_ACTION: Final = "share_in_channel"

USAGE: Final[dict[str, str]] = {
    "/sales": ("*/sales* `[period]` — orders and revenue.\n"
               "Periods: _(none)_ today · `1h` · `24h` · `yesterday` · `7d` · `30d` · a date `2026-11-27` · `help`\n"
               "`/sales link` — a private link that signs your phone in to the dashboard\n"
               "`/sales settings` — change channels, hours, reports and alert rules (admins)"),
    "/errors": "*/errors* `[period]` — webhook errors, payment failures and sync failures.\n"
               "Periods: _(none)_ last hour · `24h` · `today` · `7d` · `help`",
    "/health": "*/health* — database, deliveries to Slack, last webhook and order, site, scheduler.",
}


def counted(n: int, noun: str = "order") -> str:
    """"1 order", "1,204 orders": the number with its noun in the right number."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def usage_message(command: str, *, problem: str | None = None) -> Message:
    """The help text for a command, prefixed with what was wrong with the arguments if anything."""
    text = USAGE.get(command, command)
    blocks = [section(f"{problem}\n\n{text}" if problem else text)]
    return message(f"{command} usage", blocks)


def refusal_message() -> Message:
    """The polite answer to someone not allowed to read the store's figures (and nothing else)."""
    text = "Sorry — the store's figures are only available to the people and channels the owner allowed."
    return message(text, [section(f"🔒 {text}")])


def not_allowed_message(what: str) -> Message:
    """The short answer to someone the owner did not allow to `what` (e.g. "act on alerts")."""
    text = f"Sorry — you're not allowed to {what} here. Ask the store's owner to add you."
    return message(text, [section(f"🔒 {escape_mrkdwn(text)}")])


def group_unchecked_message(groups: Sequence[tuple[str, str]]) -> Message:
    """The answer to an alert click refused because Slack could not list the user groups (id, Slack's error) that
    might hold the clicker: not "you're not allowed" — nobody knows — but what failed and who can mend it."""
    named = ", ".join(f"{group} ({error})" for group, error in groups[:3])
    noun = "user groups" if len(groups) > 1 else "user group"
    text = (f"Sorry — I couldn't check {noun} {named} with Slack, so I can't tell whether you may act on"
            " alerts, and nothing changed. Ask the store's owner to check the app's usergroups:read scope and the"
            " group ids in ALERT_RESPONDERS (`salespulse check` and /health show the error), or try again in a"
            " few minutes if Slack is having trouble.")
    return message(text, [section(f"⚠️ {escape_mrkdwn(text)}")])


def share_actions(command: str, arg: str) -> Block:
    """The "Share in channel" button, carrying the command to re-run when clicked."""
    return actions(button("Share in channel", action_id=SHARE_ACTION, value={"command": command, "arg": arg}))


def missing_context(missing: Sequence[str]) -> Block | None:
    """A warning naming what could not be loaded in time, or None when everything arrived."""
    if not missing:
        return None
    return context(f"⚠️ Couldn't get {', '.join(missing)} in time — the database is slow or unreachable."
                   " The rest is current.")


def ago(delta: dt.timedelta) -> str:
    """A short human age: "just now", "12 min ago", "3 h ago", "2 days ago"."""
    seconds = max(int(delta.total_seconds()), 0)
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 48 * 3600:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def count_text(count: int, error: float | None = None) -> str:
    """A count as people read it; an estimate says so, with its error bound: "≈612,300 (±3.0%)"."""
    return f"{count:,}" if error is None else f"≈{count:,} (±{error:.1%})"


def change(current: int, previous: int) -> str:
    """The change against a week earlier: "▲ 12%", "▼ 3%", "= 0%" only when equal, "▲ <1%" / "▼ <1%" when the
    values differ by less than half a percent, or "new" when nothing before. Rounded half up (2.5% → 3%, as the
    averages are) in integers: amounts are minor units, and a float would round 2.5 to 2."""
    if previous == 0:
        return "new" if current else "—"
    diff, base = current - previous, abs(previous)
    if diff == 0:
        return "= 0%"
    pct = (abs(diff) * 200 + base) // (2 * base)
    arrow = "▲" if diff > 0 else "▼"
    return f"{arrow} {pct}%" if pct else f"{arrow} <1%"


def sparkline(values: Sequence[int]) -> str:
    """A compact text chart (▁▂▃▄▅▆▇█) that the Slack mobile app renders in a code span."""
    if not values:
        return ""
    top = max(values)
    if top == 0:
        return SPARK_CHARS[0] * len(values)
    steps = len(SPARK_CHARS) - 1
    return "".join(SPARK_CHARS[round(v * steps / top)] for v in values)


def firing_alerts_section(alerts: Sequence[AlertRow] | None, *, now: dt.datetime) -> Block | None:
    """The open critical and warning alerts, one line each; None when there are none (or unknown)."""
    if not alerts:
        return None
    lights = {"critical": "🔴", "warning": "🟡"}
    lines = []
    for a in alerts[:8]:
        state = f"acknowledged by <@{escape_mrkdwn(a.acknowledged_by)}>" if a.acknowledged_by else "firing"
        lines.append(f"{lights.get(a.severity, '⚪')} *{escape_mrkdwn(a.title)}* — {escape_mrkdwn(a.summary)}"
                     f" ({state} for {ago(now - a.started_at).removesuffix(' ago')})")
    if len(alerts) > 8:
        lines.append(f"…and {len(alerts) - 8} more")
    return section("*Firing alerts*\n" + "\n".join(lines))
