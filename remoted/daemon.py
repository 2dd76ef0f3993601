"""remoted: accepts uploaded tasks, queues them fairly, runs them through a scheduler and
publishes their status.  A thin loop around ``Intake``, ``RecordStore`` and a scheduler.

Crash safety: every decision is written to the task's record before it is acted on, and
the record, not memory, is what a restarted remoted starts from.  Memory takes a change
only once it is written (``RecordStore.save``): a change that cannot be written (a full
disk) is simply not made, and the next pass derives it again from what is still there to
see (the scheduler's report, the request file, the upload).
"""

from __future__ import annotations

import logging
import os
import stat
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from ailabber.daemonkit.faults import crash_point
from ailabber.daemonkit.loop import DaemonLoop
from ailabber.daemonkit.settings import RemotedSettings
from ailabber.model.remote_layout import REQUESTS, USERS, UserArea
from ailabber.model.task import CANCELED, FAILED, PENDING, RUNNING, IllegalTransition, transition
from ailabber.storage import fsutil
from ailabber.storage.safedir import SafeDir
from remoted.heartbeat import Heartbeat
from remoted.intake import Intake, upload_pending, user_areas
from remoted.jobspec import JobDefaults, JobSpec
from remoted.outage import WriteTrouble, passing, plain
from remoted.queue import fair_order, over_limit
from remoted.records import ACCEPTING, LAUNCHED, LAUNCHING, QUEUED, RecordStore, TaskRecord
from remoted.schedulers import load_scheduler
from remoted.schedulers.base import (
    SUBMIT_OUTCOMES,
    Blocked,
    JobHandle,
    JobState,
    Scheduler,
    SchedulerUnavailable,
)

log = logging.getLogger("remoted")


