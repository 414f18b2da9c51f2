"""The pieces every Stripe object reader shares: the envelope, the payment's ids, product and the PaymentEvent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from bot.intake.events import Kind, MalformedEvent, PaymentEvent
from bot.stripe.fields import coalesce, currency, first_item, mapping, string, string_pairs, stripe_id

# Metadata keys, best first. `offerId` is last: the original integration guide keyed offers by it.
_PRODUCT_KEYS: Final = ("productName", "product_name", "product", "offerId")
_AFFILIATE_KEYS: Final = ("affiliateId", "affiliate_id", "affiliate", "ref")
# Descriptions Stripe itself writes on the PaymentIntents and Charges of subscription invoices: they name no
# product, and the invoice's line says what was sold.
_STRIPE_DESCRIPTIONS: Final = frozenset({"Subscription creation", "Subscription update", "Payment for Invoice"})


@dataclass(frozen=True, slots=True)
class Envelope:
    """The event-level facts every PaymentEvent carries."""

    event_id: str
    event_type: str
    occurred_at: datetime
    livemode: bool
    api_version: str | None = None
    previous: Mapping[str, Any] = field(default_factory=dict)  # data.previous_attributes (updated events)


@dataclass(frozen=True, slots=True)
class Ids:
    """The Stripe ids that name the underlying payment, by role."""

    payment_intent: str | None = None
    checkout_session: str | None = None
    invoice: str | None = None
    charge: str | None = None

    def refs(self, own_id: str | None) -> tuple[str, ...]:
        """Distinct ids, PaymentIntent first: it is the one id every event type of a payment can reach."""
        ordered = (self.payment_intent, self.checkout_session, self.invoice, self.charge)
        refs = tuple(dict.fromkeys(ref for ref in ordered if ref))
        if refs:
            return refs
        if own_id:
            return (own_id,)
        raise MalformedEvent("`data.object` has no Stripe id to know the payment by")


def _name_of(value: Any) -> str | None:
    """The `name` of an expanded Product; a bare prod_… id is no name to show."""
    return string(value, "name") if isinstance(value, Mapping) else None


def product(obj: Mapping[str, Any], metadata: Mapping[str, str]) -> str | None:
    """What was sold: a metadata key, the description, else the first invoice line's (either API shape)."""
    line = first_item(obj, "lines")
    price = mapping(line, "price")  # acacia and before
    details = mapping(mapping(line, "pricing"), "price_details")  # 2025-03-31.basil and later
    description = string(obj, "description")
    return coalesce(
        *(metadata.get(key) for key in _PRODUCT_KEYS),
        None if description in _STRIPE_DESCRIPTIONS else description,
        string(line, "description"),
        string(price, "nickname"),
        string(mapping(line, "plan"), "nickname"),
        _name_of(price.get("product")),
        _name_of(details.get("product")),
    )


def charge_of(payment_intent: Mapping[str, Any]) -> Mapping[str, Any]:
    """A PaymentIntent's charge: an expanded `latest_charge`, or `charges.data[0]` (API before 2022-11-15)."""
    latest = payment_intent.get("latest_charge")
    return latest if isinstance(latest, Mapping) else first_item(payment_intent, "charges")


def charge_id(payment_intent: Mapping[str, Any]) -> str | None:
    """The id of a PaymentIntent's charge, whether `latest_charge` is an id or expanded."""
    return coalesce(stripe_id(payment_intent.get("latest_charge")), stripe_id(first_item(payment_intent, "charges")))


def payment_error(payment_intent: Mapping[str, Any]) -> str | None:
    """Why a PaymentIntent's last attempt failed, in the words Stripe gives."""
    error = mapping(payment_intent, "last_payment_error")
    return coalesce(string(error, "message"), string(error, "decline_code"), string(error, "code"))


def invoice_unstated(obj: Mapping[str, Any]) -> bool:
    """Whether a PaymentIntent or Charge is in the basil shape, which no longer says which invoice it paid.

    Before 2025-03-31.basil the key is always there (null for a payment outside any invoice); from basil on it
    is gone. https://docs.stripe.com/changelog/basil/2025-03-31/add-support-for-multiple-partial-payments-on-invoices
    """
    return "invoice" not in obj


def new_event(
    env: Envelope,
    obj: Mapping[str, Any],
    kind: Kind,
    ids: Ids,
    *,
    amount: int | None,
    email: str | None,
    name: str | None,
) -> PaymentEvent:
    """The PaymentEvent fields every kind shares; callers `replace` in the kind-specific ones."""
    metadata = string_pairs(mapping(obj, "metadata"))
    return PaymentEvent(
        kind=kind,
        event_id=env.event_id,
        event_type=env.event_type,
        occurred_at=env.occurred_at,
        livemode=env.livemode,
        refs=ids.refs(stripe_id(obj)),
        amount=amount,
        currency=currency(obj),
        customer_email=email,
        customer_name=name,
        product=product(obj, metadata),
        affiliate=coalesce(*(metadata.get(key) for key in _AFFILIATE_KEYS)),
        checkout_session_id=ids.checkout_session,
        payment_intent_id=ids.payment_intent,
        invoice_id=ids.invoice,
        charge_id=ids.charge,
        metadata=metadata,
        api_version=env.api_version,
    )
