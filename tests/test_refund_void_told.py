"""A refund's failure told before its order knows the customer, or before the sale itself, is told again once it
does: the waiting ping rewritten, or the posted one edited in place — as a late decline reason is.

The one_off story's PaymentIntent names nobody; its Charge (charge.succeeded, and charge.refunded) names Ada, and its
checkout session names her and the product. Refund objects carry no customer at all (fixtures3's Refund), so a
failure that comes first can only say "unknown" and that the sale is not known yet. Signed webhooks through the real
route in every API version and every order of arrival, the events built as tests/test_refund_voids.py builds them;
and the intake itself in one batch and a batch each.
"""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from bot.blocks.refund_pings import UNKNOWN_SALE_NOTE
from bot.intake.batch import ingest_batch
from tests.blockkit import assert_valid_message
from tests.conftest import Bot
from tests.test_failure_attempts import _subs, undone
from tests.test_intake_order_fixes import arrive
from tests.test_intake_versions import reset, story_event
from tests.test_refund_voids import AMOUNT, VERSIONS, at, charge_refunded, failure_events, refund_object, sale, t0

MASKED, PRODUCT, VOID = "ada***", "Async Python course", "❌ Refund failed"
UNKNOWN_CUSTOMER = "*Customer:*\\nunknown"
UTC = ZoneInfo("UTC")


def charge(version: str) -> dict[str, Any]:
    """The story's charge.succeeded: ties the Charge to its PaymentIntent and names the customer."""
    return story_event(version, "one_off", "charge.succeeded")


def session(version: str) -> dict[str, Any]:
    """The story's checkout.session.completed: the sale, naming product and customer."""
    return story_event(version, "one_off", "checkout.session.completed")


def void_pings(bot: Bot) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The failed refund's one post, and every edit of it."""
    (post,) = [p for p in bot.slack_api.posted() if p["text"].startswith(VOID)]
    return post, [p for p in bot.slack_api.posted("chat.update") if p["text"].startswith(VOID)]


def shown(msg: dict[str, Any]) -> str:
    return json.dumps(msg["blocks"], ensure_ascii=False)


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_failure_before_its_customer_is_edited_once_the_customer_is_known(bot: Bot, version: str) -> None:
    """PaymentIntent (no customer), its Charge (names Ada), a full refund and its failure, in every order: the failure
    ping shows her once anything has named her — posted so when something had, edited to it when that came later —
    and says no more that the sale is unknown once the sale came. An edit only when the post lacked something, and
    none more when everything is sent again."""
    start = t0(version)
    refund = refund_object("re_full", AMOUNT, created=start + 100, status="failed")
    events = {"sale": sale(version), "charge": charge(version),
              "refunded": charge_refunded(version, AMOUNT, at=start + 100, event_id="evt_r1"),
              "failed": failure_events(version, refund, at=start + 3600)[-1]}
    for arrival in itertools.permutations(events):
        await reset(bot)
        await arrive(bot, [events[name] for name in arrival])
        where = f"{version} {arrival}"
        post, edits = void_pings(bot)
        failed = arrival.index("failed")
        named = min(arrival.index("charge"), arrival.index("refunded")) < failed
        sale_first = arrival.index("sale") < failed
        assert (MASKED in shown(post), UNKNOWN_SALE_NOTE in shown(post)) == (named, not sale_first), where
        assert bool(edits) == (not named or not sale_first), where
        last = edits[-1] if edits else post
        assert_valid_message(last)
        assert MASKED in shown(last) and UNKNOWN_CUSTOMER not in shown(last), (where, shown(last))
        assert UNKNOWN_SALE_NOTE not in shown(last) and "ada@" not in shown(last), (where, shown(last))
        assert last["text"] == post["text"], where  # the amount and the reason stay as Stripe said them
        calls = len(bot.slack_api.calls)
        await arrive(bot, [copy.deepcopy(events[name]) for name in arrival])
        assert len(bot.slack_api.calls) == calls, (where, bot.slack_api.calls[calls:])


@pytest.mark.parametrize("version", ["acacia", "clover"])
async def test_a_failure_before_its_sale_is_edited_to_name_product_and_customer(bot: Bot, version: str) -> None:
    """Every event of a failure first, then the checkout session and charge.refunded in either order: the posted
    ping is edited to the sale's product and customer, the note that the sale is unknown gone."""
    start = t0(version)
    refund = refund_object("re_full", AMOUNT, created=start + 100, status="failed")
    later = {"session": session(version),
             "refunded": charge_refunded(version, AMOUNT, at=start + 100, event_id="evt_r1")}
    for arrival in itertools.permutations(later):
        await reset(bot)
        await arrive(bot, [*failure_events(version, refund, at=start + 3600), *(later[n] for n in arrival)])
        post, edits = void_pings(bot)
        assert UNKNOWN_SALE_NOTE in shown(post) and UNKNOWN_CUSTOMER in shown(post), arrival
        assert edits, arrival
        assert_valid_message(edits[-1])
        final = shown(edits[-1])
        assert PRODUCT in final and MASKED in final and UNKNOWN_SALE_NOTE not in final, (arrival, final)
        assert "re_full" in final and edits[-1]["text"] == post["text"], arrival


async def _void_rows(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """(op, blocks) of the failed refund's outbox rows: its post first, then any edit."""
    rows = await conn.fetch("SELECT op, payload FROM outbox WHERE kind = 'refund_void' ORDER BY id")
    return [(r["op"], json.dumps(r["payload"]["blocks"], ensure_ascii=False)) for r in rows]


@pytest.mark.parametrize("version", ["basil", "dahlia"])
async def test_a_ping_not_sent_yet_is_rewritten_in_one_batch_and_in_several(db: asyncpg.Connection,
                                                                          version: str) -> None:
    """The intake alone (no worker sends anything): in every order, in one batch and a batch each, the queued post
    already names the customer and the sale when it goes; in one batch nothing else is queued, for the ping no one
    can have sent yet (in several batches each state is an edit, in case it was on its way: the newest, the one the
    worker sends, says what the post says)."""
    start = t0(version)
    refund = refund_object("re_full", AMOUNT, created=start + 100, status="failed")
    events = [session(version), charge_refunded(version, AMOUNT, at=start + 100, event_id="evt_r1"),
              failure_events(version, refund, at=start + 3600)[-1]]
    for order in itertools.permutations(events):
        for together in (True, False):
            async with undone(db):
                for batch in [list(order)] if together else [[e] for e in order]:
                    await ingest_batch(db, _subs(batch), tz=UTC, now=at(start + 3700))
                where = f"{[e['type'] for e in order]} {'one batch' if together else 'a batch each'}"
                rows = await _void_rows(db)
                assert rows[0][0] == "post", where
                assert PRODUCT in rows[0][1] and MASKED in rows[0][1] and UNKNOWN_SALE_NOTE not in rows[0][1], where
                assert all(op == "update" for op, _ in rows[1:]), where
                assert rows[-1][1] == rows[0][1], where  # the newest edit, the one sent, says what the post says
                assert not together or len(rows) == 1, where
