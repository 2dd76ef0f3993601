"""spoold: sends committed tasks to the remote spool and brings their state back.

One pass: act on the CLI's requests, push what is in ``new/``, pull status and logs of
what is in ``synced/`` when they are due (``pullclock.py``: on the gate's notices, which
``watchchannel.py`` receives, or by polling), and retire finished tasks to ``done/`` with
their results.  Filesystem events and notices only make a pass come sooner; the pass
itself rescans everything.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from pathlib import Path

from ailabber.daemonkit.faults import crash_point
from ailabber.daemonkit.loop import DaemonLoop
from ailabber.daemonkit.spoold_settings import SpooldSettings
from ailabber.model.pathlimits import tree_problems
from ailabber.model.task import CANCELED, FAILED, PENDING, TaskStatus, now_iso, transition
from ailabber.storage import fsutil, statusfile
from ailabber.storage.following import followed, following_dir
from ailabber.storage.remoted_beat import REMOTED_BEAT, RemotedBeat, pull_every, pulled
from ailabber.storage.spool import (
    DAEMON_LOCK,
    DONE,
    FILES,
    MANIFEST,
    META,
    NEW,
    SYNCED,
    UPLOAD_MEMBERS,
    Spool,
)
from ailabber.storage.trash import TaskGone, reading
from ailabber.storage.upload_limits import LIMITS_FILE, UploadLimits, published
from spoold.basis import needs_checksum, newest_accepted
from spoold.merge import merge_remote
from spoold.notices import Notices
from spoold.progress import UploadProgress
from spoold.pullclock import ADAPTIVE, POLL, WATCH, Due, PullClock
from spoold.results import pull_results
from spoold.retention import Retention, drop_status_mirror
from spoold.transport import RsyncTransport, TransportError
from spoold.watchchannel import UP, WatchChannel

log = logging.getLogger("spoold")
TMP_CLEAN_EVERY = 3600.0
RESULT_ATTEMPTS = 5
BATCH_TASK_BYTES = 1_000_000    # tasks up to this size travel together
BATCH_TASKS = 200


class Spoold:
    def __init__(self, settings: SpooldSettings, transport: RsyncTransport | None = None):
        self.settings = settings
        self.spool = Spool(settings.spool)
        self.transport = transport or RsyncTransport.to(settings)
        self._retry_at: dict[str, float] = {}
        self._attempts: dict[str, int] = {}
        self._last_tmp_clean = 0.0
        self.last_contact: float | None = None
        self._result_failures: dict[str, int] = {}
        self.notices = Notices(self.spool, settings.notices)
        self.retention = Retention(self.spool, settings.retention)
        self.wake: Callable[[], None] = lambda: None     # the loop's, once it runs: news came
        self.clock = PullClock(settings.poll_interval, settings.remote_rescan_interval)
        self.channel = self._channel()
        self._pull_wait = 0.0

    def reconfigure(self, settings: SpooldSettings) -> None:
        """SIGHUP: new intervals, remote or key take effect from the next pass."""
        if settings.spool != self.settings.spool:
            raise ValueError("the spool path cannot change while spoold runs; restart it instead")
        old = self.transport
        self.settings = settings
        self.notices.configure(settings.notices)
        self.transport = RsyncTransport.to(settings)
        if self.channel is not None:
            self.channel.close()
        old.close()
        self.clock = PullClock(settings.poll_interval, settings.remote_rescan_interval)
        self.channel = self._channel()
        self.retention.reconfigure(settings.retention)

    def _channel(self) -> WatchChannel | None:
        argv = self.transport.watch_argv()
        if argv is None:
            return None
        return WatchChannel(argv, lambda: self.wake(), ack_timeout=3.0 * self.settings.connect_timeout)

    def status_line(self) -> str:
        waiting = len(self.spool.ids_in(NEW))
        active = len(self.spool.ids_in(SYNCED))
        contact = "never" if self.last_contact is None else f"{time.time() - self.last_contact:.0f}s ago"
        retrying = f", {len(self._retry_at)} retrying" if self._retry_at else ""
        return f"{waiting} to upload{retrying}, {active} on the cluster, last contact with the remote {contact}"

    def prepare(self) -> None:
        self.spool.ensure()
        fsutil.ensure_dirs(following_dir(self.spool.root), mode=0o700)
        try:
            self.transport.prepare()
        except OSError as exc:
            log.warning("cannot prepare the remote directory yet: %s", exc)

    def watch_dirs(self) -> list[Path]:
        """new/ and requests/ (work to do), following/ (someone now waits for news)."""
        return [self.spool.stage_dir(NEW), self.spool.requests_dir, following_dir(self.spool.root)]

    # --- the pass ------------------------------------------------------------------------
    def step(self) -> float:
        self.handle_requests()
        self.sync_active()          # first: its pull brings limits.json, which push_new applies
        self.push_new()
        backlog = self.notices.step()
        now = time.time()
        if now - self._last_tmp_clean > TMP_CLEAN_EVERY:
            self._last_tmp_clean = now
            for name in self.spool.clean_stale_tmp():
                log.info("removed abandoned submission %s from tmp/", name)
        self.retention.maybe_run()
        wait = min(self.settings.rescan_interval, self._pull_wait)
        if self._retry_at:
            wait = min(wait, max(0.05, min(self._retry_at.values()) - now))
        if backlog:
            wait = min(wait, 1.0)
        return wait

    def _record(self, task_dir: Path, state: str, reason: str | None, **fields: object) -> TaskStatus | None:
        st = statusfile.read_status(task_dir)
        if st is None or st.terminal:
            return st
        st, event = transition(st, state, reason, **fields)  # type: ignore[arg-type]
        statusfile.record(task_dir, st, event)
        return st

    def retire(self, task_id: str, stage: str) -> None:
        """A finished task moves to done/, its notice queued first (``notices.py``)."""
        self.notices.ended(task_id, self.spool.stage_dir(stage) / task_id)
        crash_point("spoold:notice_queued")
        self.spool.move(task_id, stage, DONE)
        drop_status_mirror(self.spool, task_id)

    # --- requests from the CLI -----------------------------------------------------------
    def handle_requests(self) -> None:
        for task_id, kind in list(self.spool.requests()):
            loc = self.spool.locate(task_id)
            try:
                if loc is None:
                    log.warning("request %s for unknown task %s dropped", kind, task_id)
                elif kind == "cancel":
                    self._cancel(task_id, *loc)
                elif kind == "fetch":
                    self._fetch(task_id, *loc)
            except TransportError as exc:
                log.warning("%s of %s: %s (will retry)", kind, task_id, exc)
                continue
            self.spool.clear_request(task_id, kind)

    def _cancel(self, task_id: str, stage: str, task_dir: Path) -> None:
        if stage == NEW:
            # Never sent: cancel here and never send it.
            st = self._record(task_dir, CANCELED, "canceled_by_user")
            self.retire(task_id, NEW)
            log.info("%s: canceled before upload (%s)", task_id, st.state if st else "?")
        elif stage == SYNCED:
            self.transport.send_request(task_id, "cancel", self.spool.request_path(task_id, "cancel"))
            st = statusfile.read_status(task_dir)
            if st is not None and "cancel_requested_at" not in st.extra:
                st.extra["cancel_requested_at"] = now_iso()
                statusfile.record(task_dir, st, None)
            log.info("%s: cancel forwarded", task_id)

    def _fetch(self, task_id: str, stage: str, task_dir: Path) -> None:
        if stage in (SYNCED, DONE):
            try:
                with reading(self.spool, task_id) as current:     # not removed while pulled into
                    self.pull_results(task_id, current)
            except TaskGone:
                log.info("fetch of %s dropped: the task was removed from the spool", task_id)

    # --- upload --------------------------------------------------------------------------
    def limits(self) -> UploadLimits:
        own = UploadLimits(self.settings.max_upload_bytes, self.settings.max_upload_files)
        return own.tighter(published(self.spool.root))

    def push_new(self) -> None:
        """Send what is in new/: small tasks together in one batch (a burst of submissions
        costs two rsync runs, not two per task), large ones one by one so that each is
        linked against the previous upload and only its changes cross the network."""
        now = time.time()
        small: list[str] = []
        limits = self.limits()
        planned = 0       # disk bytes of the tasks this pass sends, not yet in the published usage
        for task_id in self.spool.ids_in(NEW):
            if self._retry_at.get(task_id, 0) > now:
                continue
            task_dir = self.spool.stage_dir(NEW) / task_id
            meta = fsutil.read_json_or_none(task_dir / META) or {}
            total = int(meta.get("total_bytes") or 0)
            disk = int(meta.get("disk_bytes", total) or 0)
            used = None if limits.disk_used_bytes is None else limits.disk_used_bytes + planned
            too_big = (limits.problem(total, int(meta.get("file_count") or 0))
                       or limits.quota_problem(disk, used) or path_problem(task_dir))
            if too_big:
                self._record(task_dir, FAILED, "too_large", message=too_big)
                self.retire(task_id, NEW)
                continue
            planned += disk
            if total <= BATCH_TASK_BYTES:
                small.append(task_id)
            elif not self._push([task_id], newest_accepted(self.spool)):
                return
        per_batch = min(BATCH_TASKS, limits.max_incoming or BATCH_TASKS)   # the cluster's in-flight cap
        for start in range(0, len(small), per_batch):
            if not self._push(small[start:start + per_batch], None):
                return

    def _push(self, batch: list[str], basis: str | None) -> bool:
        """Upload and commit ``batch``; False when spoold is stopping."""
        now = time.time()
        new_dir = self.spool.stage_dir(NEW)
        attempts: dict[str, int] = {}
        for task_id in batch:
            if task_id not in self._attempts:
                st0 = statusfile.read_status(new_dir / task_id)
                self._attempts[task_id] = int(st0.extra.get("upload_attempts", 0)) if st0 else 0
            attempts[task_id] = n = self._attempts[task_id] + 1
            self._record(new_dir / task_id, PENDING, "uploading", message=f"attempt {n}" if n > 1 else None,
                         upload_attempts=n)
        progress = UploadProgress.of(new_dir, batch)
        try:
            checksum = basis is not None and needs_checksum(self.spool, batch[0], basis)
            results = self.transport.push_tasks(batch, new_dir, UPLOAD_MEMBERS, MANIFEST, basis=basis,
                                                checksum=checksum, on_output=progress.feed)
        except TransportError as exc:
            for task_id in batch:
                n = self._attempts[task_id] = attempts[task_id]
                task_dir = new_dir / task_id
                if self.transport.aborted:
                    self._record(task_dir, PENDING, "waiting_for_upload", message="upload interrupted by a stop; "
                                 "it resumes when spoold starts again", upload_attempts=n)
                    continue
                if exc.permanent:
                    log.error("%s: upload refused for good: %s", task_id, exc)
                    self._record(task_dir, FAILED, "upload_rejected", message=str(exc), upload_attempts=n)
                    self.retire(task_id, NEW)
                    continue
                delay = min(300.0, 2.0 ** min(n, 8)) * (0.5 + random.random() / 2)
                self._retry_at[task_id] = now + delay
                log.warning("%s: upload failed (attempt %d, retry in %.0fs): %s", task_id, n, delay, exc)
                self._record(task_dir, PENDING, "waiting_for_upload",
                             message=f"attempt {n} failed: {exc}; retrying in {delay:.0f}s",
                             upload_attempts=n, last_error=str(exc))
            return not self.transport.aborted
        crash_point("spoold:after_push")
        self.last_contact = time.time()
        for task_id in batch:
            result = results[task_id]
            self._retry_at.pop(task_id, None)
            self._attempts.pop(task_id, None)
            self._record(new_dir / task_id, PENDING, "uploaded", upload_bytes_total=result.bytes_total,
                         upload_bytes_sent=result.bytes_sent, **progress.finished())
            self.spool.move(task_id, NEW, SYNCED)
            log.info("%s: sent (%d of %d bytes transferred)", task_id, result.bytes_sent, result.bytes_total)
        return True

    # --- status and logs -----------------------------------------------------------------
    def sync_active(self) -> list[str]:
        """Pull what is due (``spoold/pullclock.py`` decides when), merge what came, and
        retire the tasks that ended; the unfinished ones."""
        active = self.spool.ids_in(SYNCED)
        now = time.monotonic()
        self.clock.observe(active, now)
        mode = self._mode(active, now)
        watched = bool(followed(self.spool.root, active))
        beat_every = pull_every(pulled(self.spool.root))
        due = self.clock.due(mode, now, watched, beat_every)
        pulled_now = bool(due) and self._pull(active, due, now) and due.small
        self._pull_wait = self.clock.wait(mode, time.monotonic(), watched, beat_every)
        # What came is merged; a finished task whose results could not be pulled is tried
        # again at every pass, pull or not.
        changed = []
        for task_id in active if pulled_now else [t for t in active if t in self._result_failures]:
            task_dir = self.spool.stage_dir(SYNCED) / task_id
            before, st = self.merge(task_id, task_dir)
            if st is not None and before is not None and (st.state, st.reason) != (before.state, before.reason):
                changed.append(task_id)
            if st is not None and st.terminal:
                try:
                    self.pull_results(task_id, task_dir)
                except TransportError as exc:
                    n = self._result_failures[task_id] = self._result_failures.get(task_id, 0) + 1
                    if n < RESULT_ATTEMPTS:
                        log.warning("%s: result pull failed: %s (will retry)", task_id, exc)
                        continue
                    # Never let unreadable results keep a finished task "active" for ever.
                    st.extra["results_error"] = str(exc)
                    statusfile.record(task_dir, st, {"at": now_iso(), "event": "results_incomplete",
                                                     "message": str(exc)})
                self._result_failures.pop(task_id, None)
                self.retire(task_id, SYNCED)
                log.info("%s: %s; results in %s", task_id, st.state, self.spool.stage_dir(DONE) / task_id)
        self.clock.changed(changed, time.monotonic())
        return [t for t in active if (self.spool.stage_dir(SYNCED) / t).exists()]

    def _mode(self, active: list[str], now: float) -> str:
        """How this pass learns of changes: the gate's notices (``WATCH``), else polling,
        backing off (``ADAPTIVE``, ssh) or not (``POLL``, the local transport)."""
        if self.channel is None:
            return POLL
        self.channel.keep_open(active, now)
        reopened, news, beat = self.channel.take()
        if reopened:
            self.clock.everything()
        self.clock.heard(news)
        if beat is not None and RemotedBeat.from_dict(beat) is not None:
            fsutil.atomic_write_json(self.spool.root / REMOTED_BEAT, beat)
        return WATCH if self.channel.state == UP else ADAPTIVE

    def _pull(self, active: list[str], due: Due, now: float) -> bool:
        """One rsync run for everything small (and one for the logs, when due)."""
        try:
            if due.small:
                also = [LIMITS_FILE, REMOTED_BEAT] if due.beat else [LIMITS_FILE]
                self.transport.pull_status(active, self.spool.root, also)
            if due.logs:
                self.transport.pull_logs(active, self.spool.root)
        except TransportError as exc:
            log.warning("status pull failed: %s", exc)
            if due.beat:      # unreachable is not stopped: an old copy would make the CLI blame remoted
                (self.spool.root / REMOTED_BEAT).unlink(missing_ok=True)
            self.clock.pulled(due, now, ok=False)
            return False
        self.clock.pulled(due, now)
        self.last_contact = time.time()
        return True

    def merge(self, task_id: str, task_dir: Path) -> tuple[TaskStatus | None, TaskStatus | None]:
        """The task's local status before and after taking in what was pulled."""
        local = statusfile.read_status(task_dir)
        remote = statusfile.read_status(self.spool.outbox(task_id))
        if local is None or remote is None:
            return local, local
        merged = merge_remote(local, remote, statusfile.read_events(self.spool.outbox(task_id)))
        if merged is None:
            return local, local
        new, events = merged
        for e in events:
            fsutil.append_json_line(task_dir / statusfile.EVENTS, e)
        statusfile.record(task_dir, new, None)
        return local, new

    def pull_results(self, task_id: str, task_dir: Path) -> None:
        pull_results(self.transport, self.spool, task_id, task_dir)


def path_problem(task_dir: Path) -> str | None:
    """A path too deep or too long for rsync, which an older ``submit`` let through: no
    retry could ever send it, so the task ends instead of being retried for ever."""
    return "; ".join(tree_problems(task_dir / FILES)) or None


def run(settings: SpooldSettings, reload_settings: Callable[[], SpooldSettings] | None = None) -> int:
    d = Spoold(settings)
    d.prepare()

    def reload() -> None:
        if reload_settings is not None:
            d.reconfigure(reload_settings())
            loop.rescan_interval = d.settings.rescan_interval

    loop = DaemonLoop("spoold", settings.spool / DAEMON_LOCK, d.step, d.watch_dirs, settings.rescan_interval,
                      status=d.status_line, reload=reload, on_stop=lambda: d.transport.abort())
    d.wake = loop.waker.poke
    try:
        return loop.run()
    finally:
        if d.channel is not None:
            d.channel.close()
        d.transport.close()
        d.notices.close()
