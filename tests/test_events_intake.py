"""POST /webhooks/events through the real route: bearer auth, validation, storage once, order pings once."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientResponse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queries import app_events
from tests.blockkit import assert_valid_message
from tests.conftest import Bot, FakeClock, start_bot
from tests.fakes import FakeSlack

TOKEN = "intake-test-token-6f1c-long-enough"
SQL = "'; DROP TABLE orders; --"


@pytest.fixture
async def intake(dsn: str, fake_slack: FakeSlack) -> AsyncIterator[Bot]:
    """The bot with INTAKE_TOKEN configured, delivery driven by the test."""
    async with start_bot(dsn, fake_slack, INTAKE_TOKEN=TOKEN) as running_bot:
        yield running_bot


async def post(bot: Bot, body: Any, *, headers: dict[str, str] | None = None) -> ClientResponse:
    """POST a JSON value (or raw bytes) with the right token and content type unless `headers` say else."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    hdrs = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", **(headers or {})}
    return await bot.client.post("/webhooks/events", data=data, headers=hdrs)


async def stored(bot: Bot) -> dict[str, int]:
    """Row counts of every table the route may write to."""
    tables = ("app_events", "webhook_logs", "orders", "outbox")
    return {t: await bot.deps.pool.fetchval(f"SELECT count(*) FROM {t}") for t in tables}


NOTHING = {"app_events": 0, "webhook_logs": 0, "orders": 0, "outbox": 0}


def error_event(**patch: Any) -> dict[str, Any]:
    """A valid error event."""
    return {"type": "error", "id": "err-1", "source": "checkout-api", "message": "card form crashed",
            "occurred_at": "2024-05-01T12:00:00+02:00", "context": {"path": "/checkout", "status": 502}
            } | patch


def sync_event(**patch: Any) -> dict[str, Any]:
    """A valid sync_failure event."""
    return {"type": "sync_failure", "id": "sync-1", "system": "gohighlevel",
            "message": "contact upsert timed out", "order_id": "A-1001"} | patch


def order_event(**patch: Any) -> dict[str, Any]:
    """A valid order event (no occurred_at: it happened now)."""
    return {"type": "order", "id": "A-1001", "amount": 4900, "currency": "usd", "product": "Pro Course",
            "customer_email": "jane@example.com", "affiliate": "aff-7"} | patch


def without(event: dict[str, Any], key: str) -> dict[str, Any]:
    """The event with one field removed."""
    return {k: v for k, v in event.items() if k != key}


async def test_route_answers_503_when_intake_token_is_not_configured(bot: Bot) -> None:
    """With no INTAKE_TOKEN the route is closed: 503 naming the variable, nothing stored."""
    resp = await post(bot, error_event())
    assert resp.status == 503
    assert (await resp.json())["error"] == "INTAKE_TOKEN is not configured"
    assert await stored(bot) == NOTHING


@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer ", "Bearer wrong-token", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}",
    TOKEN, f"Basic {TOKEN}", f"Token {TOKEN}",
])
async def test_missing_or_wrong_bearer_is_401_and_stores_nothing(intake: Bot, authorization: str | None) -> None:
    """Anything but the exact bearer token is refused with 401 and a Bearer challenge."""
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    data = json.dumps(error_event()).encode()
    resp = await intake.client.post("/webhooks/events", data=data, headers=headers)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert "error" in await resp.json()
    assert await stored(intake) == NOTHING


async def test_auth_is_checked_before_the_body_is_looked_at(intake: Bot) -> None:
    """A wrong token with a malformed body or content type is a 401, not a 400 or 415."""
    bad = {"Authorization": "Bearer nope"}
    assert (await post(intake, b"{not json", headers=bad)).status == 401
    assert (await post(intake, b"x", headers=bad | {"Content-Type": "text/plain"})).status == 401


async def test_bearer_scheme_is_case_insensitive(intake: Bot) -> None:
    """RFC 7235 auth schemes are case-insensitive: `bearer <token>` is accepted."""
    resp = await post(intake, error_event(), headers={"Authorization": f"bearer {TOKEN}"})
    assert resp.status == 200


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "application/octet-stream", "application/jsonx"])
async def test_non_json_content_type_is_415(intake: Bot, content_type: str) -> None:
    """Only application/json bodies are read."""
    resp = await post(intake, error_event(), headers={"Content-Type": content_type})
    assert resp.status == 415
    assert await stored(intake) == NOTHING


