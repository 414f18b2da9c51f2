"""The pieces every Stripe object reader shares: the envelope, the payment's ids, product and the PaymentEvent."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, NamedTuple

from bot.intake.events import Kind, MalformedEvent, PaymentEvent
from bot.stripe.fields import (
    coalesce,
    currency,
    first_item,
    first_value,
    is_mapping,
    mapping,
    string,
    string_pairs,
    stripe_id,
)

# Metadata keys, best first. `offerId` is last: the original integration guide keyed offers by it.
_PRODUCT_KEYS: Final = ("productName", "product_name", "product", "offerId")
_AFFILIATE_KEYS: Final = ("affiliateId", "affiliate_id", "affiliate", "ref")
# Descriptions Stripe itself writes on the PaymentIntents and Charges of subscription invoices: they name no
# product, and the invoice's line says what was sold.
_STRIPE_DESCRIPTIONS: Final = frozenset({"Subscription creation", "Subscription update", "Payment for Invoice"})
# How Stripe describes a subscription item's invoice line, "1 × Pro plan (at $19.00 / month)" (localised inside the
# brackets): the product's name is what a phone shows, with the quantity when it is more than one.
_ITEM_LINE: Final = re.compile(r"(?P<quantity>\d+) × (?P<name>.+?) \([^()]*\)")


# Envelope and Ids are NamedTuples, not frozen dataclasses: every webhook builds them, and a tuple is built
# several times faster (a frozen dataclass sets each field through object.__setattr__).
class Envelope(NamedTuple):
    """The event-level facts every PaymentEvent carries."""

    event_id: str
    event_type: str
    occurred_at: datetime
    livemode: bool
    api_version: str | None
    previous: Mapping[str, Any]  # data.previous_attributes (updated events), {} when absent


class Ids(NamedTuple):
    """The Stripe ids that name the underlying payment, by role."""

    payment_intent: str | None = None
    checkout_session: str | None = None
    invoice: str | None = None
    charge: str | None = None

    def refs(self, own_id: str | None) -> tuple[str, ...]:
        """Distinct ids, PaymentIntent first: it is the one id every event type of a payment can reach."""
        refs = tuple(dict.fromkeys(filter(None, self)))  # the fields in that order
        if refs:
            return refs
        if own_id:
            return (own_id,)
        raise MalformedEvent("`data.object` has no Stripe id to know the payment by")


def _name_of(value: Any) -> str | None:
    """The `name` of an expanded Product; a bare prod_… id is no name to show."""
    return string(value, "name") if is_mapping(value) else None


def product(obj: Mapping[str, Any], metadata: Mapping[str, str]) -> str | None:
    """What was sold: a metadata key, the description, else the first invoice line's (either API shape).

    The first source that names it wins; the later ones are not read (most events stop at metadata or the
    description).
    """
    if named := first_value(metadata, _PRODUCT_KEYS):
        return named
    description = string(obj, "description")
    if description and description not in _STRIPE_DESCRIPTIONS:
        return description
    line = first_item(obj, "lines")
    if not line:
        return None
    price = mapping(line, "price")  # acacia and before
    details = mapping(mapping(line, "pricing"), "price_details")  # 2025-03-31.basil and later (expanded: rarely)
    return coalesce(
        _line_name(string(line, "description")),
        string(price, "nickname"),
        string(mapping(line, "plan"), "nickname"),
        _name_of(price.get("product")),
        _name_of(details.get("product")),
    )


def _line_name(description: str | None) -> str | None:
    """An invoice line's description, a subscription item's as its product name (× quantity when above one); any
    other (a proration's "Unused time on …", a one-off item's own words) as written."""
    item = _ITEM_LINE.fullmatch(description) if description else None
    if item is None:
        return description
    quantity = int(item["quantity"])
    return item["name"] if quantity == 1 else f"{item['name']} × {quantity}"


def charge_of(payment_intent: Mapping[str, Any]) -> Mapping[str, Any]:
    """A PaymentIntent's charge: an expanded `latest_charge`, or `charges.data[0]` (API before 2022-11-15)."""
    latest = payment_intent.get("latest_charge")
    return latest if is_mapping(latest) else first_item(payment_intent, "charges")


def charge_id(payment_intent: Mapping[str, Any]) -> str | None:
    """The id of a PaymentIntent's charge, whether `latest_charge` is an id or expanded."""
    if not payment_intent:  # not expanded (a Checkout Session's usual `payment_intent`): nothing to read
        return None
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
    **specific: Any,
) -> PaymentEvent:
    """The PaymentEvent: the fields every kind shares, and the kind-specific ones given as keywords.

    `specific` may also set `currency` or `product` (a subscription's come from its items, a LINK has none):
    those are then not read from `obj`. The event is built once; `dataclasses.replace` would build it twice.
    """
    metadata = string_pairs(mapping(obj, "metadata"))
    if "currency" not in specific:
        specific["currency"] = currency(obj)
    if "product" not in specific:
        specific["product"] = product(obj, metadata)
    return PaymentEvent(
        kind=kind,
        event_id=env.event_id,
        event_type=env.event_type,
        occurred_at=env.occurred_at,
        livemode=env.livemode,
        refs=ids.refs(stripe_id(obj)),
        amount=amount,
        customer_email=email,
        customer_name=name,
        affiliate=first_value(metadata, _AFFILIATE_KEYS),
        checkout_session_id=ids.checkout_session,
        payment_intent_id=ids.payment_intent,
        invoice_id=ids.invoice,
        charge_id=ids.charge,
        metadata=metadata,
        api_version=env.api_version,
        **specific,
    )
