"""Accepting uploads: a commit marker (manifest) in ``incoming/commit`` plus the files in
``incoming/tmp/<id>`` become a task, once, and only when the upload is whole.

Everything in a user's area is untrusted: the student can put any file, symlink or FIFO
there at any moment.  So every step works through directory handles that never follow a
symlink (``ailabber.storage.safedir``), the manifest must match the files, the config is validated
again exactly as ``submit`` did (those checks of one upload: ``remoted.uploadcheck``), and a
``tasks/<id>`` that remoted did not rename there itself is never used.  The user is the directory the upload arrived in; when remoted runs
as root, the directory's owner must be that user.
"""

from __future__ import annotations

import logging
import os
import pwd
import stat
from collections.abc import Callable
from pathlib import Path

from ailabber.daemonkit.faults import crash_point
from ailabber.model import ids
from ailabber.model.joblimits import JobLimits
from ailabber.model.listing import NAME, labels
from ailabber.model.remote_layout import COMMIT, INCOMING, TASKS, TMP, USERS, UserArea, valid_user
from ailabber.model.task import FAILED, now_iso, transition
from ailabber.storage import fsutil
from ailabber.storage import spool as local_spool
from ailabber.storage.safedir import SafeDir, UnsafePath, open_beneath
from ailabber.storage.upload_limits import UploadLimits
from remoted.identity import IdentityError, RunAs, current, privileged
from remoted.jobspec import JobDefaults, build_spec
from remoted.outage import passing, plain
from remoted.publish import PublishedLimits
from remoted.quota import DiskUsage, surplus_in_flight
from remoted.records import ACCEPTING, QUEUED, RecordStore, TaskRecord
from remoted.uploadcheck import NO_UPLOAD, UploadCheck, read_task

log = logging.getLogger(__name__)
ROOT_UID = 0
#: Uploads of one student refused in one pass at most; the others wait for the next.
MAX_REJECTS_PER_PASS = 20


def user_areas(root: Path) -> list[UserArea]:
    try:
        names = sorted(os.listdir(root / USERS))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [UserArea(root, n) for n in names if valid_user(n)]


def open_area(root: Path, user: str, transport_account: str | None = None) -> tuple[SafeDir, RunAs]:
    """The user's directory as a handle, and who tasks found there run as.

    The directory's owner is the identity: the student's own account, or the service
    account whose ssh keys the admin pinned (with rrsync) to exactly this directory, in
    which case the directory's name says whose it is and tasks run as that account when
    it exists (else as the service account)."""
    with SafeDir.open(root / USERS) as users:
        adir = users.sub(user)
    if not privileged():
        return adir, current()
    st = os.fstat(adir.fd)
    try:
        pw = pwd.getpwuid(st.st_uid)
    except KeyError:
        adir.close()
        raise IdentityError(f"{adir.path} is owned by uid {st.st_uid}, which has no account") from None
    if pw.pw_name == user:
        return adir, RunAs(pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir)
    if transport_account and pw.pw_name == transport_account:
        try:
            student = pwd.getpwnam(user)
        except KeyError:
            student = pw
        return adir, RunAs(student.pw_name, student.pw_uid, student.pw_gid, student.pw_dir)
    adir.close()
    raise IdentityError(f"{adir.path} is owned by {pw.pw_name}, not {user}; ask the admin to fix its owner")


def hand_over(tdir: SafeDir, run_as: RunAs, area_gid: int) -> None:
    """Give an accepted task's files to the account it runs as (uploaded by a service
    account, they would not be writable by the job), and close the task to everyone but
    that account and the area's group (through which a service account pulls results).
    Never follows a symlink."""
    if not privileged():
        return
    os.fchmod(tdir.fd, 0o750)
    if os.fstat(tdir.fd).st_uid == run_as.uid:
        os.fchown(tdir.fd, -1, area_gid)
        return
    os.fchown(tdir.fd, run_as.uid, area_gid)
    for _dirpath, dirnames, filenames, dirfd in os.fwalk(dir_fd=tdir.fd, follow_symlinks=False):
        for name in dirnames + filenames:
            os.chown(name, run_as.uid, run_as.gid, dir_fd=dirfd, follow_symlinks=False)


