"""A fake Stripe API on 127.0.0.1: list endpoints with Stripe's filters, cursors and faults.

Serves GET /v1/events (`types[]`, `created[gte|gt|lte|lt]`, `starting_after`, `ending_before`, `limit`),
/v1/checkout/sessions, /v1/payment_intents (with `expand[]=data.latest_charge`) and /v1/invoice_payments,
newest first as Stripe lists; single charges, payment intents and subscriptions with `expand[]` paths (balance
transactions, refunds, Discounts), coupons, prices (`tiers` only with `expand[]=tiers`), disputes by `charge`,
refunds by `charge` or `payment_intent` (only the parameters Stripe's list takes, `expand[]` under `data.`), and
/v1/account; checks the `Authorization: Bearer sk_…|rk_…` header; answers 429/500/403 on demand.

GET /v1/subscriptions lists `subscriptions` as Stripe does (`status`, `expand[]` under `data.`, four levels at most).

A charge's refunds are the `refunds.data` of its object here, in any order; served, a Charge embeds its 10 newest
(`has_more` when it has more), and GET /v1/refunds lists them all, newest first, as Stripe does.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import MultiMapping

API_KEY = "rk_test_salespulse_read_only"
MAX_EVENT_TYPES = 20  # GET /v1/events `types[]`: "An array of up to 20 strings" (https://docs.stripe.com/api/events/list)
EMBEDDED_REFUNDS = 10  # a Charge embeds its 10 newest refunds (https://docs.stripe.com/api/refunds/list)
# What GET /v1/refunds takes (https://docs.stripe.com/api/refunds/list); `created` also as created[gt|gte|lt|lte].
REFUND_LIST_PARAMS = frozenset({"charge", "payment_intent", "ending_before", "starting_after", "limit", "expand[]"})


@dataclass
class Request:
    """One request the fake received."""

    path: str
    params: list[tuple[str, str]]
    authorization: str | None
    method: str
    answered: int

    def param(self, name: str) -> str | None:
        """The first value of a query parameter."""
        return next((v for k, v in self.params if k == name), None)


@dataclass
class Fault:
    """A canned answer for the next request."""

    status: int
    retry_after: str | None = None
    delay: float = 0.0


def _error(status: int, message: str, *, type_: str = "invalid_request_error", code: str | None = None,
           headers: dict[str, str] | None = None) -> web.Response:
    body = {"error": {"type": type_, "message": message, **({"code": code} if code else {})}}
    return web.json_response(body, status=status, headers=headers)


@dataclass
class FakeStripe:
    """Stripe's list endpoints over in-memory objects, newest first, with cursors and faults."""

    api_keys: set[str] = field(default_factory=lambda: {API_KEY})
    events: list[dict[str, Any]] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)
    intents: list[dict[str, Any]] = field(default_factory=list)
    invoice_payments: list[dict[str, Any]] = field(default_factory=list)  # basil's InvoicePayment objects
    endpoints: list[dict[str, Any]] = field(default_factory=list)  # webhook endpoint objects
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)  # for expand[]=data.latest_charge
    balance_transactions: dict[str, dict[str, Any]] = field(default_factory=dict)  # txn_… for expand[]
    disputes: list[dict[str, Any]] = field(default_factory=list)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)  # sub_… with Discount ids, as Stripe
    discounts: dict[str, dict[str, Any]] = field(default_factory=dict)  # di_… for expand[]=discounts
    coupons: dict[str, dict[str, Any]] = field(default_factory=dict)  # GET /v1/coupons/{id}
    prices: dict[str, dict[str, Any]] = field(default_factory=dict)  # GET /v1/prices/{id}, with their `tiers`
    account: dict[str, Any] = field(default_factory=lambda: {"id": "acct_1", "object": "account",
                                                             "default_currency": "usd"})
    faults: list[Fault] = field(default_factory=list)
    forbidden: set[str] = field(default_factory=set)  # paths a restricted key may not read (403)
    requests: list[Request] = field(default_factory=list)
    url: str = ""
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    _order: dict[str, int] = field(default_factory=dict)  # id → insertion order, Stripe's tie-break
    _runner: web.AppRunner | None = None

    def add_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """Make an event visible to GET /v1/events (the Events API keeps it 30 days)."""
        self._order[event["id"]] = next(self._seq)
        self.events.append(event)
        return event

    def fail_next(self, count: int, *, status: int = 500, retry_after: str | None = None,
                  delay: float = 0.0) -> None:
        """Make the next `count` requests fail this way."""
        self.faults.extend(Fault(status, retry_after, delay) for _ in range(count))

    def served(self, path: str = "/v1/events") -> list[Request]:
        """The successful requests to `path`."""
        return [r for r in self.requests if r.path == path and r.answered == 200]

    async def start(self) -> FakeStripe:
        """Listen on an ephemeral 127.0.0.1 port; `url` is the STRIPE_API_URL to configure."""
        app = web.Application()
        app.router.add_route("*", "/v1/events", self._events)
        app.router.add_route("*", "/v1/checkout/sessions", self._sessions)
        app.router.add_route("*", "/v1/payment_intents", self._intents)
        app.router.add_route("*", "/v1/invoice_payments", self._invoice_payments)
        app.router.add_route("*", "/v1/webhook_endpoints", self._endpoints)
        app.router.add_route("*", "/v1/disputes", self._disputes)
        app.router.add_route("*", "/v1/refunds", self._refunds)
        app.router.add_route("*", "/v1/charges/{id}", self._object)
        app.router.add_route("*", "/v1/payment_intents/{id}", self._object)
        app.router.add_route("*", "/v1/account", self._object)
        app.router.add_route("*", "/v1/subscriptions/{id}", self._object)
        app.router.add_route("*", "/v1/subscriptions", self._subscription_list)
        app.router.add_route("*", "/v1/coupons/{id}", self._object)
        app.router.add_route("*", "/v1/prices/{id}", self._object)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # aiohttp has no public port
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeStripe:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _events(self, request: web.Request) -> web.Response:
        too_many = len(request.query.getall("types[]", [])) > MAX_EVENT_TYPES
        response = await self._gate(request) or (
            _error(400, f"types: at most {MAX_EVENT_TYPES} event types", code="parameter_invalid") if too_many
            else self._list(request.query, self.events, "event"))
        self._record(request, response)
        return response

    async def _sessions(self, request: web.Request) -> web.Response:
        return await self._serve(request, self.sessions, object_name="checkout.session")

    async def _intents(self, request: web.Request) -> web.Response:
        return await self._serve(request, self.intents, object_name="payment_intent")

    async def _invoice_payments(self, request: web.Request) -> web.Response:
        return await self._serve(request, self.invoice_payments, object_name="invoice_payment")

    async def _endpoints(self, request: web.Request) -> web.Response:
        return await self._serve(request, self.endpoints, object_name="webhook_endpoint")

    async def _disputes(self, request: web.Request) -> web.Response:
        return await self._serve(request, self.disputes, object_name="dispute")

    async def _refunds(self, request: web.Request) -> web.Response:
        response = await self._gate(request) or self._refund_list(request.query)
        self._record(request, response)
        return response

    def _refund_list(self, query: MultiMapping[str]) -> web.Response:
        """GET /v1/refunds as Stripe answers it: an unknown parameter, a limit out of 1–100 or an expansion outside
        `data.` is a 400; every refund of the charge (or PaymentIntent), newest first, after the cursor."""
        if unknown := sorted({k for k in query if k not in REFUND_LIST_PARAMS and not _created_bound(k)}):
            return _error(400, f"Received unknown parameter: {unknown[0]}", code="parameter_unknown")
        limit = query.get("limit", "10")
        if not limit.isdigit() or not 1 <= int(limit) <= 100:
            return _error(400, f"Invalid integer: {limit}: between 1 and 100", code="parameter_invalid_integer")
        expand = query.getall("expand[]", [])
        if bad := [e for e in expand if not e.startswith("data.")]:
            return _error(400, f"This property cannot be expanded ({bad[0]}).", code="parameter_invalid")
        refunds = [r for c in self.charges.values() for r in _newest_first(c) if _matches(r, query)
                   and (query.get("payment_intent") is None or r.get("payment_intent") == query["payment_intent"])]
        ids, count = [r["id"] for r in refunds], int(limit)
        cursor = query.get("starting_after") or query.get("ending_before")
        if cursor is not None and cursor not in ids:
            return _error(404, f"No such refund: '{cursor}'", code="resource_missing")
        if query.get("starting_after") is not None:
            refunds = refunds[ids.index(query["starting_after"]) + 1:]
            page = refunds[:count]
        elif query.get("ending_before") is not None:  # the newer ones, the page nearest the cursor
            refunds = refunds[:ids.index(query["ending_before"])]
            page = refunds[-count:]
        else:
            page = refunds[:count]
        for path in expand:
            page = self._expand_path(page, path.split(".")[1:])
        return web.json_response({"object": "list", "url": "/v1/refunds", "has_more": len(refunds) > len(page),
                                  "data": page})

    async def _subscription_list(self, request: web.Request) -> web.Response:
        response = await self._gate(request) or self._subscriptions_listed(request.query)
        self._record(request, response)
        return response

    def _subscriptions_listed(self, query: MultiMapping[str]) -> web.Response:
        """GET /v1/subscriptions as Stripe answers it (https://docs.stripe.com/api/subscriptions/list): without
        `status` every subscription but the canceled ones, `all` every one, `ended` the canceled and
        incomplete_expired ones, else those of that status; newest first (of one second, the one added later
        first), `limit` 1–100, `starting_after`; `expand[]` only under `data.` and at most four levels deep
        (https://docs.stripe.com/expand), else a 400."""
        expand = query.getall("expand[]", [])
        if bad := [e for e in expand if not e.startswith("data.")]:
            return _error(400, f"This property cannot be expanded ({bad[0]}).", code="parameter_invalid")
        if [e for e in expand if e.count(".") > 3]:
            return _error(400, "You cannot expand more than 4 levels of a property.", code="parameter_invalid")
        limit = query.get("limit", "10")
        if not limit.isdigit() or not 1 <= int(limit) <= 100:
            return _error(400, f"Invalid integer: {limit}: between 1 and 100", code="parameter_invalid_integer")
        status, order = query.get("status"), {sub_id: i for i, sub_id in enumerate(self.subscriptions)}
        statuses = {None: None, "all": None, "ended": {"canceled", "incomplete_expired"}}.get(status, {status})
        subs = [s for s in self.subscriptions.values() if (s.get("status") != "canceled" if status is None else
                                                          statuses is None or s.get("status") in statuses)]
        subs.sort(key=lambda s: (s["created"], order[s["id"]]), reverse=True)
        if (after := query.get("starting_after")) is not None:
            if after not in self.subscriptions:
                return _error(404, f"No such subscription: '{after}'", code="resource_missing")
            cursor = (self.subscriptions[after]["created"], order[after])
            subs = [s for s in subs if (s["created"], order[s["id"]]) < cursor]
        page: Any = subs[:int(limit)]
        for path in expand:
            page = self._expand_path(page, path.split(".")[1:])
        return web.json_response({"object": "list", "url": "/v1/subscriptions", "has_more": len(subs) > int(limit),
                                  "data": page})

    async def _object(self, request: web.Request) -> web.Response:
        response = await self._gate(request) or self._one(request)
        self._record(request, response)
        return response

    def _one(self, request: web.Request) -> web.Response:
        """GET one object, each `expand[]` path replacing ids by the objects they name, as Stripe does."""
        object_id = request.match_info.get("id", "")
        obj = self.account if request.path == "/v1/account" else \
            self.charges.get(object_id) or self.subscriptions.get(object_id) or self.coupons.get(object_id) or \
            self.prices.get(object_id) or next((i for i in self.intents if i["id"] == object_id), None)
        if obj is None:
            return _error(404, f"No such object: '{object_id}'", code="resource_missing")
        expand = request.query.getall("expand[]", [])
        for path in expand:
            obj = self._expand_path(obj, path.split("."))
        return web.json_response(_as_served(obj, expand))

    def _expand_path(self, value: Any, path: list[str]) -> Any:
        if not path:
            return value
        if isinstance(value, list):
            return [self._expand_path(v, path) for v in value]
        if not isinstance(value, dict) or path[0] not in value:
            return value
        inner = value[path[0]]
        if isinstance(inner, list):  # a list of ids (a Subscription's `discounts`)
            inner = [self._lookup(i) if isinstance(i, str) else i for i in inner]
        elif isinstance(inner, str):
            inner = self._lookup(inner)
        return {**value, path[0]: self._expand_path(inner, path[1:])}

    def _lookup(self, object_id: str) -> Any:
        """The object an expandable id names, or the id when the fake does not hold it."""
        return (self.balance_transactions.get(object_id) or self.charges.get(object_id)
                or self.discounts.get(object_id) or object_id)

    def _record(self, request: web.Request, response: web.StreamResponse) -> None:
        self.requests.append(Request(request.path, list(request.query.items()),
                                     request.headers.get("Authorization"), request.method, response.status))

    async def _serve(self, request: web.Request, items: list[dict[str, Any]], *, object_name: str) -> web.Response:
        response = await self._gate(request) or self._list(request.query, items, object_name)
        self._record(request, response)
        return response

    async def _gate(self, request: web.Request) -> web.Response | None:
        """The key check, method check, queued faults and forbidden paths; None when the request may pass."""
        auth = request.headers.get("Authorization", "")
        key = auth.removeprefix("Bearer ")
        if not auth.startswith("Bearer ") or not key.startswith(("sk_", "rk_")) or key not in self.api_keys:
            return _error(401, f"Invalid API Key provided: {key[:8]}***")
        if request.method != "GET":  # the bot must only ever read
            return _error(405, f"{request.method} is not allowed for a read-only client")
        if self.faults:
            fault = self.faults.pop(0)
            if fault.delay:
                await asyncio.sleep(fault.delay)
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
            if fault.status == 429:
                return _error(429, "Too many requests", type_="rate_limit_error", code="rate_limit",
                              headers=headers)
            return _error(fault.status, "An unknown error occurred", type_="api_error", headers=headers)
        if request.path in self.forbidden:
            return _error(403, f"The provided key '{key[:8]}***' does not have the required permissions")
        return None

    def _list(self, query: MultiMapping[str], items: list[dict[str, Any]], object_name: str) -> web.Response:
        chosen = [i for i in items if _matches(i, query)]
        chosen.sort(key=lambda i: (i["created"], self._order.get(i["id"], 0)), reverse=True)  # newest first
        limit = min(max(int(query.get("limit", "10")), 1), 100)
        if (after := query.get("starting_after")) is not None:
            if after not in {i["id"] for i in items}:
                return _error(404, f"No such {object_name}: '{after}'", code="resource_missing")
            # The cursor may be filtered out of `chosen` (another type): position by its place in time.
            page, more = self._after(chosen, items, after, limit)
        elif (before := query.get("ending_before")) is not None:
            if before not in {i["id"] for i in items}:
                return _error(404, f"No such {object_name}: '{before}'", code="resource_missing")
            newer = [i for i in chosen if self._key(i) > self._key(self._find(items, before))]
            page, more = newer[-limit:], len(newer) > limit  # the page nearest the cursor
        else:
            page, more = chosen[:limit], len(chosen) > limit
        return web.json_response({"object": "list", "url": "/v1/...", "has_more": more,
                                  "data": [self._expand(i, query) for i in page]})

    def _key(self, item: dict[str, Any]) -> tuple[int, int]:
        return item["created"], self._order.get(item["id"], 0)

    @staticmethod
    def _find(items: list[dict[str, Any]], item_id: str) -> dict[str, Any]:
        return next(i for i in items if i["id"] == item_id)

    def _after(self, chosen: list[dict[str, Any]], items: list[dict[str, Any]], after: str,
               limit: int) -> tuple[list[dict[str, Any]], bool]:
        older = [i for i in chosen if self._key(i) < self._key(self._find(items, after))]
        return older[:limit], len(older) > limit

    def _expand(self, item: dict[str, Any], query: MultiMapping[str]) -> dict[str, Any]:
        expand = query.getall("expand[]", [])
        if "data.latest_charge" in expand and isinstance(item.get("latest_charge"), str):
            charge = self.charges.get(item["latest_charge"], item["latest_charge"])
            if isinstance(charge, dict):  # its refunds only when asked for by name, as a single object's
                charge = _charge_refunds(charge, asked="data.latest_charge.refunds" in expand)
            return {**item, "latest_charge": charge}
        return item


