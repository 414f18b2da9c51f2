"""Making text safe for Slack: user-controlled parts inside mrkdwn, and the whole plain `text` fallback."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from bot.blocks.message import truncate

# Bare "@here", "@channel" and "@everyone" typed into store data (a product name, an error message) must not
# become a broadcast: a zero-width joiner after the "@" keeps them readable and inert.
_BROADCAST = re.compile(r"@(here|channel|everyone)\b", re.IGNORECASE)
# Slack's control sequences: <@U123>, <#C123|name>, <!here>, <!subteam^S1|@team>, <https://x|label>.
_CONTROL = re.compile(r"<([@#!]|(?=https?:|mailto:))([^<>|]*)(?:\|([^<>]*))?>")
_MEMBER = re.compile(r"[UW][A-Z0-9]+")  # a Slack member id, as the bot writes it in <@…>


def neutralise_broadcasts(s: str) -> str:
    """`@here`, `@channel`, `@everyone` written as plain words, made inert."""
    return _BROADCAST.sub("@\u2060\\1", s)


def escape_mrkdwn(s: str) -> str:
    """Escape `&`, `<` and `>` so text like `<!channel>` or `<https://x|y>` shows literally; defuse bare @here."""
    # Slack asks for exactly these three and nothing more; `&` goes first so entities are not doubled.
    # https://api.slack.com/reference/surfaces/formatting#escaping
    return neutralise_broadcasts(s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def unescape_mrkdwn(s: str) -> str:
    """Undo escape_mrkdwn's three entities (`&amp;` last, so "&amp;lt;" reads "&lt;"): the text as a person reads it."""
    return s.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def shown_text(obj: Mapping[str, Any]) -> str:
    """A text object's text as a person reads it: a mrkdwn one's entities undone, a plain_text one as written."""
    text = str(obj.get("text", ""))
    return unescape_mrkdwn(text) if obj.get("type") == "mrkdwn" else text


def inline(s: str, limit: int) -> str:
    """Store or customer text for one line of mrkdwn: every run of whitespace, line breaks included, one space (a
    product name with a newline must not add a forged "*Amount:*" line or a fake sale), then clipped and escaped."""
    return escape_mrkdwn(truncate(" ".join(s.split()), limit))


def _readable(match: re.Match[str]) -> str:
    sigil, target, label = match.group(1), match.group(2), match.group(3)
    if label:
        return label
    if sigil == "!":
        return "@" + target.split("^")[0]  # <!here> → "@here" (then made inert below)
    return f"{sigil}{target}" if sigil else target


def _inert(text: str) -> str:
    readable = _CONTROL.sub(_readable, text)
    return escape_mrkdwn(unescape_mrkdwn(readable))


def plain_fallback(text: str, *, users: Iterable[str | None] = ()) -> str:
    """The notification `text` with no live control sequence left: mentions and links become plain words.

    The fallback is what phone notifications show and Slack parses it as mrkdwn, so store data in it (an alert's
    summary, a product name) could otherwise ping a channel. Intended mentions live in the blocks instead, but for
    `users`: the people the bot itself names (who acknowledged, who changed a setting), whose `<@U…>` stays live
    so the notification shows their name rather than a raw member id.
    """
    keep = {u for u in users if u and _MEMBER.fullmatch(u)}
    if not keep:
        return _inert(text)
    live = re.compile("(" + "|".join(re.escape(f"<@{u}>") for u in sorted(keep)) + ")")
    return "".join(part if i % 2 else _inert(part) for i, part in enumerate(live.split(text)))
