"""Accepting uploads: a commit marker (manifest) in ``incoming/commit`` plus the files in
``incoming/tmp/<id>`` become a task, once, and only when the upload is whole.

Everything in a user's area is untrusted: the student can put any file, symlink or FIFO
there at any moment.  So every step works through directory handles that never follow a
symlink (``ailabber.storage.safedir``), the manifest must match the files, the config is validated
again exactly as ``submit`` did, and a ``tasks/<id>`` that remoted did not rename there
itself is never used.  The user is the directory the upload arrived in; when remoted runs
as root, the directory's owner must be that user.
"""

from __future__ import annotations

import logging
import os
import pwd
import stat
from pathlib import Path

from ailabber.daemonkit.faults import crash_point
from ailabber.model import ids
from ailabber.model.config import MAX_CONFIG_BYTES, ConfigError, parse_frozen_config
from ailabber.model.remote_layout import COMMIT, INCOMING, TASKS, TMP, USERS, UserArea, valid_user
from ailabber.model.task import FAILED, now_iso, parse_iso, transition
from ailabber.storage import fsutil, manifest
from ailabber.storage import spool as local_spool
from ailabber.storage.safedir import SafeDir, UnsafePath, open_beneath
from ailabber.storage.upload_limits import LIMITS_FILE, UploadLimits
from remoted.identity import IdentityError, RunAs, current, privileged
from remoted.jobspec import JobDefaults, build_spec
from remoted.outage import passing, plain
from remoted.quota import DiskUsage, surplus_in_flight
from remoted.records import ACCEPTING, QUEUED, RecordStore, TaskRecord

log = logging.getLogger(__name__)
ROOT_UID = 0
#: Uploads of one student refused in one pass at most; the others wait for the next.
MAX_REJECTS_PER_PASS = 20
#: What ``_check_upload`` says of a commit marker that came without any upload.
NO_UPLOAD = "no upload"


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
                 limits: UploadLimits | None = None, transport_account: str | None = None):
        """``jobs``: what every accepted task's job spec gets from the admin's settings."""
        self.root = root
        self.store = store
        self.jobs = jobs
        self.limits = limits or UploadLimits()
        self.transport_account = transport_account
        self.usage = DiskUsage(root)
        self._warned: set[str] = set()
        #: (user, id) -> (device, inode) of each upload checked and not yet taken.
        self._checked: dict[tuple[str, str], tuple[int, int]] = {}
        self._limits_published: dict[Path, bytes] = {}
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
            self._publish_limits(adir)
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
                with incoming.sub(TMP) as tmp:
                    for name in surplus_in_flight(tmp, commit, self.limits.max_incoming):
                        log.warning("%s: removing upload %s: more than %d uploads in flight",
                                    area.user, name, self.limits.max_incoming)
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
        why = self._check_upload(area, incoming, commit, marker, task_id)
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
            why = self._same_as_checked(area, commit, marker, tasks, task_id, taken)
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

    def _check_open_upload(self, area: UserArea, up: SafeDir, data: object) -> str | None:
        """The checks of an upload, all through its one open handle: its members, the
        manifest, the size limits and the student's disk quota."""
        for member in (local_spool.TASK_TOML, local_spool.META):
            if not stat.S_ISREG(up.lstat(member).st_mode):
                return f"{member} is not a regular file"
        if not stat.S_ISDIR(up.lstat(local_spool.FILES).st_mode):
            return "files/ is not a directory"
        problems = manifest.verify_manifest(up.fd, data)
        if problems:
            return f"incomplete or inconsistent upload: {problems[0]}"
        if isinstance(data, dict) and isinstance(data.get("files"), dict):
            # The project's files only, as submit counted them (not task.toml / meta.json).
            project = {k: v for k, v in data["files"].items() if k.startswith(local_spool.FILES + "/")}
            too_big = self.limits.problem(sum(v for v in project.values() if isinstance(v, int)), len(project))
            if too_big:
                return too_big
        return self.usage.admit(area.user, up, self.limits)

    def _same_as_checked(self, area: UserArea, commit: SafeDir, marker: str, tasks: SafeDir, task_id: str,
                         taken: os.stat_result) -> str | None:
        """Why the directory now in ``tasks/<id>`` is not the upload that was checked
        (None if it is).  The student can swap ``incoming/tmp/<id>`` between the check
        and the rename; the checked directory's identity says whether that happened.  After
        a restart that identity is gone, and the taken directory is checked again."""
        checked = self._checked.pop((area.user, task_id), None)
        if checked is not None:
            same = checked == (taken.st_dev, taken.st_ino)
            return None if same else "the upload was replaced while it was being accepted"
        try:
            data = _read_marker(commit, marker)
            with tasks.sub(task_id) as tdir:
                problems = manifest.verify_manifest(tdir.fd, data)
        except OSError as exc:
            return f"unreadable upload: {exc.strerror or exc}"
        return f"incomplete or inconsistent upload: {problems[0]}" if problems else None

    def _publish_limits(self, adir: SafeDir) -> None:
        """``limits.json`` in the user's area, so the client checks sizes before sending."""
        import json

        body = (json.dumps(self.usage.published(adir.path.name, self.limits).to_dict(), sort_keys=True)
                + "\n").encode()
        if self._limits_published.get(adir.path) == body:
            return
        try:
            fd = adir.open_file(LIMITS_FILE, os.O_RDONLY | os.O_NONBLOCK)
            try:
                st = os.fstat(fd)
                same = stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and os.read(fd, 4096) == body
            finally:
                os.close(fd)
        except OSError:
            same = False
        if not same:
            try:
                adir.write_atomic(LIMITS_FILE, body)
            except OSError as exc:
                if not passing(exc):
                    raise
                self.store.trouble.failed("limits.json", exc)    # written on a later pass
                return
            self.store.trouble.ok("limits.json")
        self._limits_published[adir.path] = body

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
            self.store.save(rec, status=status)
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
        self.store.publish(rec, {"at": rec.status.updated_at, "seq": rec.status.seq, "state": rec.status.state,
                                "reason": rec.status.reason, "message": rec.status.message})
        return rec

    def _check_upload(self, area: UserArea, incoming: SafeDir, commit: SafeDir, marker: str,
                      task_id: str) -> str | None:
        """Why the upload cannot be accepted (None: it can; ``NO_UPLOAD``: there is none)."""
        try:
            data = _read_marker(commit, marker)
        except OSError as exc:
            return f"unreadable commit marker: {exc.strerror or exc}"
        try:
            with incoming.sub(TMP) as tmp:
                try:
                    st = tmp.lstat(task_id)
                except FileNotFoundError:
                    return NO_UPLOAD
                if not stat.S_ISDIR(st.st_mode):
                    return "the upload is not a directory"
                with tmp.sub(task_id) as up:
                    why = self._check_open_upload(area, up, data)
                    checked = os.fstat(up.fd)
                    self._checked[(area.user, task_id)] = (checked.st_dev, checked.st_ino)
        except FileNotFoundError as exc:
            return f"incomplete upload: {Path(exc.filename or '?').name} is missing"
        except OSError as exc:
            return f"unreadable upload: {exc.strerror or exc}"
        if why:
            return why
        fsutil.sync_filesystem(self.root)   # rsync does not fsync; the accept must be durable
        return None

    def _make_record(self, area: UserArea, task_id: str, order: int, run_as: RunAs,
                     tdir: SafeDir | None = None) -> TaskRecord:
        owner = run_as.uid if privileged() else None
        meta_bytes, toml_bytes = _read_task_files(self.root, area.user, task_id, owner, tdir)
        meta = _json_or_none(meta_bytes)
        submitted = meta.get("submitted_at") if isinstance(meta, dict) else None
        if not isinstance(submitted, str) or parse_iso(submitted) is None:
            submitted = now_iso()
        status = self.store.outbox.first_status(area.user, task_id, submitted)
        try:
            if isinstance(toml_bytes, OSError):
                raise toml_bytes
            cfg = parse_frozen_config(toml_bytes, Path(local_spool.TASK_TOML))
        except ConfigError as exc:
            status, _ = transition(status, FAILED, "rejected", message=str(exc).splitlines()[0])
            return TaskRecord(id=task_id, user=area.user, status=status, order=order)
        except OSError as exc:
            status, _ = transition(status, FAILED, "rejected", message=f"unreadable task: {exc.strerror or exc}")
            return TaskRecord(id=task_id, user=area.user, status=status, order=order)
        spec = build_spec(area, task_id, cfg, run_as, self.jobs)
        status, _ = transition(status, "pending", "queued")
        return TaskRecord(id=task_id, user=area.user, status=status, spec=spec, phase=QUEUED, order=order)

    def _reject(self, area: UserArea, commit: SafeDir, marker: str, incoming: SafeDir, order: int,
                why: str) -> TaskRecord:
        task_id = marker[: -len(".json")]
        log.warning("%s: rejecting task %s: %s", area.user, task_id, why)
        status = self.store.outbox.first_status(area.user, task_id, now_iso())
        status, event = transition(status, FAILED, "rejected", message=why)
        rec = TaskRecord(id=task_id, user=area.user, status=status, order=order)
        self.store.finish(rec)
        self.store.publish(rec, event)
        _unlink(commit, marker)
        _discard(incoming, TMP, task_id)
        return rec


