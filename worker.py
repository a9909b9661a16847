"""The worker: an RQ worker (with RQ's scheduler) that runs dispatch batches, plus a cron process that
queues `nurture.jobs.tick` every TICK_SECONDS.

    python worker.py              # worker + tick
    python worker.py --no-tick    # another worker for the same queue (one ticking process is enough)

Both outlive Redis going away (a restart, a failover): RQ quits its work loop at the first connection
error it does not expect, so each runs in a loop here that waits for Redis with a growing pause and starts
again. Batches lost from the queue meanwhile are claimed again from the database when their lease ends.
"""

from __future__ import annotations

import argparse
import gc
import logging
import multiprocessing
import sys
import time
from collections.abc import Callable

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, Worker
from rq.cron import CronScheduler
from rq.exceptions import SchedulerNotFound, StopRequested
from rq.job import Job

from nurture import jobs
from nurture.config import ConfigError, startup_settings
from nurture.content.rendering import RenderError, email_templates
from nurture.delivery import dispatch, versions
from nurture.runtime import current_runtime
from nurture.store.db import upgrade

log = logging.getLogger("nurture.worker")


def warm_up() -> None:
    """Build the runtime and compile every template (and the send path's statements) before RQ forks a
    work horse per job, so each job inherits them instead of paying premailer again."""
    rt = current_runtime()
    for sequence in rt.sequences.all():
        for name in email_templates(sequence):  # wait steps and steps with offers have no template of their own
            try:
                rt.catalog.email(name)
            except RenderError as exc:
                log.error("%s: %s (run `nurture check`)", sequence.id, exc)
    dispatch.compile_statements(rt)  # the same for the send path's SQL
    rt.db.dispose()  # no connection may cross the fork
    # Everything built so far lives as long as the worker: out of the collector's sight, a horse's
    # collections do not walk it, nor write to its pages (each write a copy-on-write fault after the fork).
    gc.freeze()


# The pause before trying Redis again doubles from FIRST_PAUSE up to MAX_PAUSE: a restart (a second or two)
# is noticed within a second, and a long outage costs one connection attempt every MAX_PAUSE seconds.
FIRST_PAUSE = 0.25
MAX_PAUSE = 10.0


def wait_for_redis(url: str, what: str, sleep: Callable[[float], None] = time.sleep) -> Redis:
    """A connection to `url` once Redis answers, trying again with a doubling pause until it does."""
    pause = FIRST_PAUSE
    while True:
        connection = Redis.from_url(url)
        try:
            connection.ping()
            return connection
        except RedisError as exc:
            log.warning("%s: Redis at %s does not answer (%s); trying again in %.2gs", what, url, exc, pause)
            connection.close()
        sleep(pause)
        pause = min(pause * 2, MAX_PAUSE)


def tick_enqueued_at_debug(record: logging.LogRecord) -> bool:
    """RQ's scheduler says "Enqueued job tick" at INFO every TICK_SECONDS: 834 of an idle hour's 918 log
    lines. (Its `logging_level` is ignored once the root logger has a handler.) Say it at DEBUG instead."""
    if record.getMessage().startswith("Enqueued job "):
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)
    return True


def run_cron(redis_url: str, queue_name: str, interval: int) -> None:
    """The tick's cron scheduler, started again whenever Redis drops it."""
    logging.getLogger("rq.cron").addFilter(tick_enqueued_at_debug)
    while True:
        connection = wait_for_redis(redis_url, "tick")
        cron = CronScheduler(connection=connection, logging_level=logging.WARNING)
        # ttl: a tick that waited longer than its interval is stale; the next one does the same work.
        cron.register(jobs.tick, queue_name, interval=interval, ttl=max(interval * 3, 30), result_ttl=60)
        try:
            cron.start()  # returns only when asked to stop
            return
        except StopRequested:
            # Ctrl-C reaches the whole process group and the worker then terminates this process too: the
            # second stop lands while the scheduler unregisters itself. Still a stop, not a crash.
            return
        except (RedisConnectionError, RedisTimeoutError, SchedulerNotFound) as exc:
            # SchedulerNotFound: the scheduler, stopping on a lost connection, unregisters itself from a
            # Redis that came back empty (restarted, flushed). The tick process died of it, and no tick ran.
            log.warning("tick: lost Redis (%s); reconnecting", exc)


STOP_CHECK_SECONDS = 2  # how long a stop may wait for an idle worker to notice it


class NurtureWorker(Worker):
    """RQ's worker, remembering whether it was asked to stop: its work loop returns the same way after a
    SIGTERM and after a lost connection, and only the second should start it again.

    It also reads the sequence files itself before it forks a work horse for a job. What a horse learns dies
    with it: when only the horses read the files, each tick started from the worker's start-up state,
    checked an edited file again and logged a refused edit again. Read here, every horse inherits what was
    read and said already, and the tick's own refresh finds nothing new."""

    stop_asked = False

    def execute_job(self, job: Job, queue: Queue) -> None:
        versions.refresh_before_fork(current_runtime())
        super().execute_job(job, queue)

    def request_stop(self, signum, frame) -> None:  # noqa: ANN001  (RQ's signal handler signature)
        self.stop_asked = True
        super().request_stop(signum, frame)

    def subscribe(self) -> None:
        """RQ's own, but listening in 1 s slices instead of 60: RQ's teardown stops this thread, and redis-py
        8.2's `PubSubWorkerThread.stop()` waits for it to finish its slice — a stop took up to a minute."""
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(sleep_time=1, daemon=True,
                                                       exception_handler=self._pubsub_exception_handler)

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None,
                                     ) -> tuple[Job, Queue] | None:
        """RQ waits for a job in one BLMOVE of minutes. A stop signal that finds RQ thinking itself busy only
        sets a flag read after that wait, and one raised inside the socket read can be lost; either way
        Ctrl-C left the worker blocked for minutes (seen once in five stops). Wait in short slices and look
        at the stop between them; an idle worker costs one Redis call a slice more."""
        if timeout is None or max_idle_time is not None:
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        while not self.stop_asked:
            found = super().dequeue_job_and_maintain_ttl(min(timeout, STOP_CHECK_SECONDS),
                                                         max_idle_time=STOP_CHECK_SECONDS)
            if found is not None:
                return found
        return None


def run_worker(redis_url: str, queue_name: str, burst: bool) -> None:
    """Run batches until asked to stop (or, with `burst`, until the queue is empty), through Redis outages."""
    while True:
        connection = wait_for_redis(redis_url, "worker")
        worker = NurtureWorker([Queue(queue_name, connection=connection)], connection=connection)
        # RQ logs every job at INFO (four lines a tick); nurture's own loggers say what matters.
        try:
            worker.work(with_scheduler=True, burst=burst, logging_level="WARNING")
        except (RedisConnectionError, RedisTimeoutError) as exc:
            # RQ's own teardown (register_death) writes to Redis: with Redis gone mid-job, that raised out
            # of work() and the worker process exited (tests/faults/test_redis_restart.py, seen 1 in 3).
            if worker.stop_asked:
                return
            log.warning("worker: lost Redis (%s); starting again", exc)
            continue
        if worker.stop_asked or (burst and _answers(connection)):
            return
        log.warning("worker: the work loop ended without a stop request (Redis lost?); starting again")


def _answers(connection: Redis) -> bool:
    try:
        return bool(connection.ping())
    except RedisError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-tick", action="store_true", help="do not run the periodic tick in this process")
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        settings = startup_settings()
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
    try:
        run_worker(settings.redis_url, settings.queue_name, args.burst)
    finally:
        if cron is not None and cron.is_alive():
            cron.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
