"""Where the third-party reference payloads live, and how to turn a bare Stripe object into an event."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

# The shared reference set sits beside the checkout (../shared/reference); another layout (CI, a second
# worktree) points at it with SALESPULSE_REFERENCE_DIR.
REFERENCE_DIR = Path(
    os.environ.get("SALESPULSE_REFERENCE_DIR") or Path(__file__).resolve().parents[2] / "shared" / "reference"
)
STRIPE_DIR = REFERENCE_DIR / "stripe"


def stripe_fixture(relpath: str) -> dict[str, Any]:
    """The decoded JSON of a file under reference/stripe/, e.g. "stripe-ruby-mock/charge.refunded.json"."""
    data = json.loads((STRIPE_DIR / relpath).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise TypeError(f"{relpath} holds {type(data).__name__}, not a JSON object")
    return data


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
