"""SQL for the record of every received event in webhook_logs: its row, and how a refused one is kept."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from queries.executor import Executor

# An event the rules or the database refused is kept with its reason (and answered 2xx: it is stored), so
# Stripe does not retry it forever. $7 is the raw body, or, when jsonb refuses even that (a lone surrogate
# escape such as "\ud800" is valid JSON but not valid jsonb), the body as one JSON string.
_LOG_REFUSED: Final = """
INSERT INTO webhook_logs (source, event_id, event_type, status,  last_error, livemode, payload, event_created_at, via)
VALUES                   ($1,     $2,       $3,         'error', $4,         $5,       {},      $6,               $8)
ON CONFLICT (source, event_id) DO NOTHING
RETURNING id
"""
LOG_REFUSED: Final = _LOG_REFUSED.format("$7::text::jsonb")
LOG_REFUSED_AS_TEXT: Final = _LOG_REFUSED.format("to_jsonb($7::text)")


@dataclass(frozen=True, slots=True)
class LogRow:
    """One received event for webhook_logs, its body the raw JSON text as received."""

    source: str
    event_id: str
    event_type: str
    status: str  # processed | ignored | error
    body: str
    livemode: bool
    event_created_at: dt.datetime | None
    via: str
    last_error: str | None = None


async def log_refused(db: Executor, row: LogRow, *, error: str, as_text: bool = False) -> bool:
    """Keep an event that could not be applied, status 'error' with its reason; False if already stored."""
    sql = LOG_REFUSED_AS_TEXT if as_text else LOG_REFUSED
    return await db.fetchval(sql, row.source, row.event_id, row.event_type, error[:2000], row.livemode,
                             row.event_created_at, row.body, row.via) is not None
