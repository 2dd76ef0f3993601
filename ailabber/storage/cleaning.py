"""Retention on the spool: what ``ailabber clean`` and spoold's own policy share.

``survey`` reads what the policy needs of every finished task, ``model/retention.choose``
decides, and ``clean`` removes through ``trash.remove_task`` (crash-safe, and never a task
another command is reading).  Only ``done/`` is looked at: a task elsewhere is not
finished, or finished with its logs and results not pulled back yet.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection
from pathlib import Path
from typing import NamedTuple

from ailabber.model import ids
from ailabber.model.retention import Finished, Freeing, Inode, Removal, Usage, choose
from ailabber.model.retention_policy import Policy
from ailabber.model.task import parse_iso
from ailabber.storage import statusfile
from ailabber.storage.notices import queue_dir
from ailabber.storage.spool import DONE, Spool
from ailabber.storage.trash import TaskInUse, empty_trash, remove_task

NOT_NAMED = "not named"


class Outcome(NamedTuple):
    removed: list[Removal]              # removed (a dry run: would be), with the bytes freed
    left: list[tuple[str, str]]         # (id, why) of chosen or named tasks left in place
    considered: list[Finished]          # every finished task looked at


def blocker(spool: Spool, task_id: str) -> tuple[str | None, float | None]:
    """Why ``done/<id>`` must stay whatever a policy says (None: it may go), and when it
    finished."""
    st = statusfile.read_status(spool.stage_dir(DONE) / task_id)
    if st is None:
        return "its status.json cannot be read", None
    finished = parse_iso(st.finished_at) or parse_iso(st.updated_at)
    if not st.terminal:
        return f"it is {st.state}, not finished", finished
    if "results_error" in st.extra:
        return "its logs and results could not all be pulled back (results_error)", finished
    if spool.request_path(task_id, "fetch").exists():
        return "a fetch of it is waiting for spoold", finished
    if (queue_dir(spool) / task_id).exists():
        return "spoold has yet to send its notice (on_finish, desktop)", finished
    return None, finished


def survey(spool: Spool, younger: float | None = None) -> list[Finished]:
    """Every task in ``done/``.  A task submitted after ``younger`` (epoch seconds) cannot
    have finished before it, so its status is not read: it stays in the list (for ``keep``)
    as one that finished just now.  With thousands of tasks, a pass reads only the old."""
    out = []
    for task_id in spool.ids_in(DONE):
        submitted = ids.submitted_at(task_id)
        if younger is not None and submitted is not None and submitted > younger:
            out.append(Finished(task_id, None))
            continue
        why, finished = blocker(spool, task_id)
        out.append(Finished(task_id, finished, why))
    return out


def measure(spool: Spool, task_id: str) -> Usage:
    """Blocks on disk of the task's directory and its outbox mirror; a regular file with
    other names (shared with another task) is listed apart, to be freed with its last name."""
    own = 0
    shared: dict[Inode, list[int]] = {}
    for top in (spool.stage_dir(DONE) / task_id, spool.outbox(task_id)):
        for st in _lstat_tree(top):
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                entry = shared.setdefault((st.st_dev, st.st_ino), [st.st_blocks * 512, st.st_nlink, 0])
                entry[2] += 1
            else:
                own += st.st_blocks * 512
    return Usage(own, tuple((inode, v[0], v[1], v[2]) for inode, v in shared.items()))


def spool_bytes(spool: Spool) -> int:
    """Blocks the whole spool uses, each file counted once however many names it has."""
    seen: set[Inode] = set()
    total = 0
    for st in _lstat_tree(spool.root):
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
        total += st.st_blocks * 512
    return total


def _lstat_tree(top: Path) -> list[os.stat_result]:
    """Every entry under ``top`` (itself included), not following symlinks; entries that
    vanish or cannot be read are left out."""
    out: list[os.stat_result] = []
    try:
        out.append(os.lstat(top))
    except OSError:
        return out
    for dirpath, dirnames, filenames in os.walk(top):     # symlinks are listed, never entered
        for name in dirnames + filenames:
            try:
                out.append(os.lstat(os.path.join(dirpath, name)))
            except OSError:
                continue
    return out


def clean(spool: Spool, policy: Policy, now: float, only: Collection[str] | None = None,
          dry_run: bool = False) -> Outcome:
    """Apply ``policy`` to ``done/`` (to the tasks in ``only``, if given: the others count
    for ``keep`` but stay).  Removes oldest first and reports the bytes really freed.
    ``left`` names the tasks the policy would have removed but must not (and, with
    ``only``, every named task that stays), each with the reason."""
    if not dry_run:
        empty_trash(spool)
    cutoff = None
    if only is None and policy.max_bytes is None and policy.max_age is not None:
        cutoff = now - policy.max_age     # submitted since: cannot have finished before
    found = survey(spool, cutoff)
    tasks = found if only is None else [t if t.id in only else t._replace(blocker=NOT_NAMED) for t in found]
    usage: dict[str, Usage] = {}
    if policy.max_bytes is not None:
        usage = {t.id: measure(spool, t.id) for t in tasks if t.blocker is None}
        tasks = [t._replace(usage=usage.get(t.id, Usage())) for t in tasks]
        chosen = choose(tasks, policy, now, spool_bytes(spool))
    else:
        chosen = choose(tasks, policy, now)
    # What the policy would take if nothing held the tasks back: those held back are told.
    unheld = {r.id for r in choose([t._replace(blocker=None) for t in found], policy, now)} if only is None else set()
    left = [(t.id, t.blocker) for t in tasks
            if t.blocker is not None and t.blocker != NOT_NAMED and (only is not None or t.id in unheld)]
    chosen_ids = {r.id for r in chosen}
    left += [(t.id, "kept by --older-than or --keep") for t in tasks
             if only is not None and t.id in only and t.blocker is None and t.id not in chosen_ids]
    freeing = Freeing()
    removed: list[Removal] = []
    for r in chosen:
        u = usage.get(r.id) or measure(spool, r.id)
        if not dry_run:
            try:
                if not remove_task(spool, r.id):
                    continue                         # removed by someone else meanwhile
            except TaskInUse:
                left.append((r.id, "another command (logs, fetch) is reading it"))
                continue
        removed.append(r._replace(freed=freeing.remove(u)))
    return Outcome(removed, left, tasks)
