"""How spoold reaches the remote spool: rsync, and nothing but rsync.

Every remote operation is an rsync transfer into or out of the user's own area, so the
same code works between two local paths (the ``local`` transport) and over ssh to a key an
admin has pinned with ``rrsync`` (no remote shell command is ever run).  Batches
(``--files-from``) keep the number of rsync runs per pass constant, however many tasks are
active.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ailabber.daemonkit.spoold_settings import SpooldSettings
from ailabber.model.globs import ANY_DEPTH, Glob, compile_glob, variants
from ailabber.model.remote_layout import (
    INCOMING_COMMIT,
    INCOMING_TMP,
    OUTBOX,
    QUEUE_FILE,
    REQUESTS,
    TASKS,
    UserArea,
)
from ailabber.model.remote_url import LocalRemote
from ailabber.model.watch_lines import VERB
from ailabber.storage.home import os_user
from ailabber.storage.manifest import manifest_files
from spoold.errors import TransportError, classify
from spoold.progress import stream_output

log = logging.getLogger(__name__)
RSYNC_BASE = ("-rlpt", "--no-devices", "--no-specials", "--mkpath")
#: Uploads and result pulls write holes as holes: a sparse file stays sparse on the other
#: side.  Not for log pulls: they use --append (which implies --inplace), a combination
#: rsync before 3.1.3 refuses, and logs have no holes.
SPARSE = "--sparse"
#: Results never bring back a symlink that points outside the workdir (nor an absolute one).
SAFE_LINKS = "--safe-links"
PARTIAL_DIR = ".rsync-partial"
#: Uploads give the owner back the write bit the spool takes away (storage/filecopy.py):
#: on the cluster the job works in its own copy and may write into its files.
WRITABLE = "--chmod=u+w"
MAX_TRANSFER_SECONDS = 24 * 3600


@dataclass
class PushResult:
    bytes_total: int     # size of the task's files
    bytes_sent: int      # file bytes rsync had to send (not matched blocks, not protocol), <= bytes_total


class RsyncTransport:
    """``area`` is how rsync spells the user's remote area: a local path for the local
    transport, or ``/`` (rrsync) or an absolute path behind ``host_prefix`` over ssh."""

    def __init__(self, area: str, *, rsh: Sequence[str] | None = None, host_prefix: str = "",
                 rsync: str = "rsync", timeout: int = 30, bwlimit: int | None = None):
        """``bwlimit``: KiB/s an upload may use (rsync's ``--bwlimit``), None for no cap."""
        self.area = area.rstrip("/") if area != "/" else ""
        self.upload_opts = [f"--bwlimit={bwlimit}"] if bwlimit else []
        self.rsh = list(rsh) if rsh else None
        self.host_prefix = host_prefix
        self.rsync = shutil.which(rsync) or rsync
        self.timeout = timeout
        self._proc: subprocess.Popen[str] | None = None
        self._aborted = False

    @classmethod
    def to(cls, settings: SpooldSettings) -> RsyncTransport:
        """rsync to the remote as settings parsed it (``settings.remote``): this user's area
        under a local path, or over ssh with the admin's key and options."""
        remote = settings.remote
        if isinstance(remote, LocalRemote):
            return cls(str(UserArea(remote.root, os_user()).path), bwlimit=settings.upload_bwlimit)
        from spoold.ssh import ssh_command

        rsh = ssh_command(remote, settings.identity_file, settings.ssh_options, settings.connect_timeout)
        return cls(remote.path, rsh=rsh, host_prefix=remote.destination + ":",
                   timeout=3 * settings.connect_timeout, bwlimit=settings.upload_bwlimit)

    @property
    def over_ssh(self) -> bool:
        return self.rsh is not None

    @property
    def aborted(self) -> bool:
        """Whether spoold is stopping: a transfer that failed now failed because of that."""
        return self._aborted

    # --- plumbing ------------------------------------------------------------------------
    def _remote(self, rel: str) -> str:
        return f"{self.host_prefix}{self.area}/{rel}"

    def _run(self, args: Sequence[str], what: str, on_output: Callable[[str], None] | None = None) -> str:
        """Run rsync; its standard output.  ``on_output`` gets that output as it comes
        (an upload's progress), and rsync is asked for its running figures."""
        cmd = [self.rsync, *RSYNC_BASE, f"--timeout={self.timeout}"]
        if self.rsh:
            import shlex

            cmd.append("--rsh=" + shlex.join(self.rsh))
        cmd += ["--info=progress2", *args] if on_output else list(args)
        log.debug("rsync: %s", " ".join(cmd))
        if self._aborted:
            raise TransportError(f"{what}: stopped (spoold is shutting down)")
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
        except FileNotFoundError:
            raise TransportError("rsync is not installed on this machine (needed to move tasks)") from None
        self._proc = proc
        try:
            # Stalls are rsync's (--timeout) and ssh's (keepalives) to detect; this only
            # bounds a transfer that somehow never ends.
            if on_output is None:
                out, err = proc.communicate(timeout=MAX_TRANSFER_SECONDS)
            else:

                out, err = stream_output(proc, on_output, MAX_TRANSFER_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise TransportError(f"{what}: still running after {MAX_TRANSFER_SECONDS // 3600}h; retrying") from None
        finally:
            self._proc = None
        if self._aborted:
            raise TransportError(f"{what}: stopped (spoold is shutting down)")
        if proc.returncode != 0:
            raise classify(what, proc.returncode, err)
        return out

    def abort(self) -> None:
        """Stop the transfer in flight (called from a signal handler when spoold stops):
        an upload resumes from its partial files on the next start."""
        self._aborted = True
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()

    # --- the contract --------------------------------------------------------------------
    def prepare(self) -> None:
        """Local transport only: make the user's area and its fixed sub-directories."""
        if self.rsh:
            return
        for rel in (INCOMING_TMP, INCOMING_COMMIT, REQUESTS):
            os.makedirs(self._remote(rel), exist_ok=True)

    def push_task(self, task_id: str, task_dir: Path, members: Sequence[str], manifest_file: Path,
                  basis: str | None = None, checksum: bool = False,
                  on_output: Callable[[str], None] | None = None) -> PushResult:
        """Upload the members of ``task_dir`` into ``incoming/tmp/<id>/``, then the manifest
        as ``incoming/commit/<id>.json``: only the second transfer makes it a task.

        ``basis`` (an earlier task of the same user, already accepted) lets rsync hard-link
        unchanged files instead of sending them; an interrupted upload resumes from the
        partial files kept in ``--partial-dir``.  ``checksum``: compare files by content,
        not by size and whole-second mtime (see spoold/basis.py for when that is needed).
        ``on_output``: rsync's output as the files go (``spoold.progress``)."""
        srcs = [str(task_dir / m) for m in members]
        extra = ["--stats", SPARSE, WRITABLE, f"--partial-dir={PARTIAL_DIR}", *self.upload_opts]
        extra += ["--checksum"] if checksum else []
        if basis:
            # rrsync anchors a leading "/" at the student's restricted directory.
            extra.append(f"--link-dest={self.area}/{TASKS}/{basis}/")
        out = self._run([*extra, *srcs, self._remote(f"{INCOMING_TMP}/{task_id}/")], f"upload of {task_id}",
                        on_output)
        self._run([str(manifest_file), self._remote(f"{INCOMING_COMMIT}/{task_id}.json")], f"commit of {task_id}")
        # "Literal data": the file bytes that crossed, not matched blocks nor the protocol
        # ("Total bytes sent" counts both, and exceeds the files for small tasks).
        total = _stat(out, "Total file size")
        return PushResult(total, min(total, _stat(out, "Literal data")))

    def push_tasks(self, task_ids: Sequence[str], stage_dir: Path, members: Sequence[str], manifest_name: str,
                   basis: str | None = None, checksum: bool = False,
                   on_output: Callable[[str], None] | None = None) -> dict[str, PushResult]:
        """Upload several tasks with one rsync and commit them with a second one.

        A single task keeps its ``--link-dest`` basis; a batch (small tasks) goes without,
        since a basis directory can only match one task's relative paths.  Without a basis
        the only files already at the destination are an earlier attempt's of the same
        snapshot, so rsync's quick check is exact there."""
        if len(task_ids) == 1:
            t = task_ids[0]
            return {t: self.push_task(t, stage_dir / t, members, stage_dir / t / manifest_name, basis,
                                      checksum, on_output)}
        srcs = [f"{stage_dir}/./{t}/{m}" for t in task_ids for m in members]
        out = self._run(["-R", SPARSE, WRITABLE, f"--partial-dir={PARTIAL_DIR}", "--out-format=%n|%b|%l",
                         *self.upload_opts, *srcs, self._remote(INCOMING_TMP) + "/"],
                        f"upload of {len(task_ids)} tasks", on_output)
        sent: dict[str, int] = {t: 0 for t in task_ids}
        for line in out.splitlines():
            rest, _, length = line.rpartition("|")
            name, _, nbytes = rest.rpartition("|")
            t = name.split("/", 1)[0]
            if t in sent and nbytes.isdigit() and length.isdigit() and not name.endswith("/"):
                # %b includes the protocol's share; a file never sends more than its length.
                sent[t] += min(int(nbytes), int(length))
        # Hard links beside the spool (same filesystem), dot-named so rescans skip them.
        with tempfile.TemporaryDirectory(prefix=".markers-", dir=stage_dir.parent) as tmp:
            for t in task_ids:   # the manifests, named as their markers
                os.link(stage_dir / t / manifest_name, Path(tmp) / f"{t}.json")
            self._run([*(f"{tmp}/{t}.json" for t in task_ids), self._remote(INCOMING_COMMIT) + "/"],
                      f"commit of {len(task_ids)} tasks")
        results = {}
        for t in task_ids:
            total = sum(v for v in manifest_files(stage_dir / t / manifest_name).values())
            results[t] = PushResult(total, min(total, sent[t]))
        return results

    def send_request(self, task_id: str, kind: str, request_file: Path) -> None:
        self._run([str(request_file), self._remote(f"{REQUESTS}/{task_id}.{kind}")], f"{kind} request for {task_id}")

    def pull_status(self, task_ids: Sequence[str], spool_root: Path, also: Sequence[str] = ()) -> None:
        """Everything small at once, in one rsync run (over ssh, one session: what a pull
        costs the login node is the session, not the bytes): status.json and events.jsonl
        of each task into ``outbox/<id>/``, where the waiting ones stand (``outbox/
        queue.json``), and ``also`` (files at the top of the area, such as limits.json),
        each to the same place under ``spool_root``.  Checksummed: a rewrite of the same
        size within the same second would pass rsync's quick check.  The directories on
        the way keep their local modes (``--no-implied-dirs``)."""
        rels = [f"{OUTBOX}/{t}/{name}" for t in task_ids for name in ("status.json", "events.jsonl")]
        rels += [f"{OUTBOX}/{QUEUE_FILE}", *also]
        self._pull_list(rels, spool_root, ["--checksum", "--no-implied-dirs"], "status pull", base="")

    def pull_logs(self, task_ids: Sequence[str], spool_root: Path) -> None:
        """The logs directories into ``outbox/<id>/logs/`` under ``spool_root``, appending
        to what we already have: a growing log is not copied again from the start on every
        pass.  From the top of the area, as ``pull_status``: an area whose ``outbox/`` is
        not there yet is no error."""
        rels = [f"{OUTBOX}/{t}/logs/" for t in task_ids]
        self._pull_list(rels, spool_root, ["--append", "--no-implied-dirs"], "log pull", base="")

    def list_area(self) -> str:
        """List the top of the user's area: the cheapest proof that it is reachable."""
        return self._run(["--list-only", self._remote("")], "listing of your remote directory")

    def escapes_area(self) -> bool:
        """Whether the key can list the directory above the user's area (it must not)."""
        try:
            self._run(["--list-only", self._remote("..") + "/"], "confinement probe")
        except TransportError:
            return False
        return True

    def pull_file(self, rel: str, dest: Path) -> bool:
        """One small file of the user's area (e.g. the published limits); False if absent.
        Checksummed: a rewrite of the same size within the same second would pass rsync's
        quick check, and the copy would keep the old content."""
        os.makedirs(dest.parent, exist_ok=True)
        self._run(["--checksum", "--ignore-missing-args", self._remote(rel), str(dest)], f"pull of {rel}")
        return dest.exists()

    def pull_results(self, task_id: str, workdir_rel: str, patterns: Sequence[str], dest: Path) -> None:
        """What ``patterns`` (``run.logs``/``run.results`` entries, relative to the task's
        workdir) match into ``dest`` with the same relative names, as rsync's filter rules
        find it: a running task has no listing yet (see ``pull_paths``)."""
        if not patterns:
            return
        os.makedirs(dest, exist_ok=True)
        # One transfer of the workdir filtered down to the wanted paths: a path the job never
        # created is simply not matched (rrsync refuses a missing path given as an argument).
        # The rules go in a file: a thousand entries would not fit on a command line.
        with _list_file("".join(f"{rule}\n" for rule in result_filters(patterns))) as rules:
            self._run(["-m", SPARSE, SAFE_LINKS, f"--include-from={rules}", "--exclude=*",
                       self._remote(self._workdir(task_id, workdir_rel)) + "/", f"{dest}/"],
                      f"result pull of {task_id}")

    def pull_paths(self, task_id: str, workdir_rel: str, paths: Sequence[str], dest: Path) -> None:
        """Exactly ``paths`` (relative to the task's workdir, checked by the caller: the job
        named them) into ``dest`` with the same relative names; a directory whole, a path
        gone meanwhile skipped.  NUL-separated: a name may hold a newline."""
        if not paths:
            return
        os.makedirs(dest, exist_ok=True)
        with _list_file(b"".join(os.fsencode(p) + b"\0" for p in paths)) as names:
            self._run([SPARSE, SAFE_LINKS, "--from0", f"--files-from={names}", "--ignore-missing-args",
                       self._remote(self._workdir(task_id, workdir_rel)) + "/", f"{dest}/"],
                      f"result pull of {task_id}")

    @staticmethod
    def _workdir(task_id: str, workdir_rel: str) -> str:
        return f"{TASKS}/{task_id}/files" + ("" if workdir_rel in ("", ".") else f"/{workdir_rel}")

    def _pull_list(self, rels: list[str], dest: Path, extra: list[str], what: str, base: str = OUTBOX) -> None:
        if not rels:
            return
        os.makedirs(dest, exist_ok=True)
        with _list_file("\n".join(rels) + "\n") as names:
            self._run([*extra, "--ignore-missing-args", f"--files-from={names}",
                       self._remote(base).rstrip("/") + "/", f"{dest}/"], what)

    def watch_argv(self) -> list[str] | None:
        """The command of the watch channel (``spoold/watchchannel.py``): the gate's
        ``watch`` over the same multiplexed ssh connection; None for the local transport,
        which polls (see ``spoold/pullclock.py``)."""
        if not self.rsh or not self.host_prefix:
            return None
        return [*self.rsh, self.host_prefix.rstrip(":"), VERB]

    def close(self) -> None:
        """End the shared ssh connection (ControlMaster), if there is one."""
        if self.rsh and self.host_prefix:
            destination = self.host_prefix.rstrip(":")
            subprocess.run([*self.rsh, "-O", "exit", destination], capture_output=True, timeout=10, check=False)


def result_filters(patterns: Sequence[str]) -> list[str]:
    """rsync include rules (anchored at the workdir) selecting what ``patterns`` match:
    files, or whole directories; ``["/***"]`` for the whole workdir.  Each pattern's parent
    directories are included too, and ``-m`` drops those that end up empty.  rsync's
    ``**`` spans at least one directory, ours none too: each inner ``**`` is given both
    ways (``globs.variants``)."""
    rules: dict[str, None] = {}
    for pattern in patterns:
        glob = compile_glob(pattern)
        if not glob.parts:
            return ["/***"]                 # the whole workdir
        for variant in variants(glob):
            for end in range(1, len(variant)):
                rules[_rule(glob, variant[:end], "/")] = None
            rules[_rule(glob, variant, "")] = None
            rules[_rule(glob, variant, "/***")] = None
    return list(rules)


def _rule(glob: Glob, comps: Sequence[int], suffix: str) -> str:
    """One anchored rule for these components of ``glob``: its magic components as written
    (rsync's syntax is ours), literal names escaped where the rule has a wildcard (rsync
    takes a backslash literally in a rule without one)."""
    literal = {k: part for k in comps if isinstance(part := glob.parts[k], str) and part != ANY_DEPTH}
    magic = (bool(suffix.strip("/")) or len(literal) < len(comps)
             or any(ch in "*?[" for name in literal.values() for ch in name))
    texts = [(_escape(literal[k]) if magic else literal[k]) if k in literal else glob.comps[k] for k in comps]
    return "/" + "/".join(texts) + suffix


def _escape(path: str) -> str:
    """Filter patterns treat * ? [ and \\ specially; a literal name is taken literally."""
    out = []
    for ch in path:
        out.append("\\" + ch if ch in "*?[\\" else ch)
    return "".join(out)


@contextlib.contextmanager
def _list_file(content: str | bytes) -> Iterator[str]:
    """A temporary file holding ``content`` (rules or names for rsync), removed after."""
    data = content.encode() if isinstance(content, str) else content
    with tempfile.NamedTemporaryFile("wb", prefix="ailabber-list-", suffix=".txt") as fh:
        fh.write(data)
        fh.flush()
        yield fh.name


def _stat(out: str, label: str) -> int:
    for line in out.splitlines():
        if line.startswith(label + ":"):
            digits = "".join(ch for ch in line.split(":", 1)[1].split("bytes")[0] if ch.isdigit())
            return int(digits or 0)
    return 0
