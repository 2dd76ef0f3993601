"""The staff's requests, as remoted receives them: ``<root>/admin/requests/<id>.json``,
written by ``ailabber admin`` (``remoted/admin/ask.py``) and carried out at the start of
every pass, before anything is launched.

Who asks is the request file's owner as the kernel reports it on the descriptor remoted
opened (``st_uid``), checked against ``admin_group`` now (``remoted.admin.access``): the
command's own check ran in the caller's process and proves nothing here.  The file is
opened through a directory handle without following a symlink and must be a regular file
with one link, of bounded size; its bytes are read once and parsed once into a typed
request (``remoted.admin.requests``), which an explicit table hands to one handler per act
(``remoted.admin_acts``).  What is refused is refused in the reply, the audit log and
remoted's log alike, and removed.

Crash safety: the act is carried out (each handler records before it acts, like every
change in remoted), then the audit line, then the reply, and only then is the request
removed.  A request whose reply exists was carried out before a crash and is only
removed; a handler that could not record its change yet (a full disk) leaves the request
for the next pass.  Acts are idempotent, so one done again after a crash between the act
and its reply comes to the same.

The directories: ``admin/`` and ``admin/replies/`` are root's, mode 02750 with the group
``admin_group`` (replies and the audit log 0640, so staff read them); ``admin/requests/`` is
mode 03770: staff may add files, the sticky bit keeps each member's files their own, and
students cannot write there at all.  Without ``admin_group`` all three are 0700: only root
is staff.  ``state/`` is opened to the same group for reading (02750), so that staff
commands read remoted's records and never need a request to look.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from pathlib import Path

from ailabber.daemonkit.remoted_settings import RemotedSettings
from ailabber.model.ids import is_task_id
from ailabber.model.remote_layout import ADMIN, ADMIN_REPLIES, ADMIN_REQUESTS, AUDIT_LOG
from ailabber.model.task import now_iso
from ailabber.storage import fsutil
from ailabber.storage.safedir import SafeDir
from remoted.admin.access import is_staff, staff_gid, user_name
from remoted.admin.requests import DONE as REPLY_DONE
from remoted.admin.requests import (
    FAILED,
    INVALID,
    MAX_REQUEST_BYTES,
    REFUSED,
    Reply,
    RequestError,
    act_name,
    parse_request,
)
from remoted.admin_acts import HANDLERS, Acts, Outcome

log = logging.getLogger("remoted")

#: Replies are kept this long for whoever asks late (``ailabber admin`` reads its own at once).
KEEP_REPLIES = 7 * 86400.0
SWEEP_EVERY = 3600.0


class StaffRequests:
    """Receives the staff's requests in one remote root and answers each one."""

    def __init__(self, root: Path, settings: RemotedSettings, acts: Acts):
        self.root = root
        self.settings = settings
        self.acts = acts
        self._swept = 0.0

    # --- the directories -----------------------------------------------------------------
    def prepare(self) -> None:
        """Make ``admin/`` and its two directories with their owners and modes; again after
        a reload (the group may change).  ``state/`` is the record store's to share with
        the group (``RecordStore.ensure``)."""
        gid = staff_gid(self.settings) if os.geteuid() == 0 else None
        with SafeDir.open(self.root) as root:
            with _staff_dir(root, ADMIN, 0o2750, gid) as admin:
                _staff_dir(admin, ADMIN_REQUESTS, 0o3770, gid).close()
                _staff_dir(admin, ADMIN_REPLIES, 0o2750, gid).close()

    @property
    def requests_dir(self) -> Path:
        return self.root / ADMIN / ADMIN_REQUESTS

    # --- the pass ------------------------------------------------------------------------
    def handle(self) -> None:
        """Carry out every request waiting, oldest first (ids sort by time)."""
        try:
            admin = SafeDir.open(self.root / ADMIN)
        except OSError as exc:
            log.debug("no staff requests: %s", exc)
            return
        try:
            with admin, admin.sub(ADMIN_REQUESTS) as requests, admin.sub(ADMIN_REPLIES) as replies:
                for name in requests.listdir():
                    if name.startswith(".") or not name.endswith(".json"):
                        continue            # a request being written (temp name, then rename)
                    try:
                        self._one(admin, requests, replies, name)
                    except OSError as exc:
                        log.warning("staff request %s: cannot handle it yet: %s", name, exc)
                self._sweep(requests, replies)
        except OSError as exc:
            log.warning("staff requests unreadable: %s", exc)

    def _one(self, admin: SafeDir, requests: SafeDir, replies: SafeDir, name: str) -> None:
        rid = name[: -len(".json")]
        if not is_task_id(rid):
            log.warning("removing staff request %s: not a request id", name)
            requests.remove(name)
            return
        try:
            replies.lstat(name)
            requests.remove(name)          # carried out before a crash: its reply says how
            return
        except FileNotFoundError:
            pass
        try:
            fd = requests.open_file(name, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:           # a symlink (ELOOP), gone meanwhile, ...
            try:
                uid = requests.lstat(name).st_uid
            except FileNotFoundError:
                return
            self._answer(admin, replies, requests, name, Reply(rid, None, REFUSED, f"refused: {exc.strerror or exc}"),
                         uid, None)
            return
        try:
            st = os.fstat(fd)
            why = _not_a_request(st)
            if why is None and not is_staff(st.st_uid, self.settings):
                group = self.settings.admin_group
                why = f"{user_name(st.st_uid)} is not course staff (" + (
                    f"root or a member of {group})" if group else "only root is: remoted.yaml names no admin_group)")
            data = b"" if why else fsutil.read_fd(fd, MAX_REQUEST_BYTES, st.st_size)
        finally:
            os.close(fd)
        if why:
            self._answer(admin, replies, requests, name, Reply(rid, None, REFUSED, f"refused: {why}"), st.st_uid, None)
            return
        who = user_name(st.st_uid)
        try:
            request = parse_request(data)
        except RequestError as exc:
            self._answer(admin, replies, requests, name, Reply(rid, None, INVALID, f"invalid request: {exc}"),
                         st.st_uid, None)
            return
        act = act_name(request)
        handler = HANDLERS.get(act)
        if handler is None:              # a newer command than this remoted
            self._answer(admin, replies, requests, name, Reply(rid, act, FAILED, f"this remoted cannot {act}"),
                         st.st_uid, request.args())
            return
        try:
            outcome = handler(self.acts, request, who)
        except Exception as exc:  # noqa: BLE001 - a bug in one act is answered, never a pass stopped each time
            log.exception("staff request %s (%s): failed unexpectedly", rid, act)
            outcome = Outcome(False, f"remoted could not carry it out: {exc!r}")
        if outcome is None:
            return                       # not recorded yet: the request stays for the next pass
        reply = Reply(rid, act, REPLY_DONE if outcome.ok else FAILED, outcome.message, outcome.lines)
        self._answer(admin, replies, requests, name, reply, st.st_uid, request.args())

    def _answer(self, admin: SafeDir, replies: SafeDir, requests: SafeDir, name: str, reply: Reply, uid: int,
                args: dict[str, object] | None) -> None:
        """Audit, reply, then remove the request: the reply is there before the request
        goes, so the asking command never sees neither."""
        who = user_name(uid)
        line = {"at": now_iso(), "id": reply.id, "who": who, "uid": uid, "act": reply.act, "args": args,
                "outcome": reply.outcome, "message": reply.message}
        admin.append(AUDIT_LOG, json.dumps(line, sort_keys=True, separators=(",", ":")), mode=0o640)
        replies.write_atomic(name, reply.encode(), mode=0o640)
        requests.remove(name)
        level = logging.WARNING if reply.outcome in (REFUSED, INVALID) else logging.INFO
        log.log(level, "staff request %s from %s: %s: %s", reply.id, who, reply.act or "-", reply.message)

    def _sweep(self, requests: SafeDir, replies: SafeDir) -> None:
        """Now and then: replies older than ``KEEP_REPLIES`` go, and so do requests a
        command began to write that old and never renamed (it was killed)."""
        now = time.time()
        if now - self._swept < SWEEP_EVERY:
            return
        self._swept = now
        for d, names in ((replies, replies.listdir()), (requests, [n for n in requests.listdir() if n[:1] == "."])):
            for name in names:
                try:
                    if now - d.lstat(name).st_mtime > KEEP_REPLIES:
                        d.remove(name)
                except OSError:
                    continue


def _not_a_request(st: os.stat_result) -> str | None:
    """Why what was opened cannot be a request: only a regular file with one link (a hard
    link would make someone else's file look like the linker's request)."""
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_nlink != 1:
        return "a file with more than one link"
    if st.st_size > MAX_REQUEST_BYTES:
        return f"larger than {MAX_REQUEST_BYTES} bytes"
    return None


def _staff_dir(parent: SafeDir, name: str, mode: int, gid: int | None) -> SafeDir:
    """Directory ``name`` below ``parent``, made if missing: root's with ``gid`` and
    ``mode`` when there is a staff group, else 0700.  Only remoted writes in ``parent``."""
    want = mode if gid is not None else 0o700
    d = parent.sub(name, create=True, mode=want & 0o777)
    try:
        st = os.fstat(d.fd)
        if os.geteuid() == 0 and (st.st_uid, st.st_gid) != (0, gid if gid is not None else st.st_gid):
            os.fchown(d.fd, 0, gid if gid is not None else -1)
        if stat.S_IMODE(os.fstat(d.fd).st_mode) != want:
            os.fchmod(d.fd, want)
    except BaseException:
        d.close()
        raise
    return d
