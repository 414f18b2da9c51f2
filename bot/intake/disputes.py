"""A dispute's row in the fold: one per dispute, whichever of its events (opened, closed, reinstated) came first.

Stripe retries, so charge.dispute.closed may arrive before the charge.dispute.created it follows. Each event is the
dispute as of its time: the newer status wins, the opening time is the earliest seen, and what one event lacked
another fills in — the rule queries/intake.py UPSERT_DISPUTES applies to the stored row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any, Final

from bot.intake.events import PaymentEvent

# A dispute decided (https://docs.stripe.com/api/disputes/object#dispute_object-status): at the same second as an
# open status, the later one. UPSERT_DISPUTES spells the same list.
DECIDED: Final = frozenset({"won", "lost", "warning_closed"})

_ORDER, _STATUS, _OPENED, _STATUS_AT, _REFS = 1, 6, 7, 8, 9  # positions in a row


def dispute_row(e: PaymentEvent, dispute_id: str, order_id: str | None) -> tuple[Any, ...]:
    """(id, order id, charge id, amount, currency, reason, status, opened at, status at, refs) as this event tells
    it; a closing event first seen stands for the opening until charge.dispute.created (earlier) arrives. The refs
    (sorted) let a sale that comes later find it (queries/intake.py LINK_DISPUTES)."""
    return (dispute_id, order_id, e.charge_id, e.amount, e.currency, e.dispute_reason, e.dispute_status,
            e.occurred_at, e.occurred_at, sorted(set(e.refs)))


def linked(rows: Mapping[str, tuple[Any, ...]], ref_index: Mapping[str, str],
           resolve: Callable[[str], str]) -> dict[str, tuple[Any, ...]]:
    """The batch's disputes with their orders as the batch leaves them: merged ids followed, and one that came before
    its sale in the batch given the order a later event made for one of its refs (its first such ref, sorted), as
    LINK_DISPUTES does for a dispute stored by an earlier batch."""
    out = {}
    for key, d in rows.items():
        order = d[_ORDER] or next((ref_index[r] for r in d[_REFS] if r in ref_index), None)
        out[key] = (d[0], order and resolve(order), *d[2:])
    return out


def _newer(status: str | None, at: dt.datetime, than: str | None, than_at: dt.datetime) -> bool:
    if status is None:
        return False
    return than is None or (at, status in DECIDED) > (than_at, than in DECIDED)


def merged(current: tuple[Any, ...], new: tuple[Any, ...]) -> tuple[Any, ...]:
    """Two rows of one dispute as one: UPSERT_DISPUTES within the batch."""
    filled = [c if c is not None else n for c, n in zip(current[:_STATUS], new[:_STATUS], strict=True)]
    if _newer(new[_STATUS], new[_STATUS_AT], current[_STATUS], current[_STATUS_AT]):
        status, status_at = new[_STATUS], new[_STATUS_AT]
    else:
        status, status_at = current[_STATUS], current[_STATUS_AT]
    refs = sorted({*current[_REFS], *new[_REFS]})
    return (*filled, status, min(current[_OPENED], new[_OPENED]), status_at, refs)
