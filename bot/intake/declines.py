"""Why an invoice's payment failed: the bank's reason, which only the invoice's PaymentIntent tells.

invoice.payment_failed says the invoice was not paid ("Invoice payment failed (attempt 1)"); the reason ("Your card
has insufficient funds.") comes on payment_intent.payment_failed, which records no failure of its own: the invoice's
tells the attempt (bot/intake/failures.py). The two come in either order, in one batch or two. So the PaymentIntent's
reason, its decline, is kept (table attempt_declines); an invoice failure without a reason of its own takes the
decline kept for it before the batch is folded; and a failure recorded before its decline came is told it after:
its ping rewritten while it waits (it waits SALE_SETTLE_SECONDS for this) or, once posted, edited in place. Which
decline is whose: queries/declines.py. A bank debit's failure recorded from checkout.session.async_payment_failed
(no reason) is told its PaymentIntent's reason the same way (bot/intake/failures.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from bot.blocks.pings import FailureView, failure_message
from bot.intake.events import Kind, PaymentEvent
from bot.intake.failures import Failure, tells_why
from bot.stripe.checkout import ASYNC_FAILED
from bot.stripe.invoices import UNTOLD
from bot.stripe.payments import UNSAID
from queries import declines as q
from queries import intake_later as later
from queries import outbox
from queries.executor import Executor
from queries.intake import QueuedMessage

Todo = list[tuple[int, PaymentEvent]]


def is_decline(e: PaymentEvent) -> bool:
    """An invoice's PaymentIntent that failed, with Stripe's reason."""
    return e.kind is Kind.FAILURE and e.invoice_attempt and e.failure_reason not in (None, UNSAID)


def untold(e: PaymentEvent) -> bool:
    """An invoice's failure with no reason of its own."""
    return (e.kind is Kind.FAILURE and e.event_type == "invoice.payment_failed"
            and (e.failure_reason or UNTOLD).startswith(UNTOLD))


def _decline_row(e: PaymentEvent) -> tuple[object, ...]:
    return (e.event_id, e.invoice_id, e.customer_id, e.amount, e.currency, e.failure_reason, e.occurred_at)


async def tell_batch(conn: Executor, todo: Todo) -> Todo:
    """Keep the batch's declines; give its invoice failures the reasons kept for them (this batch's or earlier)."""
    await q.keep(conn, [_decline_row(e) for _, e in todo if is_decline(e)])
    waiting = [(e.event_id, e.invoice_id, e.customer_id, e.amount, e.currency, e.occurred_at)
               for _, e in todo if untold(e)]
    found = await q.reasons(conn, waiting)
    if not found:
        return todo
    return [(i, dataclasses.replace(e, failure_reason=told(found[e.event_id], e.failure_reason))
             if e.event_id in found else e) for i, e in todo]


def told(decline: str, untold_reason: str | None) -> str:
    """The bank's reason, with Stripe's retry number kept ("… (attempt 2)": a renewal's dunning has a few)."""
    return decline + (untold_reason or UNTOLD).removeprefix(UNTOLD)


def wait_for_reasons(messages: Sequence[QueuedMessage], todo: Todo, settle: dt.timedelta) -> list[QueuedMessage]:
    """The pings of invoice and bank debit failures still without a reason wait `settle` for their PaymentIntent's."""
    waiting = {f"failure:{e.event_id}" for _, e in todo if untold(e) or e.failure_reason == ASYNC_FAILED}
    if not waiting or settle <= dt.timedelta(0):
        return list(messages)
    return [dataclasses.replace(m, delay=settle.total_seconds()) if m.dedupe_key in waiting else m
            for m in messages]


async def tell_recorded(conn: Executor, todo: Todo, failures: Sequence[Failure] = (), *, tz: ZoneInfo,
                        notify: bool) -> None:
    """Failures of earlier batches told the reasons this batch brings, their pings too: invoice failures their
    declines', and a bank debit's session failure (ASYNC_FAILED) its PaymentIntent's (`failures`: the fold's rows)."""
    told = await q.tell(conn, [_decline_row(e) for _, e in todo if is_decline(e)], untold=UNTOLD)
    told += await later.tell_attempts(conn, [f for f in failures if tells_why(f)], untold=ASYNC_FAILED)
    if not told or not notify:
        return
    messages = {f"failure:{f.event_id}": failure_message(
        FailureView(product=f.product, amount=f.amount, currency=f.currency, customer_email=f.customer_email,
                    reason=f.reason, occurred_at=f.created_at), tz=tz) for f in told}
    for ping in await q.pings(conn, sorted(messages)):
        payload = messages[ping.dedupe_key].as_payload()
        if ping.untried:
            await q.rewrite(conn, ping.id, json.dumps(payload))
        if not ping.held:  # it is out, or may be on its way with the old text: edit it once it is (the same text
            # edited over itself at worst; an incoming webhook, which cannot edit, drops the edit)
            await outbox.enqueue(conn, dedupe_key=f"{ping.dedupe_key}:reason", channel="alerts", kind="failure",
                                 payload=payload, op="update", target_id=ping.id)
