"""A periodic Stripe job that Stripe refuses (401: the key; 403: a permission a restricted key lacks): the refusal
is news the first time only. Asked again at every run, it would be logged 8,640 times a day by a job every 10 s,
while the store is fine; instead the job says it once and asks again hourly (a new key takes a restart, which
asks at once; a permission granted in the dashboard is seen within the hour)."""

from __future__ import annotations

import datetime as dt
import logging

from bot.stripe.events_api import KeyRejected

ASK_AGAIN_AFTER = dt.timedelta(hours=1)


class Refusal:
    """One job's standing refusal, if any: whether it has been said, and when to ask Stripe again."""

    def __init__(self, log: logging.Logger, job: str, *, again_after: dt.timedelta = ASK_AGAIN_AFTER) -> None:
        self.log = log
        self.job = job
        self.again_after = again_after
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

    def answered(self) -> None:
        """Stripe answered a request of the job: the refusal is over (and said to be, if it was said)."""
        if self.said:
            self.log.info("%s: Stripe answers again", self.job)
        self.said, self.until = False, None
