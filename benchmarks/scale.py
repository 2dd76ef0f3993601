"""Figures 12-14: a course on one login node, N students with a task running each.

N simulated students, each a real Unix account with its own home, spool, key and spoold
(running as the student, with spoold's default intervals: ``poll_interval`` 1 s,
``rescan_interval`` 5 s), reach one remote root through one loopback sshd where every key
is pinned to its student's directory, as the admin guide says: with ``ailabber-gate`` (the
rows held to the targets: spoold pulls on notice), and for one size with plain rrsync
(spoold's polling fallback, reported); one remoted (root, local scheduler) runs their jobs.  Each student submits one task whose job holds until the
benchmark lets it end (``flock -s`` on a file the benchmark holds: no CPU while it waits).
Once every task runs and a settling time has passed, CPU is measured over a window:

* **login node**: sshd runs in a cgroup of its own (``testbed/cpu_cgroup.py``); every
  process of a session (sshd's per-connection and per-session processes, the forced
  command, rsync) is its descendant, so the cgroup's ``cpu.stat`` ``usage_usec`` is what
  the students' transfers cost the login node, short-lived processes included.  remoted's
  own CPU is given in the notes (it does not depend on the transport);
* **workstation**: every spoold starts inside a second cgroup, so its rsync and ssh
  clients and the ssh ControlMaster it leaves behind are counted with it.

Then the jobs are let go one by one, a fraction of a second apart, and each gives one
freshness sample: from the job's end as the job wrapper records it (``finished_at`` in
``run/result.json``) to the moment the student's local spool shows the final state
(``Spool.read_status``, as ``ailabber status`` reads it, polled every 10 ms).  With fewer
than ten students the task is submitted again, round after round, until ten samples are
in.  Per-student figures divide by N and by the window.

Floors, measured in the same run: for CPU, one idle ssh connection per student (a
ControlMaster with the same keepalives and nothing running in it), on both sides; for
freshness, one rsync of the task's published ``status.json`` through the pinned key over
an open connection (the least any pull costs once the change is published).
"""

from __future__ import annotations

import fcntl
import math
import os
import pwd
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ailabber.model.task import parse_iso
from ailabber.storage.fsutil import read_json_or_none
from ailabber.storage.spool import Spool
from benchmarks.common import Ctx, Row, attempt, failed_rows, median, p95, ratio, wait_until, write_config
from benchmarks.common import run as run_cmd
from benchmarks.infra import SCALE_USERS, Infra, Site, Unavailable, make_site
from spoold.pullclock import FAST_FOR
from testbed.cpu_cgroup import CpuCgroup, Unaccountable
from testbed.unix_users import chown_tree

LOGIN_TARGET_MS = 5.0
FRESH_TARGET_S = 1.0
SETTLE_S = 5.0           # after the last task runs: spoold's first pulls are over
#: Without the gate spoold polls fast for FAST_FOR seconds after a change, then backs off:
#: the plain-rrsync rows measure the quiet tasks after that.
SETTLE_POLLING_S = FAST_FOR + 15.0
SAMPLES = 10             # freshness samples per row, at least
RELEASE_GAP_S = 0.3      # between two jobs let go
SPOOLD_INTERVALS = {"poll_interval": 1.0, "rescan_interval": 5.0}   # spoold's defaults


def _specs(n: int, gate: bool = True) -> tuple[tuple[str, str, str], ...]:
    """The rows of ``n`` students, keys pinned with the gate (the targets) or with plain
    rrsync (spoold's polling fallback: reported, not held to the targets)."""
    what = f"scale, {n} student{'s' if n > 1 else ''}" + ("" if gate else ", plain rrsync (polling)")
    login, fresh = (f"<= {LOGIN_TARGET_MS:g} ms/s", f"<= {FRESH_TARGET_S:g} s") if gate else ("report", "report")
    return ((f"{what}: login-node CPU per active student", "ms/s", login),
            (f"{what}: freshness, job end -> local spool (ssh)", "s", fresh),
            (f"{what}: workstation CPU per active student", "ms/s", "report"))


SIZES_FULL, SIZES_QUICK = (1, 10, 50), (1, 10)
FALLBACK_SIZE = 10
FIGURES = (*(spec for n in SIZES_FULL for spec in _specs(n)), *_specs(FALLBACK_SIZE, gate=False))


