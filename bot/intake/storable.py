"""Whether an event's values fit the tables, checked before the fold applies it (see `unstorable`)."""

from __future__ import annotations

from bot.intake.events import PaymentEvent

_BIGINT = range(-(2**63), 2**63)  # what PostgreSQL's bigint holds: amounts in minor units


def unstorable(e: PaymentEvent) -> str | None:
    """Why the tables cannot hold this event's values (None when they can).

    Checked per event before the fold applies it: a value that would only fail at write time could be
    overwritten by a later event in the same batch and never reach the database, so a batch would keep an
    event that, alone, fails. Checking here makes an event's fate the same in any batch."""
    for name in ("amount", "amount_refunded"):
        value = getattr(e, name)
        if value is not None and value not in _BIGINT:
            return f"{name} {value} is beyond PostgreSQL's bigint"
    texts = [v for v in (e.currency, e.customer_email, e.customer_name, e.product, e.affiliate,
                         e.checkout_session_id, e.payment_intent_id, e.invoice_id, e.charge_id, e.failure_reason,
                         e.dispute_id, e.dispute_reason, e.dispute_status, e.refund_id, *e.refs,
                         *((e.subscription.customer, e.subscription.status) if e.subscription else ()))
             if v is not None]
    for text in [*texts, *e.metadata.keys(), *e.metadata.values()]:
        if "\x00" in text or (not text.isascii() and not _utf8(text)):
            return f"text {text[:40]!r} cannot be stored (NUL or a lone surrogate)"
    return None


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