def _read_task_files(root: Path, user: str, task_id: str, owner: int | None,
                     tdir: SafeDir | None = None) -> tuple[bytes | None, bytes | OSError]:
    """``meta.json`` (None if unusable) and ``task.toml`` (or why it cannot be read) of an
    accepted task, each read once through handles that follow no symlink (``tdir``, or
    opened from the root), as regular files owned by the task's account: a symlink or
    hard link to another student's file swapped in at any moment is refused, never read."""
    if tdir is None:
        try:
            with open_beneath(root, (USERS, user, TASKS, task_id)) as opened:
                return _read_task_files(root, user, task_id, owner, opened)
        except OSError as exc:
            return None, exc
    try:
        meta: bytes | None = tdir.read_regular(local_spool.META, fsutil.MAX_JSON_BYTES, owner)
    except OSError:
        meta = None
    try:
        toml: bytes | OSError = tdir.read_regular(local_spool.TASK_TOML, MAX_CONFIG_BYTES + 1, owner)
    except OSError as exc:
        toml = exc
    return meta, toml


def _is_task_dir(root: Path, user: str, task_id: str) -> bool:
    """Whether ``users/<user>/tasks/<id>`` is a real directory, seen through handles."""
    try:
        open_beneath(root, (USERS, user, TASKS, task_id)).close()
        return True
    except OSError:
        return False


def _json_or_none(data: bytes | None) -> object:
    import json

    try:
        return json.loads(data) if data is not None else None
    except (ValueError, RecursionError):
        return None


def _read_marker(commit: SafeDir, name: str) -> object:
    import json

    fd = commit.open_file(name, os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > fsutil.MAX_JSON_BYTES:
            raise OSError(0, "not a regular file of reasonable size")
        with os.fdopen(os.dup(fd), "rb") as fh:
            return json.loads(fh.read(fsutil.MAX_JSON_BYTES + 1))
    except (ValueError, RecursionError):
        return None
    finally:
        os.close(fd)


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