class _Course:
    """N students on one site, each with a lock file their job waits on."""

    def __init__(self, infra: Infra, scratch: Path, n: int, gate: bool):
        self.n = n
        self.users = infra.users(n, SCALE_USERS)
        self.login = CpuCgroup(f"login{n}")
        self.ws = CpuCgroup(f"ws{n}")
        try:
            self.site: Site = make_site(infra, f"scale{n}", self.users, transport="ssh",
                                        spoold_extra=dict(SPOOLD_INTERVALS), gate=gate)
        except BaseException:
            self.login.remove()
            self.ws.remove()
            raise
        assert self.site.sshd is not None
        self.sshd = self.site.sshd
        sshd_proc = self.sshd.proc
        assert sshd_proc is not None
        self.login.add(sshd_proc.pid)
        self.locks = self.site.base / "locks"
        self.locks.mkdir()
        os.chmod(self.locks, 0o777)
        self._held: dict[str, int] = {}
        self.projects: dict[str, Path] = {}
        for user, p in self.site.pipes.items():
            p.spoold_prefix = self.ws.prefix_as(user)

    def start(self) -> None:
        self.site.start()

    def stop(self) -> None:
        for fd in self._held.values():
            os.close(fd)
        self._held.clear()
        try:
            self.site.cleanup()
        finally:
            self.login.remove()
            self.ws.remove()

    def submit_round(self, k: int) -> dict[str, str]:
        """One task per student whose job waits for the benchmark's lock ``k``."""
        ids = {}
        for user, p in self.site.pipes.items():
            lock = self.locks / f"{user}-{k}"
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._held[f"{user}-{k}"] = fd
            project = self.site.base / f"project-{user}-{k}"
            project.mkdir()
            write_config(project, [f"flock -s {lock} true"], time_limit="30:00")
            chown_tree(project, user)
            ids[user] = p.submit(project)
        return ids

    def state(self, user: str, task_id: str) -> str | None:
        st = Spool(self.site.pipes[user].home / "spool").read_status(task_id)
        return None if st is None else st.state

    def wait_running(self, ids: dict[str, str], timeout: float) -> None:
        def all_running() -> bool:
            return all(self.state(u, t) == "running" for u, t in ids.items())
        wait_until(all_running, timeout, "every task running in its student's spool", interval=0.2)

    def release(self, user: str, k: int) -> None:
        os.close(self._held.pop(f"{user}-{k}"))

    def finished_at(self, user: str, task_id: str) -> float:
        doc = read_json_or_none(self.site.root / "users" / user / "tasks" / task_id / "run" / "result.json")
        at = parse_iso(doc.get("finished_at")) if isinstance(doc, dict) else None
        if at is None:
            raise RuntimeError(f"{user}/{task_id}: no finished_at in result.json")
        return at

    def sessions(self) -> int:
        """Sessions spoold opened so far, all students: its log's rsync runs and channels."""
        total = 0
        for p in self.site.pipes.values():
            for f in p.logdir.glob("spoold-*.log"):
                text = f.read_text(errors="replace")
                total += text.count(" rsync: ") + text.count(" watch channel opened")
        return total


def _remoted_cpu(site: Site) -> float:
    import psutil

    proc = site.first.procs.get("remoted")
    if proc is None:
        return 0.0
    t = psutil.Process(proc.pid).cpu_times()
    return t.user + t.system


def _window(course: _Course, seconds: float) -> dict[str, float]:
    """CPU over ``seconds`` seconds: login node and workstation (ms/s per student)."""
    l0, w0, r0, s0 = course.login.usage_usec(), course.ws.usage_usec(), _remoted_cpu(course.site), course.sessions()
    t0 = time.monotonic()
    time.sleep(seconds)
    el = time.monotonic() - t0
    l1, w1, r1, s1 = course.login.usage_usec(), course.ws.usage_usec(), _remoted_cpu(course.site), course.sessions()
    n = course.n
    return {"login": (l1 - l0) / 1000 / el / n, "ws": (w1 - w0) / 1000 / el / n,
            "remoted": (r1 - r0) * 1000 / el, "sessions": (s1 - s0) / el / n, "seconds": el,
            "load": os.getloadavg()[0]}