async def test_json_content_type_with_charset_is_accepted(intake: Bot) -> None:
    """`application/json; charset=utf-8` is JSON."""
    resp = await post(intake, error_event(), headers={"Content-Type": "application/json; charset=utf-8"})
    assert resp.status == 200


async def test_body_over_one_mebibyte_is_413(intake: Bot) -> None:
    """aiohttp's client_max_size refuses bodies over 1 MiB before they are parsed."""
    resp = await post(intake, error_event(message="x" * (1024 * 1024 + 1)))
    assert resp.status == 413
    assert "Maximum request body size" in (await resp.json())["error"]
    assert await stored(intake) == NOTHING


FUTURE = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).isoformat()
AN_HOUR_AHEAD = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()  # a clock or offset off by an hour
DEEP: dict[str, Any] = {}
_node = DEEP
for _ in range(12):
    _node["a"] = {}
    _node = _node["a"]

INVALID = [
    ("malformed_json", b'{"type": "error",', "body: not valid JSON"),
    ("not_utf8", b"\xff\xfe\x00", "body: not valid JSON"),
    ("infinite_number", b'{"type":"error","source":"s","message":"m","context":{"n":1e400}}', "finite"),
    ("nan_literal", b'{"type":"error","source":"s","message":"m","context":{"n":NaN}}', "finite"),
    ("too_deep_json", b"[" * 100_000 + b"]" * 100_000, "body: nested too deeply"),
    ("array_body", [error_event()], "body: must be a JSON object"),
    ("string_body", "error", "body: must be a JSON object"),
    ("unknown_type", error_event(type="refund"), "type: must be one of error, sync_failure, order"),
    ("missing_type", without(error_event(), "type"), "type: must be one of"),
    ("missing_message", without(error_event(), "message"), "message: Field required"),
    ("missing_source", without(error_event(), "source"), "source: Field required"),
    ("missing_system", without(sync_event(), "system"), "system: Field required"),
    ("missing_order_id", without(order_event(), "id"), "id: Field required"),
    ("missing_amount", without(order_event(), "amount"), "amount: Field required"),
    ("negative_amount", order_event(amount=-1), "amount: Input should be greater than or equal to 0"),
    ("fractional_amount", order_event(amount=49.5), "amount: Input should be a valid integer"),
    ("string_amount", order_event(amount="4900"), "amount: Input should be a valid integer"),
    ("boolean_amount", order_event(amount=True), "amount: Input should be a valid integer"),
    ("huge_amount", order_event(amount=10**20), "amount: Input should be less than or equal to"),
    ("bad_currency", order_event(currency="dollars"), "currency: String should match pattern"),
    ("numeric_currency", order_event(currency="840"), "currency: String should match pattern"),
    ("bad_email", order_event(customer_email="jane"), "customer_email: String should match pattern"),
    ("bad_timestamp", error_event(occurred_at="yesterday"), "occurred_at: must be an ISO 8601 string"),
    ("epoch_timestamp", error_event(occurred_at=1714557600), "occurred_at: must be an ISO 8601 string"),
    ("naive_timestamp", error_event(occurred_at="2024-05-01T12:00:00"), "occurred_at: has no UTC offset"),
    ("future_timestamp", error_event(occurred_at=FUTURE), "occurred_at: is more than 5 minutes ahead"),
    ("hour_ahead_timestamp", sync_event(occurred_at=AN_HOUR_AHEAD), "occurred_at: is more than 5 minutes ahead"),
    ("hour_ahead_order", order_event(occurred_at=AN_HOUR_AHEAD), "occurred_at: is more than 5 minutes ahead"),
    ("ancient_timestamp", error_event(occurred_at="0001-01-01T00:00:00+14:00"), "occurred_at: must be after"),
    ("extra_field", error_event(severity="high"), "severity: Extra inputs are not permitted"),
    ("context_on_sync_failure", sync_event(context={}), "context: Extra inputs are not permitted"),
    ("extra_batch_field", {"events": [error_event()], "sent_by": "x"}, "sent_by: Extra inputs"),
    ("blank_message", error_event(message="   "), "message: must not be blank"),
    ("nul_in_message", error_event(message="a\x00b"), "message: must not contain NUL"),
    ("nul_in_context", error_event(context={"k": "a\x00b"}), "context: must not contain NUL"),
    ("surrogate_in_context", b'{"type":"error","source":"s","message":"m","context":{"k":"\\ud800"}}',
     "context: must be valid Unicode"),
    ("surrogate_in_message", b'{"type":"error","source":"s","message":"\\udfff"}', "message:"),
    ("context_not_object", error_event(context=[1, 2]), "context: Input should be a valid dictionary"),
    ("context_too_deep", error_event(context=DEEP), "context: must nest at most 8 levels"),
    ("context_too_big", error_event(context={"log": "x" * 9000}), "context: must be at most 8192 bytes"),
    ("message_too_long", error_event(message="x" * 4001), "message: String should have at most 4000"),
    ("id_not_string", error_event(id=7), "id: Input should be a valid string"),
    ("events_not_list", {"events": error_event()}, "events: Input should be a valid list"),
    ("empty_batch", {"events": []}, "events: List should have at least 1 item"),
    ("batch_of_101", {"events": [error_event(id=f"e{i}") for i in range(101)]},
     "events: List should have at most 100 items"),
    ("one_bad_in_batch", {"events": [error_event(), order_event(), order_event(id="A-2", amount=-5)]},
     "events[2].amount: Input should be greater than or equal to 0"),
]