def owned_dir(parent: SafeDir, name: str) -> SafeDir:
    """A directory remoted writes into: created if missing, owned by root when remoted is
    root, so that the student cannot plant entries in it."""
    return parent.sub(name, create=True, mode=0o755, owner=ROOT_UID if privileged() else None,
                      replace_bad=True)


class Intake:
    def __init__(self, root: Path, store: RecordStore, jobs: JobDefaults,
                 limits: Callable[[str], UploadLimits] | None = None, transport_account: str | None = None,
                 job_limits: Callable[[str], JobLimits] | None = None):
        """``jobs``: what every accepted task's job spec gets from the admin's settings;
        ``limits``: a student's upload limits and disk caps (``CourseLimits``);
        ``job_limits``: what limits.json says of a user's tasks beside the upload limits."""
        self.root = root
        self.store = store
        self.jobs = jobs
        self.limits = limits or (lambda _user: UploadLimits())
        self.transport_account = transport_account
        self.usage = DiskUsage(root)
        self.checker = UploadCheck(root, self.limits, self.usage)
        self._warned: set[str] = set()
        self.published_limits = PublishedLimits(self.usage, self.limits, store.trouble, job_limits)
        #: Leave a new task's queued record unsaved: the caller saves it unless it launches
        #: the task first (the launch intent replaces it).  Until then the record on disk is
        #: the accept intent, which a restart finishes into the same queued record.
        self.defer_queued_saves = False

    def scan_user(self, area: UserArea, next_order: int) -> list[TaskRecord]:
        """Accept what one student has committed (numbered from ``next_order`` on).  What
        was accepted before anything went wrong is returned all the same: its marker is
        gone, so no later pass would bring it back."""
        out: list[TaskRecord] = []
        try:
            self._scan_area(area, next_order, out)
        except (OSError, IdentityError) as exc:
            # One student's broken or hostile area never stops the others.
            if area.user not in self._warned:
                log.warning("%s: skipping this user's area: %s", area.user, exc)
                self._warned.add(area.user)
        except Exception:  # noqa: BLE001 - whatever a student's files provoke costs only that student
            if area.user not in self._warned:
                log.exception("%s: skipping this user's area after an unexpected error", area.user)
                self._warned.add(area.user)
        return out

    def _scan_area(self, area: UserArea, order: int, out: list[TaskRecord]) -> None:
        """Accept one student's committed uploads into ``out`` (filled as it goes)."""
        adir, run_as = open_area(self.root, area.user, self.transport_account)
        try:
            self.published_limits.publish(adir)
            try:
                incoming = adir.sub(INCOMING)
            except FileNotFoundError:
                return
            with incoming, incoming.sub(COMMIT) as commit, fsutil.deferred_fsync(self.root) as group:
                admitted: list[TaskRecord] = []
                for name in commit.listdir():
                    if name.startswith(".") or not name.endswith(".json"):
                        continue  # rsync's temporary files, editors' leftovers
                    if len(out) >= MAX_REJECTS_PER_PASS:
                        break     # the rest wait: one student's refusals cannot fill a pass
                    rec = self._admit(area, adir, incoming, commit, name, order + len(out) + len(admitted))
                    if rec is not None:
                        (admitted if rec.phase == ACCEPTING else out).append(rec)
                # Every accept's intent is on disk before any of the renames below: one
                # flush for the user's whole batch instead of one per task.
                group.barrier()
                for known in admitted:
                    try:
                        out.append(self._take(area, adir, incoming, commit, known, run_as))
                    except OSError as exc:   # the marker stays: the next pass tries again
                        log.warning("%s: cannot take task %s yet: %s", area.user, known.id, exc)
                max_incoming = self.limits(area.user).max_incoming
                with incoming.sub(TMP) as tmp:
                    for name in surplus_in_flight(tmp, commit, max_incoming):
                        log.warning("%s: removing upload %s: more than %d uploads in flight",
                                    area.user, name, max_incoming)
                        _remove(tmp, name)
            self._warned.discard(area.user)
        finally:
            adir.close()

    def _admit(self, area: UserArea, adir: SafeDir, incoming: SafeDir, commit: SafeDir, marker: str,
               order: int) -> TaskRecord | None:
        """First half of an accept: check the upload and record the intent to take it
        (phase accepting, not yet flushed).  None for a marker to ignore; a finished
        record for an upload that is refused."""
        task_id = marker[: -len(".json")]
        if not ids.is_task_id(task_id):
            log.warning("%s: ignoring marker with a malformed task id: %s", area.user, marker)
            _unlink(commit, marker)
            return None
        known = self.store.get(area.user, task_id)
        if known is not None:
            if known.phase == ACCEPTING:
                return known             # interrupted earlier: the intent is already recorded
            # A repeated push (spoold crashed after sending the marker): already ours.
            _unlink(commit, marker)
            _discard(incoming, TMP, task_id)
            return None
        with owned_dir(adir, TASKS) as tasks:
            try:
                tasks.lstat(task_id)
                planted = True
            except FileNotFoundError:
                planted = False
        if planted:
            return self._reject(area, commit, marker, incoming, order,
                                f"tasks/{task_id} already exists and was not made by ailabber")
        why = self.checker.refusal(area, incoming, commit, marker, task_id)
        if why is NO_UPLOAD:
            # spoold sends the files before the marker: a marker alone is forged, and
            # costs remoted no record (a student could otherwise make it keep thousands).
            log.debug("%s: dropping a commit marker without an upload: %s", area.user, marker)
            _unlink(commit, marker)
            return None
        if why:
            return self._reject(area, commit, marker, incoming, order, why)
        # Remember the accept before the rename, so a crash in between is finished on
        # restart and a tasks/<id> planted by the student is never trusted.
        known = TaskRecord(id=task_id, user=area.user, phase=ACCEPTING, order=order,
                           status=self.store.outbox.first_status(area.user, task_id, None))
        try:
            self.store.save(known)
        except OSError as exc:
            if not passing(exc):
                raise
            # No room for the intent: the upload waits where it is, and says why.
            self.store.outbox.notify(area.user, task_id, plain(exc))
            return None
        return known

    def _take(self, area: UserArea, adir: SafeDir, incoming: SafeDir, commit: SafeDir, known: TaskRecord,
              run_as: RunAs) -> TaskRecord:
        """Second half, once the intent is durable: move the upload into tasks/, hand it
        to its account and record it as queued (or rejected)."""
        task_id, marker = known.id, f"{known.id}.json"
        with owned_dir(adir, TASKS) as tasks:
            try:
                tasks.lstat(task_id)
            except FileNotFoundError:
                with incoming.sub(TMP) as tmp:
                    tmp.rename_into(task_id, tasks, task_id)
                crash_point("remoted:after_accept_rename")
            taken = tasks.lstat(task_id)
            if not stat.S_ISDIR(taken.st_mode):
                return self._reject(area, commit, marker, incoming, known.order, "the upload is not a directory")
            why = self.checker.same_as_checked(area, commit, marker, tasks, task_id, taken)
            if why:
                tasks.remove(task_id)
                return self._reject(area, commit, marker, incoming, known.order, why)
            with tasks.sub(task_id) as tdir:
                for name in tdir.listdir():     # only what a task consists of stays
                    if name not in local_spool.UPLOAD_MEMBERS:
                        _remove(tdir, name)
                hand_over(tdir, run_as, os.fstat(adir.fd).st_gid)
                rec = self._record_new(area, task_id, known.order, run_as, tdir)
        _unlink(commit, marker)
        _discard(incoming, TMP, task_id)
        crash_point("remoted:after_accept")    # queued in memory only: restart must finish the accept
        log.info("%s: accepted task %s (%s)", area.user, task_id, rec.status.state)
        return rec

    def finish_orphan(self, rec: TaskRecord) -> TaskRecord | None:
        """Complete an accept interrupted after its rename, once its marker is gone."""
        area = UserArea(self.root, rec.user)
        try:
            adir, run_as = open_area(self.root, rec.user, self.transport_account)
        except (OSError, IdentityError):
            return None
        try:
            with adir, adir.sub(INCOMING) as incoming, incoming.sub(COMMIT) as commit:
                try:
                    commit.lstat(f"{rec.id}.json")
                    return rec                   # the marker is there: the normal scan finishes it
                except FileNotFoundError:
                    pass
        except OSError:
            pass
        if not _is_task_dir(self.root, rec.user, rec.id):
            status, event = transition(rec.status, FAILED, "lost", message="the upload vanished while being accepted")
            self.store.save(rec, status=status, history=rec.with_event(event))
            self.store.publish(rec, event)
            return rec
        return self._record_new(area, rec.id, rec.order, run_as)

    def _record_new(self, area: UserArea, task_id: str, order: int, run_as: RunAs,
                    tdir: SafeDir | None = None) -> TaskRecord:
        """The accepted task's first real record, kept privately and published.  ``tdir``:
        the task's directory, if already open."""
        rec = self._make_record(area, task_id, order, run_as, tdir)
        if rec.status.terminal:
            self.store.finish(rec)
        elif not self.defer_queued_saves:
            self.store.save(rec)
        self.store.publish(rec, rec.history[-1] if rec.history else None)
        return rec

    def _make_record(self, area: UserArea, task_id: str, order: int, run_as: RunAs,
                     tdir: SafeDir | None = None) -> TaskRecord:
        owner = run_as.uid if privileged() else None
        submitted, name, cfg = read_task(self.root, area.user, task_id, owner, tdir)
        status = self.store.outbox.first_status(area.user, task_id, submitted or now_iso())
        # The labels list and status show, as submit wrote them (staff see them too).
        status.extra.update(labels(cfg, name) if not isinstance(cfg, str) else {NAME: name} if name else {})
        if isinstance(cfg, str):
            status, event = transition(status, FAILED, "rejected", message=cfg)
            return TaskRecord(id=task_id, user=area.user, status=status, order=order, history=[event])
        spec = build_spec(area, task_id, cfg, run_as, self.jobs, self.limits(area.user).max_log_bytes)
        status, event = transition(status, "pending", "queued")
        return TaskRecord(id=task_id, user=area.user, status=status, spec=spec, phase=QUEUED, order=order,
                          history=[event])

    def _reject(self, area: UserArea, commit: SafeDir, marker: str, incoming: SafeDir, order: int,
                why: str) -> TaskRecord:
        task_id = marker[: -len(".json")]
        log.warning("%s: rejecting task %s: %s", area.user, task_id, why)
        status = self.store.outbox.first_status(area.user, task_id, now_iso())
        status, event = transition(status, FAILED, "rejected", message=why)
        rec = TaskRecord(id=task_id, user=area.user, status=status, order=order, history=[event])
        self.store.finish(rec)
        self.store.publish(rec, event)
        _unlink(commit, marker)
        _discard(incoming, TMP, task_id)
        return rec


