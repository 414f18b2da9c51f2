"""In the alerts channel an alert goes out before the failed-payment pings waiting there: a card-testing attack
queues hundreds of them at one message a second, and the alert about it must not wait behind them. Among
themselves both keep their order, an alert's updates behind the alert they edit (queries/outbox.py NEXT_MESSAGES)."""

from __future__ import annotations

from queries import outbox
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
    assert said == [("chat.postMessage", "CRITICAL spiking"), ("chat.update", "CRITICAL spiking (acknowledged)"),
                    *[("chat.postMessage", f"failed {n}") for n in range(6)]]