@pytest.mark.parametrize(("body", "problem"), [case[1:] for case in INVALID], ids=[case[0] for case in INVALID])
async def test_invalid_body_is_400_naming_the_problem_and_stores_nothing(
        intake: Bot, body: Any, problem: str) -> None:
    """Bad JSON, types, fields, values, timestamps and batch sizes get a 400 that names the problem."""
    resp = await post(intake, body)
    assert resp.status == 400
    answer = await resp.json()
    assert any(problem in p for p in answer["problems"]), answer
    assert answer["error"].startswith("invalid events: ")
    assert await stored(intake) == NOTHING
    await intake.drain()
    assert intake.slack_api.posted() == []


@pytest.mark.parametrize("body", [
    error_event(message="A" * 900_000),
    error_event(type="B" * 900_000),
    error_event(**{"C" * 900_000: 1}),
    {"events": [error_event(id=f"e{i}", message="D" * 5000) for i in range(150)]},
], ids=["long_message", "long_type", "long_field_name", "long_batch"])
async def test_huge_invalid_input_is_not_echoed_back(intake: Bot, body: Any) -> None:
    """A 400 about a huge value stays small: problems quote at most a short clip of the input."""
    resp = await post(intake, body)
    assert resp.status == 400
    assert len(await resp.read()) < 3000


async def test_error_event_is_stored_with_its_fields(intake: Bot) -> None:
    """An error is stored once with source, message, context and its time in UTC."""
    resp = await post(intake, error_event())
    assert resp.status == 200
    assert await resp.json() == {"received": 1, "results": [{"type": "error", "id": "err-1",
                                                             "status": "stored"}]}
    row = await intake.deps.pool.fetchrow("SELECT * FROM app_events")
    assert (row["kind"], row["source"], row["event_id"], row["message"], row["system"]) == (
        "error", "checkout-api", "err-1", "card form crashed", None)
    assert row["context"] == {"path": "/checkout", "status": 502}
    assert row["occurred_at"] == dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)
    assert await stored(intake) == NOTHING | {"app_events": 1}


async def test_sync_failure_is_stored_with_system_and_order(intake: Bot) -> None:
    """A sync failure keeps the system it did not reach and the order it was about."""
    before = dt.datetime.now(dt.UTC)
    resp = await post(intake, sync_event())
    assert resp.status == 200
    row = await intake.deps.pool.fetchrow("SELECT * FROM app_events")
    assert (row["kind"], row["source"], row["system"], row["order_id"], row["context"]) == (
        "sync_failure", "app", "gohighlevel", "A-1001", {})
    assert before <= row["occurred_at"] <= dt.datetime.now(dt.UTC)  # no occurred_at: when it arrived


