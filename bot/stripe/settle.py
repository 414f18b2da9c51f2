"""An order's figures from Stripe: the charge's balance transaction (settled amount, fee, net in the account's
currency) and those of its refunds and disputes, which carry negative amounts and, for disputes, a fee.

GET /v1/charges/{id} with `expand[]=balance_transaction` and `expand[]=refunds.data.balance_transaction` (or the
PaymentIntent's `latest_charge` expanded the same way) is one request per order; a disputed charge adds
GET /v1/disputes?charge=…, whose disputes embed their balance transactions.
https://docs.stripe.com/api/balance_transactions/object · https://docs.stripe.com/expand
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from bot.stripe.events_api import StripeApi, StripeApiError
from queries.settlements import Claim, Figures

# Since API version 2022-11-15 a Charge includes its `refunds` only when asked: asked for by name, so no account's
# version leaves them out (https://docs.stripe.com/changelog/2022-11-15/deprecates-charges-auto-expand).
CHARGE_EXPAND = (("expand[]", "balance_transaction"), ("expand[]", "refunds"),
                 ("expand[]", "refunds.data.balance_transaction"))
INTENT_EXPAND = (("expand[]", "latest_charge.balance_transaction"), ("expand[]", "latest_charge.refunds"),
                 ("expand[]", "latest_charge.refunds.data.balance_transaction"))
# A Charge embeds its 10 newest refunds; the list says `has_more` and the rest are read from GET /v1/refunds
# (https://docs.stripe.com/api/refunds/list: "The 10 most recent refunds are always available by default on the
# Charge object"), 100 a page, after the last one embedded, each with its balance transaction.
REFUNDS_PATH = "/v1/refunds"
REFUND_EXPAND = ("expand[]", "data.balance_transaction")
# A failed or canceled refund's balance transaction is reversed by its failure_balance_transaction: no money left.
_VOID_REFUNDS = frozenset({"failed", "canceled"})


class NotSettled(Exception):
    """Stripe has no balance transaction for this payment yet (a pending bank debit), or no charge at all."""


def _txn(value: Any) -> Mapping[str, Any] | None:
    ok = isinstance(value, Mapping) and value.get("object") == "balance_transaction"
    return value if ok and all(isinstance(value.get(k), int) for k in ("amount", "fee", "net")) else None


def figures(txn: Mapping[str, Any], adjustments: Sequence[Mapping[str, Any]]) -> Figures:
    """Sum a charge's balance transaction and its refunds' and disputes' ones: net = amount − fees − refunded."""
    currency = str(txn.get("currency") or "").upper()
    if any(str(a.get("currency") or "").upper() != currency for a in adjustments):
        raise StripeApiError(f"balance transactions of {txn.get('source')} settled in several currencies")
    return Figures(amount=txn["amount"], currency=currency,
                   fee=txn["fee"] + sum(a["fee"] for a in adjustments),
                   refunded=-sum(a["amount"] for a in adjustments),
                   net=txn["net"] + sum(a["net"] for a in adjustments), balance_transaction=str(txn.get("id")))


async def _charge(api: StripeApi, claim: Claim) -> Mapping[str, Any]:
    if claim.charge_id:
        charge = await api.get(f"/v1/charges/{quote(claim.charge_id, safe='')}", CHARGE_EXPAND)
        # A declined try's charge never settles: the PaymentIntent's latest charge is the one that paid (a second
        # card on the same checkout, a dunning retry).
        if charge.get("status") != "failed" or not claim.payment_intent_id:
            return charge
    if claim.payment_intent_id:
        intent = await api.get(f"/v1/payment_intents/{quote(claim.payment_intent_id, safe='')}", INTENT_EXPAND)
        latest = intent.get("latest_charge")
        if isinstance(latest, Mapping):
            return latest
    raise NotSettled("no charge to read")


async def _refunds(api: StripeApi, charge: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every refund of the charge: the ones it embeds, then the older ones its list has more of."""
    listed = charge.get("refunds")
    if not isinstance(listed, Mapping):
        return []
    refunds = [r for r in listed.get("data") or [] if isinstance(r, Mapping)]
    if listed.get("has_more") is True and refunds:
        params = [("charge", str(charge.get("id"))), REFUND_EXPAND]
        async for page in api.pages(REFUNDS_PATH, params, after=str(refunds[-1].get("id"))):
            refunds += page.data
    return list({str(r.get("id")): r for r in refunds}.values())  # a refund made between two pages, once


async def read(api: StripeApi, claim: Claim) -> Figures:
    """The order's figures as Stripe has them now; NotSettled when there are none yet."""
    charge = await _charge(api, claim)
    txn = _txn(charge.get("balance_transaction"))
    if txn is None:
        raise NotSettled(f"charge {charge.get('id')} has no balance transaction yet")
    adjustments = [t for r in await _refunds(api, charge) if r.get("status") not in _VOID_REFUNDS
                   and (t := _txn(r.get("balance_transaction"))) is not None]
    if charge.get("disputed") is True:
        page = await api.list("/v1/disputes", [("charge", str(charge.get("id")))])
        adjustments += [t for d in page.data for b in d.get("balance_transactions") or []
                        if (t := _txn(b)) is not None]
    return figures(txn, adjustments)


async def account_currency(api: StripeApi) -> str | None:
    """The account's default currency (GET /v1/account `default_currency`), upper-case."""
    account = await api.get("/v1/account")
    code = account.get("default_currency")
    return code.upper() if isinstance(code, str) and len(code) == 3 else None
