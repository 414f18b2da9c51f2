"""Where the third-party test fixtures live (tests/fixtures), and how to turn a bare Stripe object into an event."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

# Inside the repository, so a fresh clone runs its tests; tests/fixtures/PROVENANCE.md names every file's source.
FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"
STRIPE_DIR = FIXTURES_DIR / "stripe"


def stripe_fixture(relpath: str) -> dict[str, Any]:
    """The decoded JSON of a file under fixtures/stripe/, e.g. "stripe-ruby-mock/charge.refunded.json"."""
    data = json.loads((STRIPE_DIR / relpath).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise TypeError(f"{relpath} holds {type(data).__name__}, not a JSON object")
    return data


def failed_payment(event_id: str, intent_id: str, **fields: Any) -> dict[str, Any]:
    """stripe-ruby-mock's payment_intent.payment_failed as another payment's: its own event, PaymentIntent and
    declined charge. Every copy of the fixture names the same charge, which real payments never share: the copies
    would be one payment's, and its failures one attempt."""
    evt = stripe_fixture("stripe-ruby-mock/payment_intent.payment_failed.json")
    evt["id"] = event_id
    obj = evt["data"]["object"]
    obj.update(id=intent_id, **fields)
    charge = "ch_" + intent_id.removeprefix("pi_")
    obj["last_payment_error"]["charge"] = charge
    for c in (obj.get("charges") or {}).get("data", []):
        c.update(id=charge, payment_intent=intent_id)
    return evt


def wrap_event(
    obj: dict[str, Any], type: str, *, event_id: str | None = None, created: int = 1_700_000_000
) -> dict[str, Any]:
    """A webhook event envelope, as Stripe sends it, around a bare object (or a pay-rails `data` body).

    pay-rails files are the event's `data` ({"object": {...}, "previous_attributes": ...}), not the bare
    object, so they are used as `data` unchanged. The event id is unique unless given: several events
    sharing one id would be collapsed by a correct dedupe layer.
    """
    data = dict(obj) if isinstance(obj.get("object"), dict) else {"object": obj}
    livemode = data["object"].get("livemode")
    return {
        "id": event_id or f"evt_test_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": None,
        "created": created,
        "data": data,
        "livemode": livemode if isinstance(livemode, bool) else False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type,
    }