async def test_resent_event_id_is_a_duplicate_no_op(intake: Bot) -> None:
    """The same client id twice stores one row; the second answer says duplicate."""
    await post(intake, error_event())
    resp = await post(intake, error_event(message="changed on retry"))
    assert resp.status == 200
    assert (await resp.json())["results"] == [{"type": "error", "id": "err-1", "status": "duplicate"}]
    assert await intake.deps.pool.fetchval("SELECT message FROM app_events") == "card form crashed"


async def test_events_without_an_id_are_always_new(intake: Bot) -> None:
    """Without an id nothing identifies a retry, so identical requests are stored each time."""
    for _ in range(2):
        resp = await post(intake, without(sync_event(), "id"))
        assert (await resp.json())["results"] == [{"type": "sync_failure", "id": None, "status": "stored"}]
    assert await intake.deps.pool.fetchval("SELECT count(*) FROM app_events WHERE event_id IS NULL") == 2


async def test_order_event_becomes_a_completed_order_and_pings_once(intake: Bot) -> None:
    """An order is stored like a Stripe sale: one completed order, one webhook log, one valid ping."""
    resp = await post(intake, order_event())
    assert resp.status == 200
    assert (await resp.json())["results"] == [{"type": "order", "id": "A-1001", "status": "stored"}]
    order = await intake.deps.pool.fetchrow("SELECT * FROM orders")
    assert (order["id"], order["payment_status"], order["amount_total"], order["currency"]) == (
        "app_A-1001", "completed", 4900, "USD")
    assert (order["product_name"], order["customer_email"], order["affiliate_id"]) == (
        "Pro Course", "jane@example.com", "aff-7")
    log = await intake.deps.pool.fetchrow("SELECT source, event_id, event_type, status FROM webhook_logs")
    assert tuple(log) == ("app", "A-1001", "order", "processed")
    await intake.drain()
    posts = intake.slack_api.posted()
    assert len(posts) == 1
    assert intake.slack_api.messages[0]["channel_id"] == "C0SALES"  # #sales-notifications, posted by its id
    assert "New Sale" in posts[0]["text"] and "$49.00" in posts[0]["text"]
    assert_valid_message(posts[0])


async def test_resent_order_is_a_duplicate_and_pings_no_more(intake: Bot) -> None:
    """The same order id again changes nothing: still one order and one ping."""
    await post(intake, order_event())
    await intake.drain()
    resp = await post(intake, order_event(amount=1))
    assert (await resp.json())["results"] == [{"type": "order", "id": "A-1001", "status": "duplicate"}]
    await intake.drain()
    assert len(intake.slack_api.posted()) == 1
    assert await intake.deps.pool.fetchval("SELECT amount_total FROM orders") == 4900
    assert await stored(intake) == {"app_events": 0, "webhook_logs": 1, "orders": 1, "outbox": 1}


async def test_batch_is_stored_and_answered_in_request_order(intake: Bot) -> None:
    """A mixed batch stores every event and reports each one, duplicates within it included."""
    events = [order_event(id="B-2"), error_event(), sync_event(), error_event(message="again"),
              order_event(id="A-1")]
    resp = await post(intake, {"events": events})
    assert resp.status == 200
    answer = await resp.json()
    assert answer["received"] == 5
    assert [(r["type"], r["id"], r["status"]) for r in answer["results"]] == [
        ("order", "B-2", "stored"), ("error", "err-1", "stored"), ("sync_failure", "sync-1", "stored"),
        ("error", "err-1", "duplicate"), ("order", "A-1", "stored")]
    assert await stored(intake) == {"app_events": 2, "webhook_logs": 2, "orders": 2, "outbox": 2}
    await intake.drain()
    # Two sales queued together may be coalesced into one "2 new sales" message: either way, both covered.
    texts = [p["text"] for p in intake.slack_api.posted()]
    assert len(texts) == 2 or (len(texts) == 1 and "2 new sales" in texts[0]), texts


