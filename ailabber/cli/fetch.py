"""``ailabber fetch ID [--dest DIR]``: copy a task's logs and results out of the spool.

Results of a finished task are already in the spool (spoold pulls them when it ends).
For an unfinished one the CLI drops a fetch request and waits for spoold to pull what
exists so far: the CLI itself never touches the network.

``DIR`` is often in a shared place (``/tmp/...``) where another user may have planted
symlinks, so everything is written through directory handles (``UserDir``): only into
directories the user owns, never through a symlink, each file made under a fresh name and
renamed into place.
"""

from __future__ import annotations

import argparse
import functools
import os
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from ailabber.cli.common import EXIT_FAIL, CliError, find_task, get_spool, holding, spoold_pid
from ailabber.cli.helptext import describe
from ailabber.model import render
from ailabber.model.task import TaskStatus
from ailabber.storage import statusfile
from ailabber.storage.filecopy import copy_fd
from ailabber.storage.logindex import INDEX, STREAMS, split_stream
from ailabber.storage.safedir import UnsafePath
from ailabber.storage.spool import NEW, RESULTS, Spool
from ailabber.storage.userdir import UserDir, open_user_dir

LOGS_SUBDIR = "ailabber-logs"
#: Everything that matched was copied, but an entry of run.logs or run.results matched nothing.
EXIT_UNMATCHED = 3


def configure(p: argparse.ArgumentParser) -> None:
    describe(p, """\
Copy a task's results (run.results, run.logs) and ailabber's logs into DIR (default
./ailabber-results/<id>/).  For a task still running, spoold first pulls what exists
so far.""", """\
  ailabber fetch 63d
  ailabber fetch 63d --dest ~/runs/lr-0.1""")
    p.add_argument("id", help="task id, or a unique prefix or suffix of one")
    p.add_argument("--dest", type=Path, default=None)
    p.add_argument("--timeout", type=float, default=120, help="seconds to wait for spoold (unfinished tasks)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spool = get_spool()
    task_id = find_task(spool, args.id)[0]
    return holding(spool, task_id, lambda: _fetch(spool, task_id, args))


def _fetch(spool: Spool, task_id: str, args: argparse.Namespace) -> int:
    _task_id, stage, task_dir, st = find_task(spool, task_id)
    if stage == NEW:
        raise CliError(f"{task_id} has not been sent to the cluster yet; nothing to fetch")
    if not st.terminal:
        if spoold_pid(spool) is None:
            raise CliError("spoold is not running, so results of an unfinished task cannot be pulled (start it: ailabber up)")
        req = spool.drop_request(task_id, "fetch")
        deadline = time.monotonic() + args.timeout
        while req.exists():
            if time.monotonic() > deadline:
                raise CliError(f"spoold did not deliver within {args.timeout:g}s; the request stays queued")
            time.sleep(0.2)
        loc = spool.locate(task_id)
        task_dir = loc[1] if loc else task_dir
    dest = args.dest if args.dest is not None else Path("ailabber-results") / task_id
    try:
        copied = deliver(task_dir / RESULTS, spool.outbox(task_id) / "logs", task_dir / statusfile.STATUS, dest)
    except UnsafePath as exc:
        raise CliError(exc.strerror or str(exc)) from None
    final = statusfile.read_status(task_dir) or st
    print(f"{task_id} ({render.state_text(final)}): {copied} file(s) in {dest}")
    if not copied:
        return EXIT_FAIL
    return EXIT_UNMATCHED if say_unmatched(final) else 0


def say_unmatched(st: TaskStatus) -> bool:
    """Name each entry of run.logs/run.results that matched nothing on the cluster (a typo,
    or the job did not write it); whether there was one."""
    from ailabber.model.outputs import unmatched_lines

    lines = unmatched_lines(st.extra.get("unmatched"))
    for line in lines:
        print(f"ailabber: {line}", file=sys.stderr)
    return bool(lines)


def deliver(results: Path, logs: Path, status: Path, dest: Path) -> int:
    """Copy the results into ``dest``, the logs into ``dest/ailabber-logs`` and the status
    file beside them; returns how many files (results and logs) were copied."""
    uid = os.geteuid()
    with open_user_dir(dest, uid) as out:
        copied = copy_tree(results, out, uid) if results.is_dir() else 0
        if logs.is_dir():
            with out.enter_owned(LOGS_SUBDIR, uid) as log_out:
                copied += copy_tree(logs, log_out, uid)
                copied += split_streams(logs, log_out)
        copy_entry(status, out, status.name)
    return copied


def split_streams(logs: Path, dest: UserDir) -> int:
    """``stdout.log`` and ``stderr.log`` beside ``output.log``, as the student expects to
    find them in a fetched copy: the cluster stores the output once, with a stream index
    (``ailabber/storage/logindex.py``).  Returns how many were written (none for a task whose
    logs came from a cluster that still kept separate files)."""
    if not (logs / INDEX).is_file():
        return 0
    for name, stream in STREAMS.items():
        data = split_stream(logs, stream)
        dest.replace_with(f"{name}.log", functools.partial(_write_all, data=data))
    return len(STREAMS)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def copy_tree(src: Path, dest: UserDir, uid: int) -> int:
    """Copy the contents of ``src`` into ``dest`` (files with their mode and times, symlinks
    as symlinks, directories made or entered with ``enter_owned``); iterative, so a deep
    tree needs no recursion.  Returns the number of entries that are files (a symlink to a
    file counts, as ``Path.is_file`` says)."""
    copied = 0
    stack: list[tuple[Iterator[os.DirEntry[str]], UserDir, Path]] = [(_entries(src), dest, src)]
    while stack:
        entries, out, here = stack[-1]
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append((_entries(Path(entry.path)), out.enter_owned(entry.name, uid), Path(entry.path)))
                break
            copied += entry.is_file()
            copy_entry(Path(entry.path), out, entry.name)
        else:
            stack.pop()
            _finish_dir(here, out)
            if stack:
                out.close()
    return copied


def copy_entry(src: Path, dest: UserDir, name: str) -> None:
    """One file or symlink into ``dest`` (anything else, e.g. a FIFO, is left out)."""
    st = os.lstat(src)
    if stat.S_ISLNK(st.st_mode):
        dest.replace_symlink(name, os.readlink(src))
        return
    if not stat.S_ISREG(st.st_mode):
        return
    fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        def fill(out: int) -> None:
            copy_fd(fd, out)
            os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))

        dest.replace_with(name, fill, stat.S_IMODE(st.st_mode) & 0o777)
    finally:
        os.close(fd)


def _entries(path: Path) -> Iterator[os.DirEntry[str]]:
    with os.scandir(path) as it:
        return iter(sorted(it, key=lambda e: e.name))


def _finish_dir(src: Path, out: UserDir) -> None:
    """Mode and times of a copied directory, last (filling it changed its mtime); the
    user keeps ``rwx`` so that a later fetch can write into it again."""
    st = os.stat(src)
    os.fchmod(out.fd, (stat.S_IMODE(st.st_mode) & 0o777) | 0o700)
    os.utime(out.fd, ns=(st.st_atime_ns, st.st_mtime_ns))
