"""remoted: accepts uploaded tasks, queues them fairly, runs them through a scheduler and
publishes their status.  A thin loop: one pass (``step``) runs the acts in order, each in
its own module:

- ``remoted.admin_requests``: carry out the course staff's requests (``remoted.admin_acts``);
- ``remoted.intake``: accept what students committed (judged by ``remoted.uploadcheck``);
- ``remoted.cancel``: carry out cancel requests, before anything is launched;
- ``remoted.recovery``: finish accepts and launches a crash or a failed write left half done;
- ``remoted.poll``: what the scheduler says of launched jobs becomes the tasks' state;
- ``remoted.launch``: queued tasks become jobs, exactly once (intent, submit, outcome);
- ``remoted.publish``: the one way a task's state changes, recorded then published;
- ``remoted.queueview``: where waiting tasks stand, and each student's use, as views.

Crash safety: every decision is written to the task's record before it is acted on, and
the record, not memory, is what a restarted remoted starts from.  Memory takes a change
only once it is written (``RecordStore.save``): a change that cannot be written (a full
disk) is simply not made, and the next pass derives it again from what is still there to
see (the scheduler's report, the request file, the upload).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ailabber.daemonkit.loop import DaemonLoop
from ailabber.daemonkit.remoted_settings import RemotedSettings
from ailabber.model.joblimits import JobLimits
from ailabber.model.remote_layout import DAEMON_LOCK, USERS
from ailabber.storage import fsutil
from ailabber.storage.upload_limits import UploadLimits
from remoted.admin.access import staff_gid
from remoted.admin_acts import Acts
from remoted.admin_requests import StaffRequests
from remoted.cancel import handle_cancel_requests
from remoted.heartbeat import Heartbeat
from remoted.holds import Holds
from remoted.intake import Intake, user_areas
from remoted.jobspec import JobDefaults
from remoted.launch import Launcher, enforce_max_queued
from remoted.outage import WriteTrouble
from remoted.outputs import final_files
from remoted.poll import poll
from remoted.publish import ActiveTasks
from remoted.purge import Purger
from remoted.queueview import JobUse, QueueView
from remoted.records import LAUNCHED, LAUNCHING, QUEUED, RecordStore
from remoted.recovery import finish_orphaned_accepts, recover_launching
from remoted.schedulers import load_scheduler
from remoted.schedulers.base import Scheduler
from remoted.user_limits import CourseLimits

log = logging.getLogger("remoted")


class Remoted:
    """One remote root's daemon: what the loop calls (``step`` is one pass) and the state
    that lives between passes; the acts themselves are in the modules named above."""

    def __init__(self, settings: RemotedSettings, scheduler: Scheduler | None = None):
        self.settings = settings
        self.root = settings.root
        self.trouble = WriteTrouble()     # writes failing for a while (a full disk): logged once
        self.store = RecordStore(self.root, self.trouble, staff_gid(settings))
        self.scheduler = scheduler or load_scheduler(settings)
        self.tasks = ActiveTasks(self.store)
        self.active = self.tasks.active   # (user, id) -> record of every unfinished task
        self.launcher = Launcher(self.root, self.scheduler, self.tasks, self.trouble)
        self.queue_view = QueueView(self.root, self.trouble)
        self.job_use = JobUse(self.tasks)
        self.intake = self._make_intake(settings)
        self.holds = Holds(self.root)
        self.limits = CourseLimits(self.root, settings.limits)     # each student's, with the staff's overrides
        self.purger = Purger(self.root, self.tasks, lambda user: self.intake.usage.measure(user))
        self.staff = StaffRequests(self.root, settings, Acts(self.tasks, self.scheduler, self.holds, self.limits,
                                                             self.purger))
        self._order = 0
        self._heartbeat = Heartbeat(self.root)
        self._idle = False
        self._loaded = False

    # --- setup ---------------------------------------------------------------------------
    def close(self) -> None:
        self.launcher.close()

    def _make_intake(self, settings: RemotedSettings) -> Intake:
        intake = Intake(self.root, self.store, JobDefaults.from_settings(settings), self._upload_limits,
                        settings.transport_account, self._job_limits)
        intake.defer_queued_saves = True     # see ActiveTasks.save_unlaunched
        return intake

    def reconfigure(self, settings: RemotedSettings) -> None:
        """SIGHUP: limits, intervals, job settings and the admin_group change; root and
        scheduler need a restart."""
        if settings.root != self.settings.root or settings.scheduler != self.settings.scheduler:
            raise ValueError("root and scheduler cannot change while remoted runs; restart it instead")
        old = self.settings
        if ((settings.gpus, settings.slurm, settings.kill_grace, settings.containment)
                != (old.gpus, old.slurm, old.kill_grace, old.containment)):
            log.warning("gpus, slurm, kill_grace and containment take effect at the next restart of remoted")
        self.settings = settings
        self.limits.base = settings.limits
        self.intake = self._make_intake(settings)
        if staff_gid(settings) != self.store.readers:      # admin_group set or changed
            self.store.readers = staff_gid(settings)
            self.store.ensure()
        self.staff.settings = settings
        self.staff.prepare()               # admin_group may have changed
        self.purger.due_now()              # retention may have changed

    def _job_limits(self, user: str) -> JobLimits:
        """What limits.json says of ``user``'s tasks: the limits in force and the current use."""
        return self.job_use.of(user, self.limits.of(user), self.scheduler.gpu_slots())

    def _upload_limits(self, user: str) -> UploadLimits:
        """``user``'s upload limits and disk caps, checked at intake and published."""
        return self.limits.of(user).published()

    def status_line(self) -> str:
        queued = len(self.tasks.in_phase(QUEUED))
        running = len(self.tasks.in_phase(LAUNCHING, LAUNCHED))
        line = f"{queued} queued, {running} handed to {self.scheduler.name}"
        if self.trouble.failing:
            line += f"; cannot write {', '.join(self.trouble.failing)}"
        return line

    def prepare(self) -> None:
        fsutil.ensure_dirs(self.root, self.root / USERS, self.settings.env_cache_dir)
        self.store.ensure()
        self.staff.prepare()

    def watch_dirs(self) -> list[Path]:
        dirs = [self.root / USERS, self.staff.requests_dir]
        for area in user_areas(self.root):
            dirs += [area.incoming_commit, area.requests]
        return dirs

    def load(self) -> None:
        for rec in self.store.load_active():
            self.active[(rec.user, rec.id)] = rec
            self._order = max(self._order, rec.order + 1)
        for user, task_id in self.store.outbox.owed_after_restart():
            owed = self.store.get(user, task_id)
            if owed is not None:                   # the outbox catches up with the record
                self.store.publish(owed, None, final_files(self.root, owed) if owed.status.terminal else None)
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
            self.staff.handle()            # before any launch: a held or cancelled task is never submitted
            for area in user_areas(self.root):
                accepted = self.intake.scan_user(area, self._order)
                for rec in accepted:
                    self._order = max(self._order, rec.order + 1)
                    if not rec.status.terminal:
                        self.tasks.accepted(rec)
                # Before any launch: a cancelled task is never submitted.
                handle_cancel_requests(self.root, area, self.tasks, self.scheduler)
                if queues and accepted:
                    # Hand this student's new tasks to the scheduler now: their submissions
                    # run in worker threads while the next student's uploads are accepted.
                    self.launcher.launch_queued(self.limits.of, self.holds.of)
            finish_orphaned_accepts(self.tasks, self.intake)
            recover_launching(self.tasks, self.scheduler, self.launcher.submitting)
            self.queue_view.heard(poll(self.tasks, self.scheduler))
            self.launcher.launch_queued(self.limits.of, self.holds.of)
            enforce_max_queued(self.tasks, self.limits.of)
        finally:
            self.launcher.apply_outcomes()
            self.tasks.save_unlaunched()
        self._show_queue()
        self._beat()
        retention = self.settings.retention
        self.purger.maybe_apply(retention.max_age if retention else None, time.time())
        busy = bool(self.tasks.in_phase(LAUNCHING, LAUNCHED))
        return self.settings.poll_interval if busy else self.settings.rescan_interval

    def _show_queue(self) -> None:
        """Each student's queue.json: where their waiting tasks stand, when they may start."""
        entries = self.queue_view.entries(self.tasks, self.launcher.queue_order(self.holds.of),
                                          self.scheduler.gpu_slots(), self.limits.of, self.settings.kill_grace,
                                          time.time(), self.holds.of)
        self.queue_view.publish(entries)

    def _beat(self) -> None:
        """Signs of life; one that cannot be written costs the admin a fresh heartbeat,
        never the pass."""
        try:
            if self._heartbeat.beat(self.scheduler, self.settings, self.active):
                self.trouble.ok("heartbeat.json")
        except OSError as exc:
            self.trouble.failed("heartbeat.json", exc)


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

    loop = DaemonLoop("remoted", settings.root / DAEMON_LOCK, d.step, d.watch_dirs, settings.rescan_interval,
                      status=d.status_line, reload=reload, idle=d.idle)
    try:
        return loop.run()
    finally:
        d.close()