async def test_concurrent_resends_store_each_event_once(intake: Bot) -> None:
    """The same batch sent 6 times at once, half in reverse order: each id stored once, no deadlock, 2 sales."""
    batch = [order_event(id="A-1"), error_event(id="e-1"), sync_event(id="s-1"), order_event(id="B-2")]
    bodies = [{"events": batch if n % 2 else batch[::-1]} for n in range(6)]
    responses = await asyncio.gather(*(post(intake, body) for body in bodies))
    assert [r.status for r in responses] == [200] * 6
    statuses: dict[str, list[str]] = {}
    for resp in responses:
        for result in (await resp.json())["results"]:
            statuses.setdefault(result["id"], []).append(result["status"])
    assert {i: sorted(s) for i, s in statuses.items()} == dict.fromkeys(
        ("A-1", "e-1", "s-1", "B-2"), ["duplicate"] * 5 + ["stored"])
    assert await stored(intake) == {"app_events": 2, "webhook_logs": 2, "orders": 2, "outbox": 2}


async def test_sql_looking_strings_are_stored_verbatim(intake: Bot) -> None:
    """Values are parameters, never SQL: injection-looking text is stored exactly as sent."""
    await post(intake, {"events": [
        error_event(id=SQL, source=SQL, message=SQL, context={SQL: SQL}),
        order_event(id=SQL, product=SQL, affiliate=SQL)]})
    row = await intake.deps.pool.fetchrow("SELECT event_id, source, message, context FROM app_events")
    assert tuple(row) == (SQL, SQL, SQL, {SQL: SQL})
    order = await intake.deps.pool.fetchrow("SELECT id, product_name, affiliate_id FROM orders")
    assert tuple(order) == (f"app_{SQL}", SQL, SQL)
    await intake.drain()
    assert_valid_message(intake.slack_api.posted()[0])


async def test_count_and_recent_go_by_when_events_were_received(dsn: str, fake_slack: FakeSlack) -> None:
    """count_by_kind and recent see what arrived in [start, end), newest arrival first, whatever time the sender
    gave it: failures reported late count when they arrive, and history keeps the sender's time."""
    at = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
    clock = FakeClock(at)
    async with start_bot(dsn, fake_slack, clock=clock, INTAKE_TOKEN=TOKEN) as bot:
        await post(bot, error_event(id="early", occurred_at="2024-05-01T11:00:00Z"))
        clock.advance(hours=1)  # 13:00: a report of something from days ago, and one dated a minute ahead
        resp = await post(bot, {"events": [error_event(id="late", occurred_at="2024-04-28T09:00:00Z"),
                                           error_event(id="ahead", occurred_at="2024-05-01T13:01:00Z"),
                                           sync_event(occurred_at="2024-04-28T09:00:00Z")]})
        assert resp.status == 200, await resp.text()
        pool, hour = bot.deps.pool, dt.timedelta(hours=1)
        assert await app_events.count_by_kind(pool, start=at + hour / 2, end=at + 2 * hour) == {
            "error": 2, "sync_failure": 1}
        # By the sender's times this window holds "early"; it arrived after it.
        assert await app_events.count_by_kind(pool, start=at - 2 * hour, end=at) == {"error": 0, "sync_failure": 0}
        latest = await app_events.recent(pool, kind="error", start=at, end=at + 2 * hour, limit=10)
        assert [e.event_id for e in latest] == ["late", "ahead", "early"]
        assert (latest[0].occurred_at, latest[0].received_at) == (dt.datetime(2024, 4, 28, 9, tzinfo=dt.UTC),
                                                                  at + hour)
        assert latest[2].context == {"path": "/checkout", "status": 502}


async def test_an_order_dated_a_little_ahead_is_dated_when_it_arrived(intake: Bot) -> None:
    """A clock a minute or two fast is drift, and accepted; but no order is dated after it arrived (the
    no-sales alert and "last order" read the newest order's time)."""
    before = dt.datetime.now(dt.UTC)
    ahead = before + dt.timedelta(minutes=4)
    resp = await post(intake, order_event(occurred_at=ahead.isoformat()))
    assert (await resp.json())["results"][0]["status"] == "stored"
    created = await intake.deps.pool.fetchval("SELECT created_at FROM orders")
    assert before <= created <= dt.datetime.now(dt.UTC)


