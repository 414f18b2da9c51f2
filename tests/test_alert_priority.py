"""A card-testing attack queues hundreds of failed-payment pings in the alerts channel: an alert goes out before
them (queries/outbox.py NEXT_MESSAGES), an alert's updates behind the alert they edit, and the pings waiting at
once go out as one message, every one covered once (queries/bursts.py), where they went one a second."""

from __future__ import annotations

import json

from queries import outbox
from tests.blockkit import assert_valid_message
from tests.conftest import Bot


async def _queue(b: Bot, key: str, kind: str, text: str, *, op: str = "post", target: int | None = None) -> int:
    msg_id = await outbox.enqueue(b.deps.pool, dedupe_key=key, channel="alerts", kind=kind,
                                  payload={"text": text, "blocks": []}, op=op, target_id=target)
    assert msg_id is not None
    return msg_id


async def test_an_alert_overtakes_the_failed_payment_pings_waiting_before_it(bot: Bot) -> None:
    for n in range(5):
        await _queue(bot, f"failure:{n}", "failure", f"failed {n}")
    alert = await _queue(bot, "alert:1", "alert", "CRITICAL spiking")
    await _queue(bot, "alert:1:update", "alert", "CRITICAL spiking (acknowledged)", op="update", target=alert)
    await _queue(bot, "failure:5", "failure", "failed 5")
    await bot.drain(ignore_pace=True)
    said = [(c.method, c.args.get("text")) for c in bot.slack_api.calls
            if c.method in ("chat.postMessage", "chat.update")]
    assert said[:2] == [("chat.postMessage", "CRITICAL spiking"), ("chat.update", "CRITICAL spiking (acknowledged)")]
    assert said[2:] == [("chat.postMessage", "❌ 6 payment failures in the last minute")]  # then the flood, as one


async def test_failed_payment_pings_waiting_at_once_go_out_as_one_message(bot: Bot) -> None:
    for n in range(30):
        await _queue(bot, f"failure:{n}", "failure", f"❌ Payment Failed: ${n}.00 — Your card was declined.")
    await bot.drain(ignore_pace=True)
    posts = bot.slack_api.posted()
    assert len(posts) == 1 and posts[0]["text"] == "❌ 30 payment failures in the last minute", posts
    assert_valid_message(posts[0])
    listed = json.dumps(posts[0]["blocks"], ensure_ascii=False)
    assert "• $0.00 — Your card was declined." in listed and "…and 20 more" in listed and "$10.00" not in listed
    rows = await bot.deps.pool.fetch("SELECT status, count(*) AS n FROM outbox WHERE kind = 'failure' GROUP BY 1")
    assert {r["status"]: r["n"] for r in rows} == {"coalesced": 30}


async def test_an_edit_of_a_ping_summarised_in_a_burst_is_dropped(bot: Bot) -> None:
    """A late decline reason edits its failure ping; if that ping went out inside a burst there is nothing to edit,
    and the edit is not posted as a message of its own."""
    first = await _queue(bot, "failure:a", "failure", "❌ Payment Failed: $20.00 — Invoice payment failed")
    await _queue(bot, "failure:b", "failure", "❌ Payment Failed: $30.00 — Your card was declined.")
    await bot.drain(ignore_pace=True)
    await _queue(bot, "failure:a:reason", "failure", "❌ Payment Failed: $20.00 — Insufficient funds", op="update",
                 target=first)
    await bot.deps.pool.execute("UPDATE channel_pace SET next_post_at = '2000-01-01T00:00:00Z'")
    await bot.deps.worker.drain()
    # Nothing was sent, so the channel's next slot is where it was.
    assert str(await bot.deps.pool.fetchval("SELECT next_post_at FROM channel_pace WHERE channel = 'alerts'")) \
        .startswith("2000-01-01")
    assert [c.method for c in bot.slack_api.calls if c.method.startswith("chat.")] == ["chat.postMessage"]
    assert await bot.deps.pool.fetchval("SELECT status FROM outbox WHERE dedupe_key = 'failure:a:reason'") == \
        "delivered"


async def test_an_edit_waiting_for_its_alert_does_not_hold_the_channel(bot: Bot) -> None:
    """The alert's own post is waiting for a retry: its update waits behind it, and a failure ping goes meanwhile."""
    alert = await _queue(bot, "alert:2", "alert", "WARNING site slow")
    await bot.deps.pool.execute("UPDATE outbox SET attempts = 1, available_at = now() + interval '1 hour'"
                                " WHERE id = $1", alert)
    await _queue(bot, "alert:2:update", "alert", "WARNING site slow (acknowledged)", op="update", target=alert)
    await _queue(bot, "failure:9", "failure", "❌ Payment Failed: $9.00 — Your card was declined.")
    await bot.deps.pool.execute("UPDATE channel_pace SET next_post_at = '2000-01-01T00:00:00Z'")
    await bot.deps.worker.drain()
    said = [c.args.get("text") for c in bot.slack_api.calls if c.method.startswith("chat.")]
    assert said == ["❌ Payment Failed: $9.00 — Your card was declined."]
    assert await bot.deps.pool.fetchval("SELECT status FROM outbox WHERE dedupe_key = 'alert:2:update'") == "pending"
