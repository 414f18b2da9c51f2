"""A periodic Stripe job that Stripe refuses (401: the key; 403: a permission a restricted key lacks): the refusal
is news the first time only. Asked again at every run, it would be logged 8,640 times a day by a job every 10 s,
while the store is fine; instead the job says it once and asks again hourly (a new key takes a restart, which
asks at once; a permission granted in the dashboard is seen within the hour). A refusal standing is also kept in
the process's Refusals (Deps.refusals), which /health and the dashboard show until Stripe answers."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from bot.stripe.events_api import KeyRejected

ASK_AGAIN_AFTER = dt.timedelta(hours=1)
# What else lifts a refusal of a permission, where something does.
INSTEAD: dict[str, str] = {"Account: read": "or set STORE_CURRENCY: the account is then never read"}


@dataclass(frozen=True, slots=True)
class Standing:
    """A job's refusal as /health shows it: since when, and what Stripe refused."""

    job: str
    status: int | None  # 401: the key itself; 403: a permission it lacks
    permission: str | None  # a 403's permission to grant (None: a path PERMISSIONS does not name)
    since: dt.datetime
    error: str

    @property
    def advice(self) -> str:
        """What the owner should do, in a line (plain text: each surface escapes it as it needs)."""
        if self.status == 401:
            return "Stripe rejects STRIPE_API_KEY: set a valid key and restart; asked again hourly"
        grant = f"grant the restricted key {self.permission}" if self.permission else \
            f"grant the restricted key the permission Stripe names ({self.error[:200]})"
        instead = f" ({INSTEAD[self.permission]})" if self.permission in INSTEAD else ""
        return f"Stripe refuses the key: {grant} in Stripe's dashboard{instead}; asked again hourly"


class Refusals:
    """The standing refusals of this process's Stripe jobs, by job (each replica runs its own jobs)."""

    def __init__(self) -> None:
        self._by_job: dict[str, Standing] = {}

    def standing(self) -> tuple[Standing, ...]:
        """Every refusal standing now, in the order the jobs met them."""
        return tuple(self._by_job.values())

    def record(self, job: str, exc: KeyRejected, now: dt.datetime) -> None:
        """`job` is refused; since when is kept while the refusal is the same kind."""
        known = self._by_job.get(job)
        since = known.since if known is not None and known.status == exc.status else now
        self._by_job[job] = Standing(job, exc.status, exc.permission, since, str(exc))

    def clear(self, job: str) -> None:
        """Stripe answered `job`."""
        self._by_job.pop(job, None)


class Refusal:
    """One job's standing refusal, if any: whether it has been said, and when to ask Stripe again."""

    def __init__(self, log: logging.Logger, job: str, *, again_after: dt.timedelta = ASK_AGAIN_AFTER,
                 shown: Refusals | None = None) -> None:
        self.log = log
        self.job = job
        self.again_after = again_after
        self.shown = shown  # where /health reads it (None: the job records its refusal itself)
        self.said = False
        self.until: dt.datetime | None = None

    def waiting(self, now: dt.datetime) -> bool:
        """Whether the job should leave Stripe alone at `now`."""
        return self.until is not None and now < self.until

    def refused(self, exc: KeyRejected, now: dt.datetime) -> None:
        """Stripe said 401/403: logged unless already said (a 403 as a WARNING naming the permission to grant; a
        401, the key itself rejected, as an ERROR), then the job waits."""
        if not self.said:
            (self.log.error if exc.status == 401 else self.log.warning)(
                "%s: %s; asked again hourly, not logged again until Stripe answers", self.job, exc)
            self.said = True
        self.until = now + self.again_after
        if self.shown is not None:
            self.shown.record(self.job, exc, now)

    def answered(self) -> None:
        """Stripe answered a request of the job: the refusal is over (and said to be, if it was said)."""
        if self.said:
            self.log.info("%s: Stripe answers again", self.job)
        self.said, self.until = False, None
        if self.shown is not None:
            self.shown.clear(self.job)
