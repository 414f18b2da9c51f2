"""What the intake answers for each event: its outcome, how many Slack messages it queued, and which
errors mean "this payload is odd" rather than "the database is gone"."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import asyncpg

# Processing errors that mean "this payload is odd", not "the database is gone": the event is kept
# with status 'error' (and answered 2xx, since it is stored) instead of being retried by Stripe forever.
PAYLOAD_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, ValueError, TypeError,
                  KeyError, AttributeError)


class Outcome(StrEnum):
    """What the intake did with an event."""

    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    ERROR = "error"
    QUEUED = "queued"  # stored as received in the inbox (every writer was busy): applied soon after


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """The outcome, and how many Slack messages were queued."""

    outcome: Outcome
    queued: int = 0