def _as_served(obj: dict[str, Any], expand: list[str]) -> dict[str, Any]:
    """Since API version 2022-11-15 a Charge carries `refunds` only when they are asked for by name (`expand[]=refunds`,
    or `latest_charge.refunds` through its PaymentIntent): https://docs.stripe.com/changelog/2022-11-15. Asked for,
    they are its 10 newest, `has_more` telling of the rest (GET /v1/refunds?charge=…)."""
    if obj.get("object") == "charge":
        return _charge_refunds(obj, asked="refunds" in expand)
    if obj.get("object") == "price" and "tiers" not in expand:  # "not included by default" (Price.tiers)
        return {k: v for k, v in obj.items() if k != "tiers"}
    charge = obj.get("latest_charge")
    if isinstance(charge, dict):
        return {**obj, "latest_charge": _charge_refunds(charge, asked="latest_charge.refunds" in expand)}
    return obj


def _charge_refunds(charge: dict[str, Any], *, asked: bool) -> dict[str, Any]:
    if not asked:
        return {k: v for k, v in charge.items() if k != "refunds"}
    refunds = charge.get("refunds")
    if not isinstance(refunds, dict):
        return charge
    newest = _newest_first(charge)
    return {**charge, "refunds": {**refunds, "data": newest[:EMBEDDED_REFUNDS],
                                  "has_more": len(newest) > EMBEDDED_REFUNDS}}


def _newest_first(charge: dict[str, Any]) -> list[dict[str, Any]]:
    """A charge's refunds as Stripe lists them: newest first; of two made in the same second, the one added later."""
    data = (charge.get("refunds") or {}).get("data") or []
    return [r for _, r in sorted(enumerate(data), key=lambda p: (p[1].get("created", 0), p[0]), reverse=True)]


def _created_bound(name: str) -> bool:
    return name in {"created", "created[gt]", "created[gte]", "created[lt]", "created[lte]"}


def _matches(item: dict[str, Any], query: MultiMapping[str]) -> bool:
    """Stripe's list filters: `types[]` (events), `status`, and `created[op]`."""
    types = query.getall("types[]", [])
    if types and item.get("type") not in types:
        return False
    if (status := query.get("status")) is not None and item.get("status") != status:
        return False
    if (charge := query.get("charge")) is not None and item.get("charge") != charge:
        return False
    created = item["created"]
    bounds = {"gte": created.__ge__, "gt": created.__gt__, "lte": created.__le__, "lt": created.__lt__}
    return all(test(int(query[f"created[{op}]"])) for op, test in bounds.items() if f"created[{op}]" in query)
