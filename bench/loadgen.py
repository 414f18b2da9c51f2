"""A cheap HTTP/1.1 load generator for the intake benchmarks: pre-built, pre-signed request bytes written on a
few keep-alive connections, responses read with a minimal parser. It exists so that the client costs the
shared 2 cores as little as possible (aiohttp's client spends about as much CPU per request as the server),
and the ratios measure the servers rather than the load generator.

Only for 127.0.0.1 and for servers that answer with a Content-Length (aiohttp's web.Response does).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.common import Sale, stripe_headers


def request_bytes(port: int, path: str, sale: Sale) -> bytes:
    """One signed POST, as the bytes that go on the wire (signed now: send within Stripe's 5-minute window)."""
    headers = stripe_headers(sale.body)
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {headers['Content-Type']}\r\n"
            f"Stripe-Signature: {headers['Stripe-Signature']}\r\nContent-Length: {len(sale.body)}\r\n\r\n")
    return head.encode() + sale.body


@dataclass
class Blast:
    """What one round of requests got back."""

    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int | str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        """Requests per second over the round."""
        return len(self.latencies) / self.elapsed if self.elapsed else float("nan")

    @property
    def non_200(self) -> int:
        return non_2xx(self.statuses)


def non_2xx(statuses: Counter[int | str]) -> int:
    """Answers other than 2xx (202 is the bot's "stored, applied moments later"); a str is a client-side error."""
    return sum(n for status, n in statuses.items() if not (isinstance(status, int) and 200 <= status < 300))


class _Connection(asyncio.Protocol):
    """One keep-alive connection: send a request, await its status once the whole response is in."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        length = 0
        for line in bytes(self.buffer[:end]).lower().split(b"\r\n")[1:]:
            if line.startswith(b"content-length:"):
                length = int(line[15:])
        if len(self.buffer) < end + 4 + length:
            return
        status = int(self.buffer[9:12])
        del self.buffer[:end + 4 + length]
        self.waiter.set_result(status)
        self.waiter = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionResetError("server closed the connection"))

    async def send(self, request: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


async def blast(port: int, requests: Sequence[bytes], concurrency: int) -> Blast:
    """Send every request as fast as `concurrency` connections (one request in flight each) allow."""
    loop = asyncio.get_running_loop()
    conns = [(await loop.create_connection(_Connection, "127.0.0.1", port))[1] for _ in range(concurrency)]
    result, queue = Blast(), iter(requests)

    async def worker(conn: _Connection) -> None:
        for request in queue:
            started = time.perf_counter()
            try:
                result.statuses[await conn.send(request)] += 1
            except OSError as exc:
                result.statuses[type(exc).__name__] += 1
                return
            result.latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker(c) for c in conns))
    finally:
        result.elapsed = time.perf_counter() - started
        for conn in conns:
            if conn.transport is not None:
                conn.transport.close()
    return result


async def blast_aiohttp(port: int, sales: Sequence[Sale], concurrency: int) -> Blast:
    """The same with an aiohttp client session (what the benchmark used before; --client aiohttp), signed
    up front too: it costs the shared cores about as much per request as a server does."""
    import aiohttp

    signed = [(s.body, stripe_headers(s.body)) for s in sales]
    result, queue = Blast(), iter(signed)
    url = f"http://127.0.0.1:{port}/webhooks/stripe"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def worker() -> None:
            for body, headers in queue:
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    result.statuses[resp.status] += 1
                result.latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.elapsed = time.perf_counter() - started
    return result
