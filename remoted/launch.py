"""Launching: a queued task becomes a scheduler job, exactly once.

One act, in three steps that always come in this order:

1. ``record_intent``: prepare the job's directories and record ``phase: launching``, made
   durable before the scheduler hears of the task.  A crash from here on is finished by
   recovery (``remoted.recovery.recover_launching``), which asks the scheduler whether
   the job exists instead of submitting it a second time.
2. ``submit``: ask the scheduler to start the job.  The outcome, a handle or the reason
   there is none, comes back as a value, because under Slurm it is computed in a worker
   thread while remoted goes on with the next student's uploads.
3. ``apply_outcome``: record what the submission came to: ``launched`` with the handle,
   queued again, pending, or failed.  One write; one that fails leaves the task
   ``launching``, which recovery then treats as after a crash.

``launch_queued`` chooses what to launch (fair order, per-user limits, the scheduler's
``check``).  A scheduler without a queue of its own gets one task at a time, in line
(``launch_one``); one that queues (Slurm) gets every chosen task at once
(``launch_together``: all intents, one flush, then the submissions), and
``apply_outcomes`` waits for those before the pass ends, so that recovery, cancels and
polls never see a launch half done.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TypeAlias

from ailabber.daemonkit.faults import crash_point
from ailabber.daemonkit.remoted_settings import UserLimits
from ailabber.model.joblimits import JobLimits
from ailabber.model.task import FAILED, PENDING
from ailabber.storage import fsutil
from remoted.cancel import send_cancel
from remoted.holds import HoldEntry
from remoted.jobspec import JobSpec
from remoted.outage import WriteTrouble, passing, plain
from remoted.publish import ActiveTasks
from remoted.queue import fair_order, over_limit
from remoted.records import LAUNCHED, LAUNCHING, QUEUED, TaskRecord
from remoted.schedulers.base import SUBMIT_OUTCOMES, Blocked, JobHandle, Scheduler, SchedulerUnavailable

log = logging.getLogger("remoted")

#: The reason of a queued task the staff hold (``ailabber admin hold``).
HELD = "held"

#: What a submission came to: the job's handle, or why there is none.
Outcome: TypeAlias = JobHandle | Exception


class Launcher:
    """Launches queued tasks through one scheduler; keeps the fair order's memory of whom
    it served when, and the submissions running in worker threads during a pass."""

    def __init__(self, root: Path, scheduler: Scheduler, tasks: ActiveTasks, trouble: WriteTrouble):
        self.root = root
        self.scheduler = scheduler
        self.tasks = tasks
        self.trouble = trouble
        self._last_served: dict[str, float] = {}
        self._in_flight: dict[tuple[str, str], tuple[TaskRecord, Future[Outcome]]] = {}
        self._pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def submitting(self, key: tuple[str, str]) -> bool:
        """Whether the task's submission is running in a worker thread right now (its
        ``launching`` record is not a crash's leftover)."""
        return key in self._in_flight

    # --- choosing ------------------------------------------------------------------------
    def launch_queued(self, limits_of: Callable[[str], UserLimits], held: Callable[[str], HoldEntry | None]) -> None:
        """Launch what may start now, in fair order; hold back, with the reason shown,
        what the staff hold (``held``), a user limit (``limits_of``: the student's, with
        the staff's overrides) or the scheduler blocks, and fail what can never run."""
        queued = self.tasks.in_phase(QUEUED)
        if not queued:
            return
        running, gpus = self.tasks.launched_per_user()
        batch: list[TaskRecord] = []
        for rec in fair_order(queued, running, self._last_served):
            assert isinstance(rec, TaskRecord)
            if rec.spec is None:
                continue
            limits = limits_of(rec.user)
            if limits.max_gpus is not None and rec.spec.gpus > limits.max_gpus:
                self.tasks.change(rec, FAILED, "unsatisfiable",
                                  message=f"asks for {rec.spec.gpus} GPU(s); the per-user limit is {limits.max_gpus}")
                continue
            never = JobLimits(max_time_limit_s=limits.max_time_limit, max_memory_mb=limits.max_memory)
            problems = never.problems(rec.spec.gpus, rec.spec.time_limit_s, rec.spec.memory_mb)
            if problems:
                message = "; ".join(f"{field}: {why}" for field, why in problems)
                self.tasks.change(rec, FAILED, "unsatisfiable", message=message)
                continue
            hold = held(rec.user)
            if hold is not None:
                self.tasks.change(rec, PENDING, HELD, message=hold.message)
                continue
            why = over_limit(rec.user, rec.spec.gpus, running, gpus, limits.max_running, limits.max_gpus)
            if why:
                self.tasks.change(rec, PENDING, "user_limit", message=why)
                continue
            try:
                self.scheduler.check(rec.spec, self.tasks.launched_handles())
            except Blocked as b:
                if b.reason == "unsatisfiable":
                    self.tasks.change(rec, FAILED, "unsatisfiable", message=b.message)
                else:
                    self.tasks.change(rec, PENDING, b.reason, message=b.message)
                continue
            if self.scheduler.queues:
                batch.append(rec)          # Slurm queues by itself: launch together below
                running[rec.user] = running.get(rec.user, 0) + 1
                gpus[rec.user] = gpus.get(rec.user, 0) + rec.spec.gpus
                continue
            self.launch_one(rec)
            self._last_served[rec.user] = time.monotonic()
            if rec.phase == LAUNCHED:
                running[rec.user] = running.get(rec.user, 0) + 1
                gpus[rec.user] = gpus.get(rec.user, 0) + rec.spec.gpus
        if batch:
            self.launch_together(batch)

    def queue_order(self, held: Callable[[str], HoldEntry | None]) -> list[TaskRecord]:
        """The queued tasks that can be launched, in the order the next pass offers them to
        the scheduler (what ``status`` shows as the queue position); held ones are not."""
        running, _gpus = self.tasks.launched_per_user()
        order = fair_order([r for r in self.tasks.in_phase(QUEUED) if held(r.user) is None], running,
                           self._last_served)
        return [rec for rec in order if isinstance(rec, TaskRecord) and rec.spec is not None]

    # --- the act -------------------------------------------------------------------------
    def launch_one(self, rec: TaskRecord) -> None:
        """The three steps for one task, in line: the intent is on disk before the
        scheduler hears of the task."""
        if not self.record_intent(rec):
            return
        fsutil.flush_deferred(self.root)     # the intent is on disk before the scheduler hears of it
        crash_point("remoted:before_submit")
        self._submit_in_line(rec)

    def launch_together(self, batch: list[TaskRecord]) -> None:
        """Record every launch intent, make them durable with one flush, then submit:
        the same exactly-once rule as ``launch_one`` at a fraction of the flushes.  A
        scheduler that takes concurrent submissions (``concurrent_submits``) gets them
        from worker threads; ``apply_outcomes`` records their outcomes before the pass
        ends."""
        with fsutil.deferred_fsync(self.root) as group:
            batch = [rec for rec in batch if self.record_intent(rec)]
            group.barrier()
            crash_point("remoted:before_submit")
            workers = self.scheduler.concurrent_submits
            if workers <= 1:
                for rec in batch:
                    self._submit_in_line(rec)
                    self._last_served[rec.user] = time.monotonic()
                return
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="submit")
            active = self.tasks.launched_handles()
            for rec in batch:
                assert rec.spec is not None          # every record with an intent has a spec
                self._in_flight[(rec.user, rec.id)] = (rec, self._pool.submit(self.submit, rec.spec, active))
                self._last_served[rec.user] = time.monotonic()

    def record_intent(self, rec: TaskRecord) -> bool:
        """Step 1: prepare the job's directories, then record the launch intent.
        The run and log directories live in the student's area: if the student made that
        impossible, only this task fails (False), never the pass for everyone."""
        assert rec.spec is not None
        try:
            rec.spec.prepare_dirs()
        except OSError as exc:
            if passing(exc):
                # No room (yet): the task waits for space and says so; it does not fail.
                self.trouble.failed("job directories", exc)
                self.tasks.change(rec, PENDING, "queued", message=plain(exc))
            else:
                self.tasks.change(rec, FAILED, "launch_failed",
                                  message=f"cannot prepare the job's directories: {exc}")
            return False
        self.trouble.ok("job directories")
        return self.tasks.commit(rec, None, phase=LAUNCHING)

    def submit(self, spec: JobSpec, active: list[JobHandle]) -> Outcome:
        """Step 2: ``scheduler.submit``, its failures returned rather than raised (it runs
        in a worker thread for schedulers that take concurrent submissions)."""
        try:
            return self.scheduler.submit(spec, active)
        except Exception as exc:  # noqa: BLE001 - returned; apply_outcome tells the known from the unexpected
            return exc

    def apply_outcome(self, rec: TaskRecord, outcome: Outcome) -> None:
        """Step 3: record what submitting a launching task came to: a job, or why not."""
        # Each outcome is one write.  One that cannot be written leaves the task launching,
        # and the next pass looks the job up (recover_launching) as after a crash.
        if isinstance(outcome, Blocked):
            self.tasks.change(rec, PENDING, outcome.reason, also={"phase": QUEUED}, message=outcome.message)
            return
        if isinstance(outcome, SchedulerUnavailable):
            # Maybe submitted, maybe not: stay "launching" so the next pass looks it up.
            log.warning("%s/%s: scheduler unavailable during submit: %s", rec.user, rec.id, outcome)
            self.tasks.change(rec, PENDING, "scheduler_unreachable", message=str(outcome))
            return
        if isinstance(outcome, Exception) and not isinstance(outcome, SUBMIT_OUTCOMES):
            # Unexpected (a bug, a failed user lookup): maybe submitted, maybe not.
            log.error("%s/%s: submitting failed unexpectedly: %r", rec.user, rec.id, outcome)
            self.tasks.change(rec, PENDING, "scheduler_unreachable", message=f"submission failed: {outcome}")
            return
        if isinstance(outcome, Exception):
            self.tasks.change(rec, FAILED, "launch_failed",
                              message=str(outcome).splitlines()[0] if str(outcome) else type(outcome).__name__)
            return
        crash_point("remoted:after_submit")
        if self.tasks.change(rec, PENDING, "launching", also={"phase": LAUNCHED, "handle": outcome},
                             job_id=outcome.job_id) and rec.cancel_requested:
            # Asked for while the submission was under way: sent now that the job is on
            # record (and, if the scheduler cannot take it now, by the next poll).
            send_cancel(self.tasks, self.scheduler, rec)

    def apply_outcomes(self) -> None:
        """Wait for the submissions handed to worker threads in this pass and record each
        outcome.  Every pass ends here, so no submission outlives the pass that made it and
        the rest of remoted never sees one half done."""
        in_flight, self._in_flight = self._in_flight, {}
        wait([future for _rec, future in in_flight.values()])     # none may outlive this pass
        for rec, future in in_flight.values():
            try:
                self.apply_outcome(rec, future.result())
            except Exception:  # noqa: BLE001 - one task's bookkeeping never stops the others'
                # The job may exist: the record stays "launching" on disk, and recovery looks
                # it up by name instead of submitting it again.
                log.exception("%s/%s: recording the submission failed", rec.user, rec.id)

    def _submit_in_line(self, rec: TaskRecord) -> None:
        """Steps 2 and 3 for a task whose intent is already recorded (phase launching)."""
        assert rec.spec is not None
        self.apply_outcome(rec, self.submit(rec.spec, self.tasks.launched_handles()))


def enforce_max_queued(tasks: ActiveTasks, limits_of: Callable[[str], UserLimits]) -> None:
    """Tasks beyond a student's queue limit (after this pass launched what it could)
    fail plainly instead of waiting without end; the newest go first."""
    waiting: dict[str, list[TaskRecord]] = {}
    for r in tasks.in_phase(QUEUED):
        waiting.setdefault(r.user, []).append(r)
    for user, recs in waiting.items():
        limit = limits_of(user).max_queued
        if limit is None or len(recs) <= limit:
            continue
        recs.sort(key=lambda r: (r.order, r.id))
        for extra in recs[limit:]:
            tasks.change(extra, FAILED, "user_limit",
                         message=f"you already have {limit} task(s) waiting; the limit is {limit}")
