"""The one message for many failed payments waiting at once (a card-testing attack queues hundreds of pings at one
message a second): how many, over what time, and the first few as their own pings said them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.blocks.elements import context, header, local, message, section, when
from bot.blocks.message import Message, truncate
from bot.blocks.pings import BURST_LINE_CHARS, BURST_LISTED, FAILURE_TITLE, LAST_MINUTE


@dataclass(frozen=True, slots=True)
class FailureBurstView:
    """Failed payments coalesced into one message; `lines` holds the first few pings' texts."""

    count: int
    first_at: datetime
    last_at: datetime
    lines: Sequence[str]


def failure_burst_message(b: FailureBurstView, *, tz: ZoneInfo) -> Message:
    """"❌ 37 payment failures since 14:02", the first ten (amount — reason), and where the rest are counted."""
    span = "in the last minute" if b.last_at - b.first_at <= LAST_MINUTE else f"since {local(b.first_at, tz):%H:%M}"
    headline = f"{b.count:,} payment failures"
    listed = [truncate(f"• {line.removeprefix(f'{FAILURE_TITLE}: ')}", BURST_LINE_CHARS)
              for line in b.lines[:BURST_LISTED]]
    if (more := b.count - len(listed)) > 0:
        listed.append(f"…and {more:,} more")
    blocks = [header(f"❌ {headline}")]
    if listed:
        blocks.append(section("\n".join(listed)))
    blocks.append(context(f"⏰ {when(b.first_at, tz)} – {when(b.last_at, tz)}",
                          "⚠️ Many at once is how card testing looks: check Radar in the Stripe dashboard · /errors"))
    return message(f"❌ {headline} {span}", blocks)
