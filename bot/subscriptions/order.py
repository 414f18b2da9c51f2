"""The order of one subscription's events of one second, from the events themselves.

Stripe's `created` has whole seconds and its event ids are not ordered in time, so two updates of a subscription in
one second (seats added one by one) cannot be told apart by either. Each event's `previous_attributes` says what the
attributes it changed were just before it: the event whose previous_attributes match the other's object comes after
it (seats 1 → 2, then 2 → 3: the second's previous items are the first's items), directly or through the events
between them (1 → 2 → 3 → 4: the first and the third say nothing of each other). Where that does not settle a pair
(neither or both match: a value set and set back, a body emptied by retention) it stays ordered by rank and event
id, as before, and is reported unsettled: with STRIPE_API_KEY the subscription is read again
(bot/stripe/second_order.py), and the event whose object is the subscription as Stripe has it now, on the attributes
the events changed, is put last — while that second is still the subscription's newest. The ledger's order is (at,
rank, seq, event id): `seq` is the place found here (migration 0053).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SecondEvent:
    """One event of a subscription's second: its rank (created, updated, deleted), id, object and what it says came
    before (None when its body says nothing: no previous_attributes, or emptied by retention)."""

    event_id: str
    rank: int
    obj: Mapping[str, Any] | None
    previous: Mapping[str, Any] | None


def _matches(want: Any, got: Any) -> bool:
    """Whether `got` has what `want` says: every key of a mapping (recursively), a list item by item."""
    if isinstance(want, Mapping):
        return isinstance(got, Mapping) and all(_matches(v, got.get(k)) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(got, list) and len(want) == len(got) and all(map(_matches, want, got))
    return bool(want == got)


def follows(later: SecondEvent, earlier: SecondEvent) -> bool:
    """Whether `later`'s previous_attributes are `earlier`'s object: it changed what `earlier` left."""
    return bool(later.previous) and earlier.obj is not None and _matches(later.previous, earlier.obj)


def last_by(current: Mapping[str, Any], events: Sequence[SecondEvent]) -> str | None:
    """The one event whose object is `current` (the subscription read from the API) on every attribute any of the
    events says it changed; None when not exactly one is (or none says what it changed)."""
    keys = {k for e in events for k in e.previous or {}}
    found = [e.event_id for e in events
             if keys and e.obj is not None and _matches({k: e.obj.get(k) for k in keys}, current)]
    return found[0] if len(found) == 1 else None


def ordered(events: Sequence[SecondEvent], *, last: str | None = None) -> tuple[list[str], bool]:
    """The events' ids in order, and whether every pair of one rank was settled by the events.

    Rank first (created, updated, deleted), then each event after those it follows, then event id; `last` (found
    by last_by) after all others."""
    by_id = {e.event_id: e for e in events}
    before: dict[str, set[str]] = {e.event_id: set() for e in events}
    settled = True
    for i, a in enumerate(events):
        for b in events[i + 1:]:
            a_first, b_first = follows(b, a), follows(a, b)
            if a_first != b_first:
                before[b.event_id if a_first else a.event_id].add(a.event_id if a_first else b.event_id)
            elif a_first and a.rank == b.rank:  # each changed what the other left: contradicting
                settled = False
    out: list[str] = []
    left = sorted(by_id, key=lambda i: (by_id[i].rank, i))
    while left:
        # The first (by rank, id) whose predecessors are all placed; a loop of contradicting events: the first.
        nxt = next((i for i in left if before[i] <= set(out)), left[0])
        out.append(nxt)
        left.remove(nxt)
    if last in out:
        out.remove(last)
        out.append(last)
    return out, settled and _chained(events, before)


def _chained(events: Sequence[SecondEvent], before: Mapping[str, set[str]]) -> bool:
    """Whether every two events of one rank are ordered by `before` (each event's predecessors), directly or through
    others, and one way only: the order found is the only one the events allow."""
    earlier: dict[str, set[str]] = {}
    for start in before:
        seen: set[str] = set()
        stack = list(before[start])
        while stack:
            if (i := stack.pop()) not in seen:
                seen.add(i)
                stack.extend(before[i])
        earlier[start] = seen
    return all((a.event_id in earlier[b.event_id]) != (b.event_id in earlier[a.event_id])
               for i, a in enumerate(events) for b in events[i + 1:] if a.rank == b.rank)
