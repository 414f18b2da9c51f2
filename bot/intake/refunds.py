"""Money given back, kept on its order whatever the order of arrival, and the 'refunded' status it decides.

Stripe retries, so a charge.refunded may arrive before the sale it refunds: it is then kept on a placeholder order
(`linked`) that the sale fills in. Until then only its ledger holds the refund: amount_refunded and refunded_at stay
0 and NULL, and are derived once the order is paid (counted once; so are its refund steps, below).
'refunded' is derived, never an event's: an order is 'refunded' wherever it would be 'completed' while its refunds
reach its amount, so neither a refund's arrival nor a late completed event (a checkout session redelivered after the
refund) decides it alone.

A refund can fail or be canceled after charge.refunded counted it, and its money comes back (bot/stripe/refunds.py).
So the order keeps what Stripe said (`refund_ledger`, migration 0037): each charge.refunded's cumulative amount and
time, and each refund voided with its amount, creation and void times. amount_refunded is derived from all of it, the
same whatever order the facts came in: each charge.refunded's amount less the refunds it counted (created by then)
that were voided after it — at the same second, the void is taken as the later — and the largest of those. A later
refund only adds, so the largest is the one that saw every refund still standing; charge.refunded never says a voided
refund again (Stripe lowers amount_refunded when it fails), and a backfill's charge.refunded is stamped with its
newest refund's creation, or when it was read (bot/stripe/backfill.py `_refunded_as_of`), so a later failure comes
off it too.

The rollups and /sales count each refund at its own time, not amount_refunded at refunded_at: migration 0051's
refund_steps_of() derives from the same ledger the amount refunded as the facts taken so far give it (this
derivation, applied to the facts one at a time), each change a step (`refund_steps`; tests/test_refund_periods.py
holds the two equal).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any, Final

from bot.intake.events import PaymentEvent
from queries.intake import OrderRow

# The statuses of an order whose money was taken: a pending, failed or linked event never sets its amount.
PAID = frozenset({"completed", "refunded"})
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND: Final = dt.timedelta(microseconds=1)


def settle_refunded(order: OrderRow) -> None:
    """After an event moved the order: its refunds derived again from the ledger where it has one (a placeholder's,
    now perhaps paid, count from here on), then its status."""
    if order.refund_ledger:
        _derive(order)
    else:
        _settle_status(order)


def _settle_status(order: OrderRow) -> None:
    """A paid order is 'refunded' while its refunds reach its amount and 'completed' otherwise (a partial refund, or
    a full one that failed)."""
    if order.payment_status in PAID and order.amount_total is not None:
        full = 0 < order.amount_total <= order.amount_refunded
        order.payment_status = "refunded" if full else "completed"


def takes_amount(order: OrderRow, was: str, status: str, moves: bool) -> bool:
    """Whether an event's amount replaces the order's: only when its status moved the order (an older event's is
    stale: a session completed unpaid for the authorised amount, redelivered after a smaller capture), or the order
    has none yet; and never a pending, failed or linked amount over what was taken."""
    if order.amount_total is None:
        return True
    return moves and not (was in PAID and status not in PAID)


def placeholder(e: PaymentEvent) -> OrderRow:
    """The order a refund arriving before its sale is kept on: its ids and customer, no amount until the sale."""
    return OrderRow(id=e.order_ref, payment_status="linked", status_at=e.occurred_at, created_at=e.occurred_at,
                    currency=e.currency, customer_email=e.customer_email, customer_name=e.customer_name,
                    product_name=e.product, affiliate_id=e.affiliate, checkout_session_id=e.checkout_session_id,
                    payment_intent_id=e.payment_intent_id, invoice_id=e.invoice_id, charge_id=e.charge_id,
                    livemode=e.livemode, metadata=dict(e.metadata), is_new=True)


def _us(at: dt.datetime) -> int:
    """A time as the ledger keeps it: whole microseconds since the epoch (queries.instants.micros)."""
    return (at - _EPOCH) // _MICROSECOND


def _ledger(order: OrderRow) -> dict[str, Any]:
    """The order's ledger; one stored before migration 0037 (or seeded) reads as one charge.refunded of its
    amount_refunded."""
    ledger = order.refund_ledger
    if "charges" not in ledger and order.amount_refunded > 0:
        return {**ledger, "charges": [[order.amount_refunded, _us(order.refunded_at or order.status_at)]]}
    return ledger


def _charges(*lists: list[list[int]]) -> list[list[int]]:
    """charge.refunded facts, each once, in time order: the stored ledger is the same in every order of arrival."""
    return [list(c) for c in sorted({(amount, at) for facts in lists for amount, at in facts},
                                    key=lambda c: (c[1], c[0]))]


def _voids(*maps: dict[str, list[int]]) -> dict[str, list[int]]:
    """Voided refunds by id; of two events of one failure (charge.refund.updated and refund.failed), the earlier."""
    out: dict[str, list[int]] = {}
    for voids in maps:
        for refund_id, fact in voids.items():
            known = out.get(refund_id)
            out[refund_id] = fact if known is None else min(known, fact, key=lambda v: (v[2], v[0], v[1]))
    return out


def _write(order: OrderRow, charges: list[list[int]], voids: dict[str, list[int]]) -> None:
    """Keep the ledger (its empty parts left out, as every path writes it) and derive the order's figures from it."""
    order.refund_ledger = {k: v for k, v in (("charges", charges), ("voids", voids)) if v}
    _derive(order)