def _idle_floor(course: _Course, seconds: float) -> dict[str, float]:
    """One idle ssh connection per student (a ControlMaster with spoold's keepalives),
    opened from the workstation cgroup, measured on both sides."""
    sshd = course.sshd
    sockets = course.site.base / "floor-sockets"
    sockets.mkdir()
    os.chmod(sockets, 0o777)
    masters: list[tuple[str, Path]] = []
    try:
        for user in course.users:
            sock = sockets / user
            argv = [*course.ws.prefix_as(user), *_ssh(user, course.site.keys[user], sshd.port, sshd.client_options()),
                    "-M", "-N", "-f", "-o", f"ControlPath={sock}", f"{user}@{sshd.listen}"]
            r = subprocess.run(argv, env=_env(user), timeout=60, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            if r.returncode != 0:
                raise RuntimeError(f"{user}: an idle ssh connection could not be opened (exit {r.returncode})")
            masters.append((user, sock))
        time.sleep(1.0)
        l0, w0, t0 = course.login.usage_usec(), course.ws.usage_usec(), time.monotonic()
        time.sleep(seconds)
        el = time.monotonic() - t0
        l1, w1 = course.login.usage_usec(), course.ws.usage_usec()
    finally:
        for user, sock in masters:
            _as(user, ["ssh", "-o", f"ControlPath={sock}", "-O", "exit", f"{user}@{sshd.listen}"])
    return {"login": (l1 - l0) / 1000 / el / course.n, "ws": (w1 - w0) / 1000 / el / course.n}


def _pull_floor(course: _Course, user: str, task_id: str, reps: int = 5) -> float:
    """One rsync of the task's published status.json through the pinned key, over an open
    connection: the least a pull costs once remoted has published the change."""
    sshd, key = course.sshd, course.site.keys[user]
    dest = course.site.base / f"floor-{user}"
    dest.mkdir()
    chown_tree(dest, user)
    rsh = " ".join([*_ssh(user, key, sshd.port, sshd.client_options()), "-o", "ControlMaster=auto",
                    "-o", f"ControlPath={dest}/cm", "-o", "ControlPersist=30"])
    argv = ["rsync", "-t", "-e", rsh, f"{user}@{sshd.listen}:/outbox/{task_id}/status.json", str(dest / "s.json")]
    # rrsync lets one session at a time into a directory (its single-run lock), and the
    # student's spoold pulls meanwhile: a run that met the lock is tried again, untimed.
    times: list[float] = []
    try:
        for _ in range(10 * reps):
            t0 = time.perf_counter()
            if _as(user, argv).returncode == 0:
                times.append(time.perf_counter() - t0)
            if len(times) > reps:
                break
        if len(times) <= reps:
            raise RuntimeError(f"rsync of one status.json through the pinned key failed {10 * reps} times")
        return median(times[1:])                # the first opened the connection
    finally:
        _as(user, ["ssh", "-o", f"ControlPath={dest}/cm", "-O", "exit", f"{user}@{sshd.listen}"])


def _ssh(user: str, key: Path, port: int, options: list[str]) -> list[str]:
    return ["ssh", "-i", str(key), "-p", str(port), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", *sum((["-o", o] for o in options), [])]


def _env(user: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": pwd.getpwnam(user).pw_dir}


def _as(user: str, argv: list[str], check: bool = False) -> subprocess.CompletedProcess[str]:
    pw = pwd.getpwnam(user)
    if check:
        return run_cmd(argv, user=pw.pw_uid, group=pw.pw_gid, extra_groups=[], env=_env(user), timeout=60)
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60, user=pw.pw_uid,
                          group=pw.pw_gid, extra_groups=[], env=_env(user))


class _Seen:
    """Polls the local spools of released tasks every 10 ms; notes when each first shows
    a final state (wall clock, as ``finished_at`` is)."""

    def __init__(self, state: Callable[[str, str], str | None]):
        self.state = state
        self.pending: set[tuple[str, str]] = set()
        self.seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> _Seen:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(10)

    def add(self, user: str, task_id: str) -> None:
        with self._lock:
            self.pending.add((user, task_id))

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                pending = list(self.pending)
            for key in pending:
                if self.state(*key) in ("completed", "failed", "canceled", "terminated"):
                    now = time.time()
                    with self._lock:
                        self.seen[key] = now
                        self.pending.discard(key)
            self._stop.wait(0.01)

    def done(self) -> bool:
        with self._lock:
            return not self.pending


def _freshness(course: _Course, ids: dict[str, str], k: int, seen: _Seen) -> list[float]:
    for user, task_id in ids.items():
        seen.add(user, task_id)
        course.release(user, k)
        time.sleep(RELEASE_GAP_S)
    wait_until(seen.done, 120 + 2 * course.n, "every released task final in its student's spool", interval=0.1)
    return [seen.seen[(u, t)] - course.finished_at(u, t) for u, t in ids.items()]


def _say(msg: str) -> None:
    import sys

    print(f"[scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _rows(ctx: Ctx, n: int, gate: bool = True) -> list[Row]:
    window = ctx.n(40, 20)
    settle = SETTLE_S if gate else SETTLE_POLLING_S
    course = _Course(ctx.infra, ctx.scratch, n, gate)
    try:
        floor = _idle_floor(course, ctx.n(10, 5))
        course.start()
        rounds = max(1, math.ceil(SAMPLES / n))
        samples: list[float] = []
        cpu: dict[str, float] = {}
        pull: float | None = None
        with _Seen(course.state) as seen:
            for k in range(rounds):
                ids = course.submit_round(k)
                course.wait_running(ids, 120 + 2 * n)
                time.sleep(settle)
                if k == 0:
                    cpu = _window(course, window)
                    _say(f"{n} students: {cpu}")
                    first_user = course.users[0]
                    try:
                        pull = _pull_floor(course, first_user, ids[first_user])
                    except RuntimeError as exc:       # the figures stand without their floor
                        _say(f"{n} students: no pull floor: {exc}")
                samples += _freshness(course, ids, k, seen)
    finally:
        course.stop()
    login, fresh, ws = _specs(n, gate)
    how = (f"{n} students, keys pinned with {'ailabber-gate' if gate else 'rrsync'}, one task running each, "
           "spoold's default intervals (poll 1 s, rescan 5 s), remoted "
           f"poll 0.2 s, local scheduler; {window} s window after a {settle:g} s settle; load average "
           f"{cpu['load']:.2f} at the end of the window")
    return [
        Row(*login, value=cpu["login"], floor=floor["login"], ratio=ratio(cpu["login"], floor["login"]),
            met=cpu["login"] <= LOGIN_TARGET_MS or not gate,
            floor_what="one idle ssh connection per student (keepalives only)",
            notes=(f"cpu.stat usage_usec of the cgroup sshd runs in (every session process: sshd, the forced "
                   f"command, rsync); {cpu['sessions']:.2f} sessions per second per student, so about "
                   f"{cpu['login'] / cpu['sessions'] if cpu['sessions'] > 0 else 0:.0f} ms per session; "
                   f"remoted itself {cpu['remoted']:.1f} ms/s in all; {how}")),
        Row(*fresh, value=median(samples), floor=pull, ratio=ratio(median(samples), pull),
            met=median(samples) <= FRESH_TARGET_S or not gate,
            floor_what="one rsync of the published status.json through the pinned key over an open connection",
            notes=(f"median of {len(samples)} job ends, from `finished_at` in run/result.json to the local spool "
                   f"showing the final state (polled every 10 ms); p95 {p95(samples):.2f} s, max "
                   f"{max(samples):.2f} s; jobs let go {RELEASE_GAP_S:g} s apart while the others kept running; "
                   f"{how}")),
        Row(*ws, value=cpu["ws"], floor=floor["ws"], ratio=ratio(cpu["ws"], floor["ws"]), met=True,
            floor_what="the client side of one idle ssh connection per student",
            notes=f"cpu.stat of the cgroup every spoold starts in (its rsync and ssh clients included); {how}"),
    ]


def run(ctx: Ctx) -> list[Row]:
    try:
        CpuCgroup("probe").remove()
    except Unaccountable as exc:
        raise Unavailable(str(exc)) from None
    rows: list[Row] = []
    for n in SIZES_FULL:
        if n in (SIZES_QUICK if ctx.quick else SIZES_FULL):
            rows += attempt(_specs(n), lambda n=n: _rows(ctx, n))   # type: ignore[misc]
        else:
            rows += failed_rows(_specs(n), f"{n} students are measured in the full run only, not with --quick")
    return rows + attempt(_specs(FALLBACK_SIZE, gate=False), lambda: _rows(ctx, FALLBACK_SIZE, gate=False))
