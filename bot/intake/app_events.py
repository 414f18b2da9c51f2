"""The store's own app events (errors, sync failures, orders): their strict schema and how they are stored.

The body is one event object or {"events": [...]} with up to 100; every event is validated before any is
stored, and a batch is stored in the caller's transaction, so it is all or nothing. Clients should send an `id`
with every event: a resend of an id already stored is a no-op, while events without one are always new.
Orders go through the Stripe intake's one rule set (bot/intake/fold.py), as one batch; a $0 one is no sale.
An `occurred_at` more than a few minutes ahead is refused: it is a wrong clock or offset, and the sender is told.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo

import asyncpg
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from bot.clock import utcnow
from bot.intake.batch import Submission, ingest_batch
from bot.intake.events import Kind, PaymentEvent
from bot.intake.result import Outcome
from queries import app_events

log = logging.getLogger(__name__)

MAX_EVENTS: Final = 100
MAX_CONTEXT_BYTES: Final = 8 * 1024  # "a small object": a few fields of detail, not a log dump
MAX_CONTEXT_DEPTH: Final = 8
MAX_AMOUNT: Final = 10**15  # minor units: far above any real order, far below PostgreSQL's bigint
EARLIEST: Final = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
FUTURE_SLACK: Final = dt.timedelta(minutes=5)  # NTP-synced clocks agree within seconds; hours ahead is a bug
MAX_PROBLEMS: Final = 10  # validation problems listed in a 400
MAX_PROBLEM_CHARS: Final = 200  # a problem never echoes more than this of the client's input
TAGS: Final = ("error", "sync_failure", "order")
_STATUS: Final = {Outcome.PROCESSED: "stored", Outcome.IGNORED: "stored", Outcome.DUPLICATE: "duplicate",
                  Outcome.ERROR: "error"}


def _storable(value: str) -> str:
    # PostgreSQL text and jsonb cannot hold U+0000 or a lone surrogate (JSON allows "\ud800"): refuse
    # them here rather than fail in the INSERT. Pydantic's str already refuses surrogates; Any does not.
    if "\x00" in value:
        raise ValueError("must not contain NUL (U+0000) characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


def _plain(value: str) -> str:
    _storable(value)
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Id = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_plain)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(_plain)]
Message = Annotated[str, StringConstraints(min_length=1, max_length=4000), AfterValidator(_plain)]
Product = Annotated[str, StringConstraints(min_length=1, max_length=500), AfterValidator(_plain)]
Email = Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$"),
                  AfterValidator(_plain)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{3}$"), AfterValidator(str.upper)]
Amount = Annotated[int, Strict(), Field(ge=0, le=MAX_AMOUNT)]  # strict: no "100", 100.0 or true


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Id | None = None
    occurred_at: dt.datetime | None = None  # None: when it arrived

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _iso_8601(cls, value: object, info: ValidationInfo) -> object:
        if value is None:
            return None
        example = "an ISO 8601 string with a UTC offset, e.g. 2024-05-01T12:00:00+02:00"
        if not isinstance(value, str) or len(value) > 64:
            raise ValueError(f"must be {example}")
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"must be {example}") from None
        if moment.utcoffset() is None:
            raise ValueError(f"has no UTC offset: must be {example}")
        now = (info.context or {}).get("now") or utcnow()
        if moment < EARLIEST:
            raise ValueError("must be after 2000-01-01")
        if moment > now + FUTURE_SLACK:
            minutes, clock = int(FUTURE_SLACK.total_seconds() // 60), f"{now.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%SZ}"
            raise ValueError(f"is more than {minutes} minutes ahead of the bot's clock ({clock}):"
                             " check the sender's clock and UTC offset")
        return moment.astimezone(dt.UTC)


class ErrorEvent(_Event):
    """An error the app hit, e.g. in its checkout API."""

    type: Literal["error"]
    source: Name
    message: Message
    context: dict[str, Any] = Field(default_factory=dict)

    @field_validator("context")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_context(value)
        return value


class SyncFailureEvent(_Event):
    """Something that did not reach another system, e.g. an order not synced to GoHighLevel."""

    type: Literal["sync_failure"]
    system: Name
    message: Message
    order_id: Id | None = None


class OrderEvent(_Event):
    """An order the app took itself: stored and pinged like a Stripe sale."""

    type: Literal["order"]
    id: Id  # the store's order id: required, it is what makes a resend a no-op
    amount: Amount
    currency: Currency
    product: Product
    customer_email: Email | None = None
    affiliate: Id | None = None


Event = Annotated[ErrorEvent | SyncFailureEvent | OrderEvent, Field(discriminator="type")]
_EVENT: Final = TypeAdapter(Event)


class Batch(BaseModel):
    """Several events, stored all or none."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    events: list[Event] = Field(min_length=1, max_length=MAX_EVENTS)


class BadEvents(ValueError):
    """The body is not a valid event or batch; `problems` name each bad field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid events: " + "; ".join(problems[:3]))
        self.problems = problems


def _check_context(value: dict[str, Any]) -> None:
    """Bounded depth (checked without recursion) and size, and only what jsonb stores."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_CONTEXT_DEPTH:
            raise ValueError(f"must nest at most {MAX_CONTEXT_DEPTH} levels deep")
        if isinstance(item, dict):
            stack.extend((k, depth) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, str):
            _storable(item)
    if len(json.dumps(value).encode()) > MAX_CONTEXT_BYTES:
        raise ValueError(f"must be at most {MAX_CONTEXT_BYTES} bytes as JSON")


