"""The worker: an RQ worker (with RQ's scheduler) that runs dispatch batches, plus a cron process that
queues `nurture.jobs.tick` every TICK_SECONDS.

    python worker.py              # worker + tick
    python worker.py --no-tick    # another worker for the same queue (one ticking process is enough)
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import sys

from redis import Redis
from rq import Queue, Worker
from rq.cron import CronScheduler

from nurture import jobs
from nurture.config import ConfigError, load_settings
from nurture.content.rendering import RenderError
from nurture.runtime import current_runtime
from nurture.store.db import upgrade

log = logging.getLogger("nurture.worker")


def warm_up() -> None:
    """Build the runtime and compile every template before RQ forks a work horse per job, so each job
    inherits them instead of paying premailer again."""
    rt = current_runtime()
    for sequence in rt.sequences.all():
        for step in sequence.steps:
            try:
                rt.catalog.email(step.template)
            except RenderError as exc:
                log.error("%s/%s: %s (run `nurture check`)", sequence.id, step.id, exc)
    rt.db.dispose()  # no connection may cross the fork


def run_cron(redis_url: str, queue_name: str, interval: int) -> None:
    cron = CronScheduler(connection=Redis.from_url(redis_url), logging_level=logging.WARNING)
    # ttl: a tick that waited longer than its interval is stale; the next one does the same work.
    cron.register(jobs.tick, queue_name, interval=interval, ttl=max(interval * 3, 30), result_ttl=60)
    cron.start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-tick", action="store_true", help="do not run the periodic tick in this process")
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"nurture worker: configuration error: {exc}", file=sys.stderr)
        return 2
    if not settings.redis_url:
        print("nurture worker: REDIS_URL is not set", file=sys.stderr)
        return 2
    upgrade(current_runtime().db)
    warm_up()
    cron = None
    if not args.no_tick:
        cron = multiprocessing.Process(target=run_cron, name="nurture-tick", daemon=True,
                                       args=(settings.redis_url, settings.queue_name, settings.tick_seconds))
        cron.start()
    connection = Redis.from_url(settings.redis_url)
    worker = Worker([Queue(settings.queue_name, connection=connection)], connection=connection)
    try:
        # RQ logs every job at INFO (four lines a tick); nurture's own loggers say what matters.
        worker.work(with_scheduler=True, burst=args.burst, logging_level="WARNING")
    finally:
        if cron is not None and cron.is_alive():
            cron.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
