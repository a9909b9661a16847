"""RQ jobs. They take ids (claim tokens), not objects, find the process's runtime themselves, and are safe
to run twice: a second run of a batch finds its claim released and does nothing."""

from __future__ import annotations

import logging

from redis import Redis
from rq import Queue
from rq.job import JobStatus

from nurture.delivery import alerts, bounce_mail, broadcasts, dispatch, versions, webhooks
from nurture.insight import sequence_stats
from nurture.people import import_runs, signup
from nurture.runtime import Runtime, current_runtime

log = logging.getLogger(__name__)

BATCH_JOB_TIMEOUT = 3600  # seconds
IMPORT_JOB_TIMEOUT = 3 * 3600  # 600,000 rows take minutes; only a horse stuck beyond any socket timeout hits it
IMPORT_STARTS = 3  # runs of one import lost in the middle before it is recorded as failed
ALIVE = (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED)


def dispatch_queue(rt: Runtime) -> Queue:
    return Queue(rt.settings.queue_name, connection=rt.redis_connection())


def enqueue_batch(rt: Runtime, queue: Queue, token: str) -> None:
    # The deterministic job id means a claim is queued at most once. A batch renews its lease as it goes, so
    # a slow one may run longer than the lease; the job timeout only stops a work horse stuck where no
    # socket timeout reaches, and RQ killing it is a crash like any other (docs/delivery.md).
    queue.enqueue(run_batch, token, job_id=f"batch-{token}", job_timeout=BATCH_JOB_TIMEOUT,
                  result_ttl=3600, failure_ttl=7 * 86400)


def tick_gate_key(rt: Runtime) -> str:
    """Set while a tick is queued and has not started (request_tick): the sign-up's rate limit asks for it
    in the same Redis round trip (nurture.web.submit_limit)."""
    return f"{rt.settings.redis_prefix}:tick-requested"


def request_tick(rt: Runtime, client: Redis) -> bool:
    """Queue a tick now (after a sign-up or a confirmation: the email goes out in seconds), unless one is
    queued already and has not started. Returns whether this call queued it.

    One tick waiting is enough for every sign-up committed before it starts: it claims after it started.
    Without the gate each sign-up queued one more run of the same tick (RQ pushes a job id again even
    when it is already waiting): a burst of 100 sign-ups a second meant 100 ticks a second for the
    worker, and 2 Redis round trips each for the web worker instead of the one SET here. The tick clears
    the gate when it starts (`tick`), so a sign-up after that queues the next one; the expiry only
    matters if a tick was queued and lost.
    """
    if not client.set(tick_gate_key(rt), "1", nx=True, ex=60):
        return False
    Queue(rt.settings.queue_name, connection=client).enqueue("nurture.jobs.tick", job_id="signup-tick",
                                                             result_ttl=0, failure_ttl=3600)
    return True


def tick() -> int:
    """Find due work and queue it in batches. Run every TICK_SECONDS by the worker's cron scheduler."""
    rt = current_runtime()
    rt.redis_connection().delete(tick_gate_key(rt))  # before claiming: see request_tick
    versions.housekeeping(rt)  # reload edited sequence files (a broken one keeps its version); win-back
    signup.expire_pending(rt)  # unconfirmed double opt-in sign-ups lapse after SIGNUP_EXPIRY_HOURS
    alerts.send_alerts(rt)
    broadcasts.materialise_due(rt)  # a started broadcast's members become enrollments, due like any step
    queue = dispatch_queue(rt)
    enqueue_bounce_reading(rt, queue)
    enqueue_webhooks(rt, queue)
    keep_imports_going(rt, queue)
    keep_funnel_up(rt, queue)
    room = rt.settings.max_pending_batches - queue.count  # back-pressure: don't claim what nobody will run soon
    if room <= 0:
        return 0
    claimed = dispatch.claim_batches(rt, lambda token: enqueue_batch(rt, queue, token), room)
    if claimed:
        log.info("tick: claimed %d due enrollments", claimed)
    return claimed


def run_batch(token: str) -> dict[str, int]:
    rt = current_runtime()
    report = dispatch.run_batch(rt, token)
    log.info("batch %s: %s", token, report.counts)
    return report.counts


