"""BUSINESS_DAYS: weekday names as people write them (`Mon-Fri`, `Mon,Wed,Sat-Sun`) and weekday numbers (Monday 0)."""

from __future__ import annotations

DAY_NAMES: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def parse_days(value: str) -> frozenset[int]:
    """`Mon-Fri`, `Mon,Wed,Sat-Sun` (case-insensitive) as weekday numbers (Monday 0); at least one day."""
    index = {name.lower(): n for n, name in enumerate(DAY_NAMES)}
    days: set[int] = set()
    for part in (p.strip().lower() for p in value.split(",") if p.strip()):
        first, _, last = part.partition("-")
        if first[:3] not in index or (last and last[:3] not in index):
            raise ValueError(f"expected day names like Mon-Fri or Mon,Wed,Sat, got {value!r}")
        a, b = index[first[:3]], index[(last or first)[:3]]
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(b + 1)])
    if not days:
        raise ValueError("at least one business day is needed")
    return frozenset(days)


def format_days(days: frozenset[int]) -> str:
    """Weekday numbers as people write them: `Mon-Fri`, `Mon,Wed,Sat-Sun`, `Mon-Sun`."""
    runs: list[list[int]] = []
    for day in sorted(days):
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ",".join(DAY_NAMES[r[0]] if len(r) == 1 else f"{DAY_NAMES[r[0]]}-{DAY_NAMES[r[-1]]}" for r in runs)
