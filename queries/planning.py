"""How the intake's transactions are planned: each statement for its own arguments, except the one that gains
nothing from it."""

from __future__ import annotations

from typing import Final

from queries.executor import Executor

# Each intake transaction plans each statement for its own arguments. The intake's statements are
# prepared once per connection, and PostgreSQL switches a prepared statement to a generic plan after five runs —
# planned while the tables were small, it reads ORDERS_BY_REFS's refs by scanning every order (measured: its cost
# per event growing from 0.1 to 1.4 ms over the first 12,000 orders of a new database, until autoanalyze).
PLAN_EACH_STATEMENT: Final = "SET LOCAL plan_cache_mode = force_custom_plan"
# Except around the batch's one write of new rows (WRITE_NEW): its plan reads no table (it inserts from its JSON
# parameters), but planning it — and every foreign-key check and trigger statement it fires, 180 of them for 90
# sales — at each run cost 16 µs of 150 per event (measured on batches of 90).
PLAN_AS_USUAL: Final = "SET LOCAL plan_cache_mode = auto"


async def plan_each_statement(db: Executor) -> None:
    """Custom plans until the transaction ends, or until plan_as_usual() (PLAN_EACH_STATEMENT)."""
    await db.execute(PLAN_EACH_STATEMENT)


async def plan_as_usual(db: Executor) -> None:
    """Cached plans again, until plan_each_statement() or the transaction's end (PLAN_AS_USUAL)."""
    await db.execute(PLAN_AS_USUAL)