def enqueue_bounce_reading(rt: Runtime, queue: Queue) -> None:
    """Queue one read of the bounce mailbox, unless one is waiting or running (its fixed job id)."""
    if rt.settings.bounces.maildir is None and not rt.settings.bounces.imap_url:
        return
    job = queue.fetch_job("read-bounces")
    if job is None or job.get_status() not in (JobStatus.QUEUED, JobStatus.STARTED):
        queue.enqueue(read_bounces, job_id="read-bounces", result_ttl=600, failure_ttl=86400)


def read_bounces() -> dict[str, int]:
    rt = current_runtime()
    counts = bounce_mail.read_mailbox(rt)
    if counts:
        log.info("bounces: %s", dict(counts))
    return dict(counts)


def enqueue_webhooks(rt: Runtime, queue: Queue) -> None:
    """Queue one run of webhooks out, unless one is waiting or running (its fixed job id): the POSTs, with
    their timeouts, happen in that job, never in the tick and never on the send path."""
    if not webhooks.has_endpoints(rt):
        return
    job = queue.fetch_job("deliver-webhooks")
    if job is None or job.get_status() not in (JobStatus.QUEUED, JobStatus.STARTED):
        queue.enqueue(deliver_webhooks, job_id="deliver-webhooks", result_ttl=600, failure_ttl=86400)


def keep_funnel_up(rt: Runtime, queue: Queue) -> None:
    """Fold a little of the funnel's dirty list here; queue one job for the rest, unless one is waiting or
    running. Neither touches the send path: the rows folded were written by the database's triggers."""
    if not sequence_stats.fold_in_tick(rt):
        return
    job = queue.fetch_job("fold-funnel")
    if job is None or job.get_status() not in (JobStatus.QUEUED, JobStatus.STARTED):
        queue.enqueue(fold_funnel, job_id="fold-funnel", result_ttl=600, failure_ttl=86400)


def fold_funnel() -> int:
    return sequence_stats.catch_up(current_runtime())


def deliver_webhooks() -> dict[str, int]:
    counts = webhooks.deliver_due(current_runtime())
    if any(counts.values()):
        log.info("webhooks: %s", counts)
    return counts


def import_job_id(token: str) -> str:
    return f"import-{token}"


def enqueue_import(queue: Queue, token: str) -> None:
    """Queue the console import of upload `token` (its record, people.import_runs, says what to run)."""
    queue.enqueue(run_import, token, job_id=import_job_id(token), job_timeout=IMPORT_JOB_TIMEOUT,
                  result_ttl=600, failure_ttl=7 * 86400)


def run_import(token: str) -> str:
    run = import_runs.execute(current_runtime(), token)
    log.info("import %s: %s, %d rows", token, run.state, run.done)
    return str(run.state)


def keep_import_going(rt: Runtime, queue: Queue, token: str) -> bool:
    """Queue again an import that its record says is queued or running but that no job carries: Redis was
    flushed, or the worker running it died (a horse killed: RQ marks the job failed at once; a whole worker
    killed: once its heartbeat lapses, when a worker next cleans the started registry). Returns whether it
    queued it. Running it again is safe: see import_runs.execute. An import lost IMPORT_STARTS times is
    recorded as failed instead, so a file that kills the worker is not run forever.

    The job is read before the record: a job that finishes in between has written `done` first, and is
    then seen finished here, not queued again.
    """
    job = queue.fetch_job(import_job_id(token))
    if job is not None and job.get_status() in ALIVE:
        return False
    try:
        run = import_runs.load(rt.settings.var_dir, token)
    except import_runs.UnknownRun:  # cleared after its day
        return False
    if run.finished:
        return False
    if run.starts >= IMPORT_STARTS:
        import_runs.give_up(rt.settings.var_dir, run, rt.clock())
        return False
    log.warning("import %s: %s but no job carries it: queued again", token, run.state)
    enqueue_import(queue, token)
    return True


def keep_imports_going(rt: Runtime, queue: Queue) -> int:
    """keep_import_going for every unfinished import on disk, so that one finishes with nobody watching."""
    return sum(keep_import_going(rt, queue, run.token) for run in import_runs.unfinished(rt.settings.var_dir))