def _finite(text: str) -> float:
    # json.loads turns 1e400 into inf, which jsonb cannot store; NaN/Infinity literals land here too.
    number = float(text)
    if not math.isfinite(number):
        raise ValueError("numbers must be finite")
    return number


def _clip(text: str) -> str:
    return text if len(text) <= MAX_PROBLEM_CHARS else text[:MAX_PROBLEM_CHARS] + "…"


def _problems(exc: ValidationError) -> list[str]:
    """'events[3].amount: Input should be …' per problem, the union tag left out of the path."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False)[:MAX_PROBLEMS]:
        parts: list[str] = []
        for index, part in enumerate(error["loc"]):
            if isinstance(part, int):
                parts.append(f"[{part}]")
            elif part in TAGS and (index == 0 or isinstance(error["loc"][index - 1], int)):
                continue  # the discriminated union's tag, not a field
            else:
                parts.append(("." if parts else "") + _clip(str(part)))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            parts.append(".type" if parts else "type")
            message = "must be one of " + ", ".join(TAGS)
        problems.append(f"{''.join(parts) or 'body'}: {_clip(message)}")
    return problems


def parse_events(body: bytes, *, now: dt.datetime) -> list[ErrorEvent | SyncFailureEvent | OrderEvent]:
    """One event or {"events": [...]}, fully validated; BadEvents names what is wrong."""
    try:
        raw = json.loads(body, parse_float=_finite, parse_constant=_finite)
    except RecursionError:
        raise BadEvents(["body: nested too deeply"]) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, _finite, over-long integers
        raise BadEvents([f"body: not valid JSON: {_clip(str(exc))}"]) from None
    if not isinstance(raw, dict):
        raise BadEvents(['body: must be a JSON object: one event, or {"events": [...]}'])
    context = {"now": now}
    try:
        if "events" in raw:
            return Batch.model_validate(raw, context=context).events
        return [_EVENT.validate_python(raw, context=context)]
    except ValidationError as exc:
        raise BadEvents(_problems(exc)) from None


def _order_submission(event: OrderEvent, *, now: dt.datetime) -> Submission:
    """An app order as the intake takes it: a sale known by its own ref, stored like a Stripe event. A $0 order is
    FREE, as a $0 Stripe checkout is: kept in webhook_logs, no order, no ping."""
    at = min(event.occurred_at or now, now)  # within FUTURE_SLACK ahead: an order is never dated after it arrived
    sale = PaymentEvent(kind=Kind.SALE if event.amount > 0 else Kind.FREE, event_id=event.id, event_type="order",
                        occurred_at=at, livemode=True, refs=(f"app_{event.id}",), amount=event.amount,
                        currency=event.currency, customer_email=event.customer_email,
                        product=event.product, affiliate=event.affiliate)
    payload = event.model_dump(mode="json") | {"occurred_at": at.isoformat()}
    return Submission(source="app", event_id=event.id, event_type="order", body=json.dumps(payload), event=sale)


async def _store(conn: asyncpg.Connection, event: ErrorEvent | SyncFailureEvent, *, now: dt.datetime) -> str:
    """Store one error or sync failure; return stored | duplicate."""
    at = event.occurred_at or now
    if isinstance(event, ErrorEvent):
        row = await app_events.insert(conn, kind="error", source=event.source, event_id=event.id,
                                      message=event.message, context=event.context, occurred_at=at, received_at=now)
    else:
        row = await app_events.insert(conn, kind="sync_failure", event_id=event.id, system=event.system,
                                      message=event.message, order_id=event.order_id, occurred_at=at,
                                      received_at=now)
    return "stored" if row is not None else "duplicate"


async def store_events(conn: asyncpg.Connection, events: list[Event], *, tz: ZoneInfo,
                       now: dt.datetime) -> tuple[dict[int, str], int]:
    """Store every event in the caller's transaction; return each one's status and the messages queued."""
    status: dict[int, str] = {}
    # App events in id order: concurrent requests take their unique-key locks in the same order.
    others = [(i, e) for i, e in enumerate(events) if not isinstance(e, OrderEvent)]
    for index, event in sorted(others, key=lambda pair: pair[1].id or ""):
        status[index] = await _store(conn, event, now=now)
    orders = [(i, e) for i, e in enumerate(events) if isinstance(e, OrderEvent)]
    # Orders go through the Stripe intake's one rule set, as one batch. ERROR: kept in webhook_logs
    # with its reason, like a Stripe event that could not be applied.
    results = await ingest_batch(conn, [_order_submission(e, now=now) for _, e in orders],
                                 tz=tz, now=now) if orders else []
    for (index, order), result in zip(orders, results, strict=True):
        free = order.amount == 0 and result.outcome is Outcome.PROCESSED  # logged, but no order and no ping
        status[index] = "ignored" if free else _STATUS[result.outcome]
    return status, sum(r.queued for r in results)


