"""The one message for many pings of one kind waiting at once, each already said as its own text: failed payments
(a card-testing attack queues hundreds at one message a second), refunds (a bulk refund of a cancelled event),
disputes (a fraud wave). How many, over what time, and the first few as their own pings said them. Refunds that failed
or were canceled are counted by kind (bot/blocks/refund_pings.py VoidBurst)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

from bot.blocks.elements import context, header, message, section
from bot.blocks.message import Message
from bot.blocks.pings import BURST_LISTED, DISPUTE_TITLE, FAILURE_TITLE, burst_lines, burst_span, burst_times
from bot.blocks.refund_pings import FAILED_TITLE, VOID_KIND, void_burst


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
    # Said by kind when every ping's title is known (void_burst); else in these words.
    VOID_KIND: Wording("⚠️", "refunds failed or canceled", f"{FAILED_TITLE}: ", "Not refunded: see each in Stripe"),
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
    texts, `titles` how many of all `count` have each title (a text's start before ": ")."""

    kind: str
    count: int
    first_at: datetime
    last_at: datetime
    lines: Sequence[str]
    titles: Mapping[str, int] = field(default_factory=dict)


def ping_burst_message(b: PingBurstView, *, tz: ZoneInfo) -> Message:
    """"❌ 37 payment failures since 14:02", the first ten (amount — reason), and what to do about them."""
    wording = WORDINGS.get(b.kind, OTHER)
    headline = f"{wording.emoji} {b.count:,} {wording.noun}"
    lines = [line.removeprefix(wording.prefix) for line in b.lines[:BURST_LISTED]]
    if b.kind == VOID_KIND and (voids := void_burst(b.titles, b.count)) is not None:
        headline, lines = voids.headline(), [voids.line(line) for line in b.lines[:BURST_LISTED]]
    listed = burst_lines([f"• {line}" for line in lines], b.count)
    blocks = [header(headline)]
    if listed:
        blocks.append(section("\n".join(listed)))
    notes = [wording.note] if wording.note else []
    blocks.append(context(burst_times(b.first_at, b.last_at, tz), *notes))
    return message(f"{headline} {burst_span(b.first_at, b.last_at, tz)}", blocks)
