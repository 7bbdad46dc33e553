"""Runs the jobs on a clock with APScheduler (in the server process in the embedded default).

Jobs catch up by design (they look for what is due now), so a missed run is simply
coalesced into the next one; each job runs at most once at a time.
"""

from __future__ import annotations

import logging

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from scheduler.jobs import JOBS, JobContext

log = logging.getLogger(__name__)


async def run_job(name: str, ctx: JobContext) -> int:
    """Run one job now (also from the CLI); returns how many items it handled."""
    job, _interval = JOBS[name]
    try:
        handled = await job(ctx)
    except Exception:
        log.exception("job failed", extra={"job": name})
        raise
    if handled:
        log.info("job done", extra={"job": name, "handled": handled})
    return handled


def start_scheduler(ctx: JobContext, *, jobs: dict[str, int] | None = None) -> AsyncIOScheduler:
    """Start the scheduler in the running event loop; `jobs` overrides intervals (seconds)."""
    scheduler = AsyncIOScheduler(
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
    )
    for name, (_job, interval) in JOBS.items():
        seconds = (jobs or {}).get(name, interval)
        scheduler.add_job(_safe_run, "interval", seconds=seconds, args=(name, ctx), id=name, name=name)
    scheduler.start()
    return scheduler


async def _safe_run(name: str, ctx: JobContext) -> None:
    try:
        await run_job(name, ctx)
    except Exception:
        pass  # logged in run_job; the next tick tries again
