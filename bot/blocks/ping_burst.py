"""The one message for many pings of one kind waiting at once, each already said as its own text: failed payments
(a card-testing attack queues hundreds at one message a second), refunds (a bulk refund of a cancelled event),
disputes (a fraud wave). How many, over what time, and the first few as their own pings said them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

from bot.blocks.elements import context, header, message, section
from bot.blocks.message import Message
from bot.blocks.pings import BURST_LISTED, DISPUTE_TITLE, FAILURE_TITLE, burst_lines, burst_span, burst_times


@dataclass(frozen=True, slots=True)
class Wording:
    """How a burst of one kind is said: "❌ 37 payment failures", each listed line without its ping's `prefix`,
    and what to do about them."""

    emoji: str
    noun: str  # plural: a burst covers two or more
    prefix: str  # the start of each ping's text the list leaves out
    note: str


WORDINGS: Final[dict[str, Wording]] = {
    "failure": Wording("❌", "payment failures", f"{FAILURE_TITLE}: ",
                       "⚠️ Many at once is how card testing looks: check Radar in the Stripe dashboard · /errors"),
    "refund": Wording("↩️", "refunds", "↩️ ", "Each is under Payments in the Stripe dashboard · /sales counts them"),
    "refund_void": Wording("⚠️", "refunds failed or canceled", "❌ Refund failed: ", "Not refunded: see each in Stripe"),
    # Without evidence by the due date the bank decides for the customer: https://docs.stripe.com/disputes/responding
    "dispute": Wording("⚠️", "disputes opened", f"{DISPUTE_TITLE}: ",
                       "⚠️ Respond to each in the Stripe dashboard before its evidence deadline, or it is lost"),
}


# A kind a newer release coalesces, met by this one resolving that release's burst mid-upgrade: said plainly rather
# than failing the channel's every pass.
OTHER: Final = Wording("📣", "messages", "", "")


@dataclass(frozen=True, slots=True)
class PingBurstView:
    """Pings of one `kind` (a key of WORDINGS) coalesced into one message; `lines` holds the first few pings'
    texts."""

    kind: str
    count: int
    first_at: datetime
    last_at: datetime
    lines: Sequence[str]


def ping_burst_message(b: PingBurstView, *, tz: ZoneInfo) -> Message:
    """"❌ 37 payment failures since 14:02", the first ten (amount — reason), and what to do about them."""
    wording = WORDINGS.get(b.kind, OTHER)
    headline = f"{b.count:,} {wording.noun}"
    listed = burst_lines([f"• {line.removeprefix(wording.prefix)}" for line in b.lines[:BURST_LISTED]], b.count)
    blocks = [header(f"{wording.emoji} {headline}")]
    if listed:
        blocks.append(section("\n".join(listed)))
    notes = [wording.note] if wording.note else []
    blocks.append(context(burst_times(b.first_at, b.last_at, tz), *notes))
    return message(f"{wording.emoji} {headline} {burst_span(b.first_at, b.last_at, tz)}", blocks)