def _is_task_dir(root: Path, user: str, task_id: str) -> bool:
    """Whether ``users/<user>/tasks/<id>`` is a real directory, seen through handles."""
    try:
        open_beneath(root, (USERS, user, TASKS, task_id)).close()
        return True
    except OSError:
        return False


def _unlink(d: SafeDir, name: str) -> None:
    try:
        _remove(d, name)
    except OSError as exc:
        log.warning("cannot remove %s: %s", d.path / name, exc)


def _remove(d: SafeDir, name: str) -> None:
    d.remove(name)


def _discard(incoming: SafeDir, sub: str, name: str) -> None:
    try:
        with incoming.sub(sub) as d:
            _remove(d, name)
    except (FileNotFoundError, UnsafePath):
        pass


def upload_pending(adir: SafeDir, task_id: str) -> bool:
    """Whether the student's ``incoming/`` holds an upload or a commit marker for ``task_id``."""
    if not ids.is_task_id(task_id):
        return False
    try:
        with adir.sub(INCOMING) as incoming:
            for sub, name in ((COMMIT, f"{task_id}.json"), (TMP, task_id)):
                try:
                    with incoming.sub(sub) as d:
                        d.lstat(name)
                    return True
                except FileNotFoundError:
                    continue
    except OSError:
        return False
    return False
