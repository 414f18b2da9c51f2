"""The `/sales link` answer: a private, expiring link that signs a phone in to the dashboard."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from bot.blocks.elements import context, local, message, section
from bot.blocks.message import Message
from bot.blocks.text import escape_mrkdwn


def _hours(delta: dt.timedelta) -> str:
    hours = round(delta.total_seconds() / 3600)
    return f"{hours} hours" if hours != 1 else "1 hour"


def link_message(url: str, *, expires_at: dt.datetime, now: dt.datetime, session: dt.timedelta,
                 tz: ZoneInfo) -> Message:
    """The link itself; the fallback text leaves the URL out, so no notification preview shows it."""
    minutes = round((expires_at - now).total_seconds() / 60)
    blocks = [
        section(f"📱 *<{escape_mrkdwn(url)}|Open the sales dashboard>*\n"
                f"Open it on your phone within {minutes} min (until {local(expires_at, tz):%H:%M %Z}): it signs"
                f" that browser in for {_hours(session)}. It works for anyone who has it — don't forward it."),
        context("Only you can see this. Bookmark the dashboard once it opens; when the sign-in runs out,"
                " type `/sales link` again."),
    ]
    return message(f"Dashboard sign-in link (valid {minutes} min)", blocks)


def dashboard_off_message() -> Message:
    """No MONITORING_TOKEN, so there is no dashboard to sign in to."""
    text = "The dashboard is off: the bot's operator has to set MONITORING_TOKEN first."
    return message(text, [section(f"🔒 {text}")])


def link_not_shared_message() -> Message:
    """A sign-in link is only ever given to the person who asked, never posted in a channel."""
    text = "Sign-in links are only sent privately: type `/sales link` yourself."
    return message(text, [section(text)])
