"""The ceiling the intake is compared with: the least a durable webhook receiver can do on this stack.

aiohttp, Stripe's signature check and one INSERT of the raw body per request, in its own transaction,
with the bot's pool size — no parsing, no orders, no Slack. Run by bench/intake.py as a separate process.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
from aiohttp import web

from bot.stripe.signature import BadSignature, verify

INSERT = "INSERT INTO bench_raw (event_id, payload) VALUES ($1, $2::jsonb) ON CONFLICT (event_id) DO NOTHING"


async def main() -> None:
    """Serve until killed."""
    pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=10, max_size=10)
    secret = os.environ["STRIPE_WEBHOOK_SECRET"]

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            verify(body, request.headers.get("Stripe-Signature"), [secret])
        except BadSignature:
            return web.json_response({"error": "signature"}, status=400)
        text = body.decode()
        event_id = text.split('"id": "', 1)[1].split('"', 1)[0]  # no JSON parsing: that is the point
        await pool.execute(INSERT, event_id, text)
        return web.json_response({"received": True})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/webhooks/stripe", receive)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(os.environ["PORT"])).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
