"""A Stripe webhook body as received: strict JSON, and the Submission the intake applies."""

from __future__ import annotations

import json
import logging
from typing import Any

from bot.intake.batch import Submission
from bot.stripe.parse import parse_event
from queries.inbox import Received

log = logging.getLogger(__name__)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# One decoder for every body: json.loads() with an argument builds a new one per call.
_STRICT = json.JSONDecoder(parse_constant=_reject_constant)


def load_json(text: str) -> Any:
    """Strict JSON: no NaN/Infinity and no NUL characters, which PostgreSQL's jsonb cannot store."""
    if "\\u0000" in text:
        raise ValueError("body contains a NUL character")
    return _STRICT.decode(text)


def submission(text: str, *, via: str = "webhook") -> Submission:
    """The Submission of a verified body; raises ValueError (MalformedEvent, JSONDecodeError) for a bad one."""
    raw = load_json(text)
    event = parse_event(raw)
    return Submission(source="stripe", event_id=raw["id"], event_type=raw["type"], body=text, event=event, via=via)


def rebuild(stored: Received) -> Submission:
    """A body from the inbox parsed again; it was checked before it was stored, so a failure here is a bug, and
    the event is kept (as ignored, with its body) rather than lost."""
    try:
        return submission(stored.body, via=stored.via)
    except (ValueError, RecursionError) as exc:
        log.error("stored Stripe event %s no longer parses: %s", stored.event_id, exc)
        return Submission(source=stored.source, event_id=stored.event_id, event_type="unknown", body=stored.body,
                          event=None, via=stored.via)
