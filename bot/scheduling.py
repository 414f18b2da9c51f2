"""APScheduler 3.x for the bot's periodic jobs: created inside the running loop, explicit defaults, and
failures that are seen (in /health and the alerts channel), not only logged."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.util import iscoroutinefunction_partial

log = logging.getLogger(__name__)

# APScheduler's default misfire_grace_time is 1 s: a report due while the loop was busy for 2 s would be
# skipped silently. Jobs here are idempotent (reports are recorded once per day), so run them late instead.
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 6 * 3600}


@dataclass(frozen=True, slots=True)
class JobFailure:
    """A job that raised or was missed."""

    job_id: str
    at: dt.datetime
    error: str


class JobFailures:
    """The recent failures, for /health; `on_failure` is told about each one as it happens."""

    def __init__(self, on_failure: Callable[[JobFailure], Coroutine[Any, Any, None]] | None = None) -> None:
        self.recent: deque[JobFailure] = deque(maxlen=20)
        self.on_failure = on_failure

    def listener(self, event: JobExecutionEvent) -> None:
        """APScheduler's (synchronous) listener: record, then report asynchronously."""
        error = repr(event.exception) if event.exception else "missed its run time"
        failure = JobFailure(job_id=event.job_id, at=dt.datetime.now(dt.UTC), error=error[:500])
        self.recent.append(failure)
        log.error("scheduled job %s failed: %s", event.job_id, error)
        if self.on_failure is not None:
            task: asyncio.Task[None] = asyncio.get_running_loop().create_task(self.on_failure(failure))
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)


Job = Callable[..., Coroutine[Any, Any, Any]]


def stopped_quietly(func: Job, name: str) -> Job:
    """The coroutine job `func`, ending quietly when the stop cancels it. At shutdown APScheduler cancels the jobs
    under way (AsyncIOExecutor.shutdown), and its run_coroutine_job catches BaseException: the CancelledError would
    be logged as an ERROR with its traceback, and reported as a failed job to /health and the alerts channel."""

    @functools.wraps(func)
    async def job(*args: Any, **kwargs: Any) -> Any:
        try:
            return await func(*args, **kwargs)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or not task.cancelling():  # raised by something it awaited, not a stop: a failure
                raise
            log.info("scheduled job %s stopped: the bot is stopping", name)
            return None

    return job


class Scheduler(AsyncIOScheduler):
    """AsyncIOScheduler whose coroutine jobs end quietly when the bot stops (`stopped_quietly`)."""

    def add_job(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        if iscoroutinefunction_partial(func):
            func = stopped_quietly(func, str(kwargs.get("id") or getattr(func, "__qualname__", func)))
        return super().add_job(func, *args, **kwargs)


def create_scheduler(tz: ZoneInfo, failures: JobFailures) -> AsyncIOScheduler:
    """An AsyncIOScheduler bound to the running loop, in the store's time zone, with explicit defaults."""
    scheduler = Scheduler(event_loop=asyncio.get_running_loop(), timezone=tz, job_defaults=JOB_DEFAULTS)
    scheduler.add_listener(failures.listener, EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    return scheduler


def next_runs(scheduler: AsyncIOScheduler | None) -> tuple[tuple[str, dt.datetime], ...]:
    """(job name, next run) for every scheduled job, soonest first."""
    if scheduler is None or not scheduler.running:
        return ()
    jobs = [(job.name, job.next_run_time) for job in scheduler.get_jobs() if job.next_run_time is not None]
    return tuple(sorted(jobs, key=lambda pair: pair[1]))
