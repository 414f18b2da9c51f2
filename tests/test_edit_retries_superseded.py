"""An edit that supersedes earlier edits being retried (the newest state replaces them) takes over the tries they
spent: edits of a message that Slack keeps refusing with an error we don't know are given up after
UNEXPECTED_TRIES calls, however many newer edits keep coming meanwhile (README: "An error it does not know is tried
three times before that message is given up")."""

from __future__ import annotations

from bot.delivery.senders import UNEXPECTED_TRIES
from queries import outbox as q
from tests.conftest import Bot
from tests.test_update_order import _pass


def _edits(bot: Bot) -> int:
    return sum(1 for c in bot.slack_api.calls if c.method == "chat.update")


async def test_superseding_edits_inherit_the_tries_spent(bot: Bot) -> None:
    pool = bot.deps.pool
    fired = await q.enqueue(pool, dedupe_key="t-fire", channel="alerts", kind="alert", payload={"text": "ALERT firing"})
    await bot.drain(ignore_pace=True)
    bot.slack_api.fail_next(UNEXPECTED_TRIES + 2, error="edit_gremlin", method="chat.update")  # unknown to the bot

    # Each edit is queued while the ones before it wait for their backoff: it alone is due, and supersedes them.
    for n in range(UNEXPECTED_TRIES):
        await q.enqueue(pool, dedupe_key=f"t-edit-{n}", channel="alerts", kind="alert",
                        payload={"text": f"ALERT state {n}"}, op="update", target_id=fired)
        await _pass(bot)
    assert _edits(bot) == UNEXPECTED_TRIES
    statuses = [r["status"] for r in await pool.fetch("SELECT status FROM outbox WHERE op = 'update' ORDER BY id")]
    assert statuses == ["failed"] * UNEXPECTED_TRIES, f"edits still retried past the limit: {statuses}"

    await pool.execute("UPDATE outbox SET available_at = now() WHERE status = 'pending'")
    await _pass(bot)
    assert _edits(bot) == UNEXPECTED_TRIES  # nothing left to try


async def test_a_superseding_edit_backs_off_as_its_elders_did(bot: Bot) -> None:
    """The wait before the next try grows with the tries spent on the message, not with the newest edit's own."""
    pool = bot.deps.pool
    fired = await q.enqueue(pool, dedupe_key="t-fire", channel="alerts", kind="alert", payload={"text": "ALERT firing"})
    await bot.drain(ignore_pace=True)
    bot.slack_api.fail_next(2, status=500, method="chat.update")
    await q.enqueue(pool, dedupe_key="t-ack", channel="alerts", kind="alert", payload={"text": "ALERT acknowledged"},
                    op="update", target_id=fired)
    await _pass(bot)  # backs off 2 s
    await q.enqueue(pool, dedupe_key="t-resolve", channel="alerts", kind="alert", payload={"text": "ALERT resolved"},
                    op="update", target_id=fired)
    await _pass(bot)  # its second try: 3 s (a first try would back off 2 s)
    rows = await pool.fetch("SELECT extract(epoch FROM available_at - now())::float8 AS wait, attempts FROM outbox"
                            " WHERE op = 'update' AND status = 'pending' ORDER BY id")
    assert [r["attempts"] for r in rows] == [2, 1]
    assert all(r["wait"] > 2.5 for r in rows), [r["wait"] for r in rows]
