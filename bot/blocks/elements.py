"""Block Kit element builders shared by every message: each keeps Slack's limits by construction."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.blocks.message import (
    MAX_BUTTON_TEXT,
    MAX_CONTEXT_ELEMENTS,
    MAX_FALLBACK_TEXT,
    MAX_FIELD_TEXT,
    MAX_HEADER_TEXT,
    MAX_SECTION_FIELDS,
    MAX_SECTION_TEXT,
    Block,
    Message,
    truncate,
)
from bot.blocks.text import plain_fallback

# A button's value is at most 2000 characters: https://api.slack.com/reference/block-kit/block-elements#button
MAX_BUTTON_VALUE = 2000


def header(text: str) -> Block:
    """A header block; headers accept plain_text only, which Slack never parses for mentions."""
    return {"type": "header", "text": {"type": "plain_text", "text": truncate(text, MAX_HEADER_TEXT),
                                       "emoji": True}}


def fields(*pairs: tuple[str, str]) -> Block:
    """A section of labelled two-column fields (at most ten); values must already be escaped."""
    items = [{"type": "mrkdwn", "text": truncate(f"*{label}:*\n{value}", MAX_FIELD_TEXT)}
             for label, value in pairs[:MAX_SECTION_FIELDS]]
    return {"type": "section", "fields": items}


def section(text: str) -> Block:
    """A mrkdwn section; `text` must already be escaped."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, MAX_SECTION_TEXT)}}


def context(*texts: str) -> Block:
    """A context line of mrkdwn elements (at most ten); each text must already be escaped."""
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(t, MAX_SECTION_TEXT)}
                                            for t in texts[:MAX_CONTEXT_ELEMENTS]]}


def divider() -> Block:
    """A horizontal rule."""
    return {"type": "divider"}


def button(text: str, *, action_id: str, value: dict[str, Any] | str, style: str | None = None) -> Block:
    """A button whose value (JSON when a dict) travels back in the action payload."""
    raw = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    label = {"type": "plain_text", "text": truncate(text, MAX_BUTTON_TEXT), "emoji": True}
    element: Block = {"type": "button", "text": label, "action_id": action_id,
                      "value": raw[:MAX_BUTTON_VALUE]}
    if style in ("primary", "danger"):
        element["style"] = style
    return element


def actions(*elements: Block, block_id: str | None = None) -> Block:
    """An actions block."""
    block: Block = {"type": "actions", "elements": list(elements)}
    if block_id:
        block["block_id"] = block_id
    return block


def message(text: str, blocks: list[Block], *, mention: str = "", users: Iterable[str | None] = ()) -> Message:
    """The Message: its notification fallback made inert (plain_fallback) and kept short of Slack's limit.

    `mention` is the bot's own, intended mention (the alert's `<!here>` or on-call group), placed first so phone
    notifications page as configured; `users`, the members the text names on purpose (who acknowledged): their
    `<@U…>` stays live, for the notification to show a name. Every other control sequence is made inert."""
    inert = plain_fallback(text, users=users)
    fallback = f"{mention} {inert}" if mention else inert
    return Message(text=truncate(fallback, MAX_FALLBACK_TEXT), blocks=blocks)


def local(moment: datetime, tz: ZoneInfo) -> datetime:
    """`moment` in the store's zone; a naive datetime is a bug upstream, not something to guess about."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: messages need timezone-aware times")
    return moment.astimezone(tz)


def when(moment: datetime, tz: ZoneInfo) -> str:
    """A moment as the store's owner reads it, e.g. "Sat 28 Nov 14:05 EST"."""
    at = local(moment, tz)
    # %Z gives EST/EDT from zoneinfo, so a time on either side of a DST change is unambiguous.
    return f"{at:%a} {at.day} {at:%b %H:%M %Z}"