def _kept(charges: Iterable[Sequence[int]], voids: Iterable[Sequence[int]]) -> int:
    """The amount refunded these facts give: each charge.refunded's amount less the refunds it counted that were
    voided (at the same second, the void taken as the later), the largest of those; 0 at least."""
    voids = list(voids)
    kept = 0
    for amount, at in charges:
        kept = max(kept, amount - sum(v for v, created, gone in voids if created <= at <= gone))
    return kept


def _derive(order: OrderRow) -> None:
    """amount_refunded, refunded_at and the status, from the ledger (see the module's docstring)."""
    ledger = order.refund_ledger
    charges = ledger.get("charges", [])
    kept = _kept(charges, ledger.get("voids", {}).values())
    last = max((at for _, at in charges), default=None)
    if order.payment_status == "linked":  # a placeholder: nothing counts until its sale is known
        kept = 0
    order.amount_refunded = kept
    order.refunded_at = _EPOCH + last * _MICROSECOND if kept and last is not None else None
    _settle_status(order)
    order.dirty = True


def refund_steps(ledger: dict[str, Any], status: str) -> list[tuple[int, int, int]]:
    """The refund steps of an order with this ledger, as migration 0051's refund_steps_of() gives them: (time in
    µs, amount, 1 or -1). The facts are taken one at a time — by time, at one time its voids before its
    charge.refunded facts (the void is the later: those counted it), each kind by amount, then id — and each change
    of the amount refunded they give is a step: a void's fall, or a charge.refunded's rise (its own refund). So two
    refunds failing in the same second are two steps, and a refund made in the second another is voided is not
    netted with it. The steps add up to the amount refunded. A placeholder has none."""
    if status == "linked":
        return []
    charges, voids = ledger.get("charges", []), ledger.get("voids", {})
    facts = sorted([(gone, 0, amount, refund_id) for refund_id, (amount, _, gone) in voids.items()]
                   + [(at, 1, amount, "") for amount, at in charges])
    steps, before = [], 0
    for n, (at, *_) in enumerate(facts, 1):
        taken = facts[:n]
        now = _kept([(amount, t) for t, kind, amount, _ in taken if kind == 1],
                    [voids[refund_id] for _, kind, _, refund_id in taken if kind == 0])
        if now != before:
            steps.append((at, now - before, 1 if now > before else -1))
        before = now
    return steps


def take_refund(order: OrderRow, e: PaymentEvent, refunded: int) -> None:
    """charge.refunded: the charge's cumulative amount refunded at the event's time."""
    ledger = _ledger(order)
    order.currency = order.currency or e.currency
    _write(order, _charges(ledger.get("charges", []), [[refunded, _us(e.occurred_at)]]), ledger.get("voids", {}))


def take_void(order: OrderRow, e: PaymentEvent) -> None:
    """A refund failed or canceled: its amount, its creation (the epoch when Stripe left it out: before any
    charge.refunded) and the event's time."""
    if e.refund_id is None or e.amount is None:  # bot/stripe/refunds.py sends neither
        return
    fact = [e.amount, _us(e.refund_created_at) if e.refund_created_at else 0, _us(e.occurred_at)]
    ledger = _ledger(order)
    order.currency = order.currency or e.currency
    _write(order, ledger.get("charges", []), _voids(ledger.get("voids", {}), {e.refund_id: fact}))


def merge_refunds(survivor: OrderRow, loser: OrderRow) -> None:
    """Two orders of one payment: every fact of both ledgers, the figures derived again."""
    s, o = _ledger(survivor), _ledger(loser)
    _write(survivor, _charges(s.get("charges", []), o.get("charges", [])),
           _voids(s.get("voids", {}), o.get("voids", {})))