async def test_zero_amount_order_is_no_sale(intake: Bot) -> None:
    """A $0 order (a free seat, a 100% coupon) is no sale, as a $0 Stripe checkout is not: answered `ignored`,
    kept in webhook_logs, no order and no ping; a resend is a duplicate."""
    resp = await post(intake, order_event(id="Z-1", amount=0))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["results"] == [{"type": "order", "id": "Z-1", "status": "ignored"}]
    resp = await post(intake, order_event(id="Z-1", amount=0))
    assert (await resp.json())["results"][0]["status"] == "duplicate"
    assert await stored(intake) == {"app_events": 0, "webhook_logs": 1, "orders": 0, "outbox": 0}
    await intake.drain()
    assert intake.slack_api.posted() == []


# Arbitrary JSON, plus events that are valid or one change away from valid (a field replaced by any JSON
# value, or dropped), so most examples reach the validators' edges and the database, not just "not an object".
NASTY = st.sampled_from(["\x00", "\ud800", " ", SQL, "<!channel> *x* `y`", "9" * 300, "1e400"])
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=20) | NASTY)
JSON_VALUES = st.recursive(
    SCALARS, lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8) | NASTY,
                                                                                 children, max_size=4),
    max_leaves=12)
TEXTS = st.text(min_size=1, max_size=40) | NASTY
TIMES = st.datetimes(min_value=dt.datetime(1999, 12, 31), max_value=dt.datetime(2026, 1, 1),
                     timezones=st.timezones()).map(dt.datetime.isoformat)
VALID_EVENTS = (
    st.fixed_dictionaries({"type": st.just("error"), "source": TEXTS, "message": TEXTS},
                          optional={"id": TEXTS, "occurred_at": TIMES,
                                    "context": st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=4)})
    | st.fixed_dictionaries({"type": st.just("sync_failure"), "system": TEXTS, "message": TEXTS},
                            optional={"id": TEXTS, "order_id": TEXTS, "occurred_at": TIMES})
    | st.fixed_dictionaries(
        {"type": st.just("order"), "id": TEXTS, "amount": st.integers(0, 10**9),
         "currency": st.sampled_from(["usd", "EUR", "jpy", "KWD", "xts", "zzz"]), "product": TEXTS},
        optional={"customer_email": st.emails() | TEXTS, "affiliate": TEXTS, "occurred_at": TIMES}))
FIELDS = ("type", "id", "source", "system", "message", "order_id", "context", "occurred_at", "amount",
          "currency", "product", "customer_email", "affiliate", "extra")


def one_change(event: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """The event with one field set to any JSON value, or one field dropped."""
    replaced = st.tuples(st.sampled_from(FIELDS), JSON_VALUES).map(lambda kv: event | {kv[0]: kv[1]})
    return replaced | st.sampled_from(sorted(event)).map(lambda key: without(event, key))


EVENTS = VALID_EVENTS | VALID_EVENTS.flatmap(one_change)
BODIES = (JSON_VALUES | EVENTS
          | st.lists(VALID_EVENTS, min_size=1, max_size=10).map(lambda events: {"events": events})
          | st.lists(EVENTS | JSON_VALUES, max_size=40).map(lambda events: {"events": events}))


async def test_arbitrary_json_bodies_never_get_a_5xx(intake: Bot) -> None:
    """Whatever JSON arrives, the answer is 200 or a 4xx, and the bot keeps answering."""
    loop = asyncio.get_running_loop()

    async def status_of(body: Any) -> int:
        resp = await post(intake, json.dumps(body).encode())
        await resp.read()
        return resp.status

    # Hypothesis drives a sync function, so it runs in a thread and sends each request to this test's
    # loop, where the app and its pool live: shrinking and failure reports work as usual.
    @settings(max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(body=BODIES)
    def check(body: Any) -> None:
        status = asyncio.run_coroutine_threadsafe(status_of(body), loop).result(timeout=30)
        assert status == 200 or 400 <= status < 500, (status, body)

    await asyncio.to_thread(check)
    assert (await post(intake, error_event(id="after-fuzz"))).status == 200