class Remoted:
    def __init__(self, settings: RemotedSettings, scheduler: Scheduler | None = None):
        self.settings = settings
        self.root = settings.root
        self.trouble = WriteTrouble()     # writes failing for a while (a full disk): logged once
        self.store = RecordStore(self.root, self.trouble)
        self.scheduler = scheduler or load_scheduler(settings)
        self.intake = self._make_intake(settings)
        self._unsaved: set[tuple[str, str]] = set()   # queued in memory, accept intent on disk
        self._in_flight: dict[tuple[str, str], tuple[TaskRecord, Future[JobHandle | Exception]]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self.active: dict[tuple[str, str], TaskRecord] = {}   # (user, id): ids are unique per user
        self._order = 0
        self._last_served: dict[str, float] = {}
        self._heartbeat = Heartbeat(self.root)
        self._idle = False
        self._loaded = False

    # --- setup ---------------------------------------------------------------------------
    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _make_intake(self, settings: RemotedSettings) -> Intake:
        intake = Intake(self.root, self.store, JobDefaults.from_settings(settings), settings.limits.published(),
                        settings.transport_account)
        intake.defer_queued_saves = True     # see _save_unlaunched
        return intake

    def reconfigure(self, settings: RemotedSettings) -> None:
        """SIGHUP: limits, intervals and job settings change; root and scheduler need a restart."""
        if settings.root != self.settings.root or settings.scheduler != self.settings.scheduler:
            raise ValueError("root and scheduler cannot change while remoted runs; restart it instead")
        old = self.settings
        if ((settings.gpus, settings.slurm, settings.kill_grace, settings.containment)
                != (old.gpus, old.slurm, old.kill_grace, old.containment)):
            log.warning("gpus, slurm, kill_grace and containment take effect at the next restart of remoted")
        self.settings = settings
        self.intake = self._make_intake(settings)

    def status_line(self) -> str:
        queued = sum(1 for r in self.active.values() if r.phase == QUEUED)
        running = sum(1 for r in self.active.values() if r.phase in (LAUNCHING, LAUNCHED))
        line = f"{queued} queued, {running} handed to {self.scheduler.name}"
        if self.trouble.failing:
            line += f"; cannot write {', '.join(self.trouble.failing)}"
        return line

    def prepare(self) -> None:
        fsutil.ensure_dirs(self.root, self.root / USERS, self.settings.env_cache_dir)
        self.store.ensure()

    def watch_dirs(self) -> list[Path]:
        dirs = [self.root / USERS]
        for area in user_areas(self.root):
            dirs += [area.incoming_commit, area.requests]
        return dirs

    def load(self) -> None:
        for rec in self.store.load_active():
            self.active[(rec.user, rec.id)] = rec
            self._order = max(self._order, rec.order + 1)
        for user, task_id in self.store.outbox.owed_after_restart():
            owed = self.store.get(user, task_id)
            if owed is not None:
                self.store.publish(owed, None)     # the outbox catches up with the record
        self._loaded = True
        log.info("loaded %d unfinished task(s)", len(self.active))

    # --- the pass ------------------------------------------------------------------------
    def step(self) -> float:
        # Group commit for the whole pass; the two orderings that matter (an accept's
        # intent before its rename, a launch's intent before the scheduler is called) are
        # flushed explicitly where they happen.
        with fsutil.deferred_fsync(self.root):
            return self._step()

    def idle(self) -> bool:
        """Whether the last pass recorded nothing (then the next one may wait a little:
        a pass woken by events that led nowhere)."""
        return self._idle

    def _step(self) -> float:
        writes_before = self.store.writes
        try:
            return self._pass()
        finally:
            self._idle = self.store.writes == writes_before

    def _pass(self) -> float:
        if not self._loaded:
            self.load()
        queues = self.scheduler.queues
        self.store.outbox.retry()          # what earlier passes could not publish, in order
        try:
            for area in user_areas(self.root):
                accepted = self.intake.scan_user(area, self._order)
                for rec in accepted:
                    self._order = max(self._order, rec.order + 1)
                    if rec.status.terminal:
                        continue
                    self.active[(rec.user, rec.id)] = rec
                    self._unsaved.add((rec.user, rec.id))
                self.handle_cancels_of(area)    # before any launch: a cancelled task is never submitted
                if queues and accepted:
                    # Hand this student's new tasks to the scheduler now: their submissions
                    # run in worker threads while the next student's uploads are accepted.
                    self.launch_queued()
            self.finish_orphaned_accepts()
            self.recover_launching()
            self.poll()
            self.launch_queued()
            self.enforce_max_queued()
        finally:
            self._collect_submissions()
            self._save_unlaunched()
        self._beat()
        busy = any(r.phase in (LAUNCHING, LAUNCHED) for r in self.active.values())
        return self.settings.poll_interval if busy else self.settings.rescan_interval

    def _beat(self) -> None:
        """Signs of life; one that cannot be written costs the admin a fresh heartbeat,
        never the pass."""
        try:
            if self._heartbeat.beat(self.scheduler, self.settings, self.active):
                self.trouble.ok("heartbeat.json")
        except OSError as exc:
            self.trouble.failed("heartbeat.json", exc)

    def _save_unlaunched(self) -> None:
        """Save the queued records of tasks accepted this pass and not launched in it.  A
        burst's tasks are launched in the pass that accepts them, and their launch intent
        is then the only record written after the accept's: one write per task less.  A
        record that cannot be written yet is tried again next pass; meanwhile its accept
        intent on disk stands for it."""
        left: set[tuple[str, str]] = set()
        for key in self._unsaved:
            rec = self.active.get(key)
            if rec is None or rec.phase != QUEUED or rec.status.terminal:
                continue
            try:
                self.store.save(rec)
            except OSError:
                left.add(key)
        self._unsaved = left

    def _change(self, rec: TaskRecord, state: str, reason: str | None, *,
                also: dict[str, object] | None = None, **fields: object) -> bool:
        """Record a state change, together with the record fields in ``also``, as one
        write; then publish it.  False if it could not be written: then nothing changed,
        in memory either, and the caller's next pass derives the change again."""
        changes: dict[str, object] = dict(also or {})
        event = None
        if not (rec.status.state == state and rec.status.reason == reason
                and fields.get("message") == rec.status.message and "job_id" not in fields):
            changes["status"], event = transition(rec.status, state, reason, **fields)  # type: ignore[arg-type]
        if not changes:
            return True
        if not self._commit(rec, event, **changes):
            return False
        if rec.status.terminal:
            self.active.pop((rec.user, rec.id), None)
        if event is not None:
            log.info("%s/%s: %s%s", rec.user, rec.id, state, f" ({reason})" if reason else "")
        return True

    def _commit(self, rec: TaskRecord, event: dict[str, object] | None, **changes: object) -> bool:
        """The one way a kept record changes: written first, then taken in memory, then
        published (``event`` with it).  False, with ``rec`` untouched, if the write failed
        (the store logs that once per outage)."""
        try:
            self.store.save(rec, **changes)
        except OSError:
            return False
        if event is not None:
            self.store.publish(rec, event)
        return True

    def enforce_max_queued(self) -> None:
        """Tasks beyond a student's queue limit (after this pass started what it could)
        fail plainly instead of waiting without end; the newest go first."""
        limit = self.settings.limits.max_queued
        if limit is None:
            return
        waiting: dict[str, list[TaskRecord]] = {}
        for r in self.active.values():
            if r.phase == QUEUED:
                waiting.setdefault(r.user, []).append(r)
        for user, recs in waiting.items():
            recs.sort(key=lambda r: (r.order, r.id))
            for extra in recs[limit:]:
                self._change(extra, FAILED, "user_limit",
                             message=f"you already have {limit} task(s) waiting; the limit is {limit}")

    def finish_orphaned_accepts(self) -> None:
        """A task renamed into tasks/ whose marker then vanished still gets its record."""
        for key, rec in list(self.active.items()):
            if rec.phase != ACCEPTING:
                continue
            try:
                new = self.intake.finish_orphan(rec)
            except OSError as exc:
                log.debug("%s/%s: finishing the accept failed; next pass retries: %s", rec.user, rec.id, exc)
                continue
            self.active.pop(key, None)
            if new is not None and not new.status.terminal:
                self.active[key] = new
                self._unsaved.add(key)

    def handle_cancels_of(self, area: UserArea) -> None:
        """Carry out one student's cancel requests.  A request for a task whose upload is
        still in the student's ``incoming/`` (its marker landed after this scan) is kept for
        the pass that accepts it; any other request for an unknown task is removed."""
        try:
            with SafeDir.open(self.root / USERS) as users, users.sub(area.user) as adir, \
                    adir.sub(REQUESTS) as req:
                for name in req.listdir():
                    task_id, _, kind = name.rpartition(".")
                    if name.startswith(".") or kind != "cancel":
                        continue
                    rec = self.active.get((area.user, task_id))   # only your own tasks
                    try:
                        st = req.lstat(name)
                        if rec is None and upload_pending(adir, task_id):
                            continue
                        if rec is not None and not self.cancel(rec):
                            continue        # not recorded yet: the request stays for the next pass
                        if stat.S_ISDIR(st.st_mode):
                            os.rmdir(name, dir_fd=req.fd)
                        else:
                            os.unlink(name, dir_fd=req.fd)
                    except OSError as exc:
                        log.debug("%s: cannot handle request %s: %s", area.user, name, exc)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.debug("%s: requests unreadable: %s", area.user, exc)

    def cancel(self, rec: TaskRecord) -> bool:
        """Carry out a cancel request; False if it could not be recorded (yet)."""
        if rec.cancel_requested and rec.phase != QUEUED:
            return True
        if rec.phase == QUEUED:
            return self._change(rec, CANCELED, "canceled_by_user", also={"cancel_requested": True})
        if not self._commit(rec, None, cancel_requested=True):
            return False
        if rec.handle is not None:
            self.scheduler.cancel(rec.handle)
            self._commit(rec, None, handle=rec.handle)    # the scheduler notes the cancel in the handle
        return True

    def recover_launching(self) -> None:
        """A crash between "launching" and "launched": adopt the job if it exists."""
        for key, rec in list(self.active.items()):
            if rec.phase != LAUNCHING or rec.spec is None or key in self._in_flight:
                continue
            try:
                handle = self.scheduler.find(rec.spec)
            except SchedulerUnavailable as exc:
                log.warning("%s/%s: cannot check whether it was started yet: %s", rec.user, rec.id, exc)
                continue
            # A change that cannot be written leaves the task launching: the next pass asks again.
            if handle is None and rec.cancel_requested:
                self._change(rec, CANCELED, "canceled_by_user")
            elif handle is None:
                if self._commit(rec, None, phase=QUEUED):
                    log.info("%s/%s: was never started; queueing it again", rec.user, rec.id)
            else:
                if rec.cancel_requested:
                    self.scheduler.cancel(handle)
                if self._commit(rec, None, phase=LAUNCHED, handle=handle):
                    log.info("%s/%s: adopted job %s started before a restart", rec.user, rec.id, handle.job_id)

    def _active_handles(self) -> list[JobHandle]:
        return [r.handle for r in self.active.values() if r.phase == LAUNCHED and r.handle]

    def poll(self) -> None:
        launched = [r for r in self.active.values() if r.phase == LAUNCHED and r.handle]
        if not launched:
            return
        try:
            states = self.scheduler.poll([r.handle for r in launched])  # type: ignore[misc]
        except SchedulerUnavailable as exc:
            log.warning("scheduler unavailable: %s", exc)
            return
        for rec in launched:
            js = states.get(rec.handle.job_id)  # type: ignore[union-attr]
            if js is None:
                continue
            try:
                self._apply(rec, js)
            except IllegalTransition as exc:
                # e.g. a result record the student forged: ignore it, keep serving everyone.
                log.warning("%s/%s: ignoring an impossible report from the job: %s", rec.user, rec.id, exc)
            except Exception:  # noqa: BLE001 - one task's report never stops the pass for everyone
                log.exception("%s/%s: cannot apply the job's report", rec.user, rec.id)
        self.scheduler.enforce_limits(self._active_handles(), time.time())

    def _apply(self, rec: TaskRecord, js: JobState) -> None:
        fields: dict[str, Any] = {}
        if js.exit_code is not None:
            fields["exit_code"] = js.exit_code
        if js.message:
            fields["message"] = js.message
        if js.started_at and not rec.status.started_at:
            fields["started_at"] = js.started_at
        if js.state == PENDING and rec.status.state == RUNNING and js.reason != "requeued":
            return  # a requeue is reported by the scheduler explicitly, never guessed
        if js.state == rec.status.state and js.reason == rec.status.reason:
            return
        self._change(rec, js.state, js.reason, **fields)

    def launch_queued(self) -> None:
        queued = [r for r in self.active.values() if r.phase == QUEUED]
        if not queued:
            return
        running: dict[str, int] = {}
        gpus: dict[str, int] = {}
        for r in self.active.values():
            if r.phase in (LAUNCHING, LAUNCHED):
                running[r.user] = running.get(r.user, 0) + 1
                gpus[r.user] = gpus.get(r.user, 0) + (r.spec.gpus if r.spec else 0)
        limits = self.settings.limits
        batch: list[TaskRecord] = []
        for rec in fair_order(queued, running, self._last_served):
            assert isinstance(rec, TaskRecord)
            if rec.spec is None:
                continue
            if limits.max_gpus is not None and rec.spec.gpus > limits.max_gpus:
                self._change(rec, FAILED, "unsatisfiable",
                             message=f"asks for {rec.spec.gpus} GPU(s); the per-user limit is {limits.max_gpus}")
                continue
            why = over_limit(rec.user, rec.spec.gpus, running, gpus, limits.max_running, limits.max_gpus)
            if why:
                self._change(rec, PENDING, "user_limit", message=why)
                continue
            try:
                self.scheduler.check(rec.spec, self._active_handles())
            except Blocked as b:
                if b.reason == "unsatisfiable":
                    self._change(rec, FAILED, "unsatisfiable", message=b.message)
                else:
                    self._change(rec, PENDING, b.reason, message=b.message)
                continue
            if self.scheduler.queues:
                batch.append(rec)          # Slurm queues by itself: launch together below
                running[rec.user] = running.get(rec.user, 0) + 1
                gpus[rec.user] = gpus.get(rec.user, 0) + rec.spec.gpus
                continue
            self.launch(rec)
            self._last_served[rec.user] = time.monotonic()
            if rec.phase == LAUNCHED:
                running[rec.user] = running.get(rec.user, 0) + 1
                gpus[rec.user] = gpus.get(rec.user, 0) + rec.spec.gpus
        if batch:
            self.launch_batch(batch)

    def launch_batch(self, batch: list[TaskRecord]) -> None:
        """Record every launch intent, make them durable with one flush, then submit:
        the same exactly-once rule as ``launch`` at a fraction of the flushes.  A scheduler
        that takes concurrent submissions (``concurrent_submits``) gets them from worker
        threads; ``_collect_submissions`` records their outcomes before the pass ends."""
        with fsutil.deferred_fsync(self.root) as group:
            batch = [rec for rec in batch if self._record_intent(rec)]
            group.barrier()
            crash_point("remoted:before_submit")
            workers = self.scheduler.concurrent_submits
            if workers <= 1:
                for rec in batch:
                    self._submit(rec)
                    self._last_served[rec.user] = time.monotonic()
                return
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="submit")
            active = self._active_handles()
            for rec in batch:
                assert rec.spec is not None          # every record with an intent has a spec
                self._in_flight[(rec.user, rec.id)] = (rec, self._pool.submit(self._try_submit, rec.spec, active))
                self._last_served[rec.user] = time.monotonic()

    def _record_intent(self, rec: TaskRecord) -> bool:
        """Prepare the job's directories, then record the launch intent.
        The run and log directories live in the student's area: if the student made that
        impossible, only this task fails (False), never the pass for everyone."""
        assert rec.spec is not None
        try:
            rec.spec.prepare_dirs()
        except OSError as exc:
            if passing(exc):
                # No room (yet): the task waits for space and says so; it does not fail.
                self.trouble.failed("job directories", exc)
                self._change(rec, PENDING, "queued", message=plain(exc))
            else:
                self._change(rec, FAILED, "launch_failed", message=f"cannot prepare the job's directories: {exc}")
            return False
        self.trouble.ok("job directories")
        return self._commit(rec, None, phase=LAUNCHING)

    def launch(self, rec: TaskRecord) -> None:
        if not self._record_intent(rec):
            return
        fsutil.flush_deferred(self.root)     # the intent is on disk before the scheduler hears of it
        crash_point("remoted:before_submit")
        self._submit(rec)

    def _submit(self, rec: TaskRecord) -> None:
        """Hand a task whose intent is already recorded (phase launching) to the scheduler."""
        assert rec.spec is not None
        self._submitted(rec, self._try_submit(rec.spec, self._active_handles()))

    def _try_submit(self, spec: JobSpec, active: list[JobHandle]) -> JobHandle | Exception:
        """``scheduler.submit``, its expected failures returned rather than raised (it runs
        in a worker thread for schedulers that take concurrent submissions)."""
        try:
            return self.scheduler.submit(spec, active)
        except Exception as exc:  # noqa: BLE001 - returned; _submitted tells the known from the unexpected
            return exc

    def _collect_submissions(self) -> None:
        """Wait for the submissions handed to worker threads in this pass and record each
        outcome.  Every pass ends here, so no submission outlives the pass that made it and
        the rest of remoted never sees one half done."""
        in_flight, self._in_flight = self._in_flight, {}
        wait([future for _rec, future in in_flight.values()])     # none may outlive this pass
        for rec, future in in_flight.values():
            try:
                self._submitted(rec, future.result())
            except Exception:  # noqa: BLE001 - one task's bookkeeping never stops the others'
                # The job may exist: the record stays "launching" on disk, and recovery looks
                # it up by name instead of submitting it again.
                log.exception("%s/%s: recording the submission failed", rec.user, rec.id)

    def _submitted(self, rec: TaskRecord, result: JobHandle | Exception) -> None:
        """Record what submitting a launching task came to: a job, or why not."""
        # Each outcome is one write.  One that cannot be written leaves the task launching,
        # and the next pass looks the job up (recover_launching) as after a crash.
        if isinstance(result, Blocked):
            self._change(rec, PENDING, result.reason, also={"phase": QUEUED}, message=result.message)
            return
        if isinstance(result, SchedulerUnavailable):
            # Maybe submitted, maybe not: stay "launching" so the next pass looks it up.
            log.warning("%s/%s: scheduler unavailable during submit: %s", rec.user, rec.id, result)
            self._change(rec, PENDING, "scheduler_unreachable", message=str(result))
            return
        if isinstance(result, Exception) and not isinstance(result, SUBMIT_OUTCOMES):
            # Unexpected (a bug, a failed user lookup): maybe submitted, maybe not.
            log.error("%s/%s: submitting failed unexpectedly: %r", rec.user, rec.id, result)
            self._change(rec, PENDING, "scheduler_unreachable", message=f"submission failed: {result}")
            return
        if isinstance(result, Exception):
            self._change(rec, FAILED, "launch_failed",
                         message=str(result).splitlines()[0] if str(result) else type(result).__name__)
            return
        crash_point("remoted:after_submit")
        if rec.cancel_requested:
            # Asked for while the submission was under way.  Sent before the record says
            # "launched": after a crash in between, recovery (which sees "launching" and the
            # request) cancels the job again rather than never.
            self.scheduler.cancel(result)
        self._change(rec, PENDING, "launching", also={"phase": LAUNCHED, "handle": result}, job_id=result.job_id)


def run(settings: RemotedSettings, reload_settings: Callable[[], RemotedSettings] | None = None) -> int:
    try:
        d = Remoted(settings)
    except ValueError as exc:          # a scheduler that cannot work here, said in one line
        log.error("%s", exc)
        print(f"ailabber-remoted: {exc}", file=sys.stderr)
        return 2
    d.prepare()

    def reload() -> None:
        if reload_settings is not None:
            d.reconfigure(reload_settings())
            loop.rescan_interval = d.settings.rescan_interval

    loop = DaemonLoop("remoted", settings.root / "remoted.lock", d.step, d.watch_dirs, settings.rescan_interval,
                      status=d.status_line, reload=reload, idle=d.idle)
    try:
        return loop.run()
    finally:
        d.close()
