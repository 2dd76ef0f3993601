"""What in an upload looks sent by mistake: said at submit, one line each, never refused.

A data set, a folder of checkpoints or a virtualenv under a name the ignore rules do not
know costs every later upload, the student's quota and the cluster's disk, and is almost
never what the job needs (the cluster builds its own environment from ``uv.lock``).  The
submit goes on all the same: the job may need it, and the student decides.  Each warning
names the path, its size and the exact ``files.ignore`` line that leaves it out.

Everything is judged from the upload's plan alone (no second walk): a virtualenv by its
``pyvenv.cfg``, a conda environment by ``conda-meta/``, a git repository by ``HEAD`` next
to ``objects/``, data by the directory's name and size, and any directory or file by size.
A directory warned about is one line: nothing inside it is warned about again, and its
bytes do not make its parents "large".  ``files.warn = false`` turns all of it off;
``files.no_warn`` names paths uploaded on purpose (gitignore syntax, like files.ignore).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import NamedTuple

from ailabber.model.config import Files
from ailabber.model.config_fields import quote
from ailabber.model.render import size
from ailabber.workstation.ignore import IgnoreRules, pattern_for
from ailabber.workstation.snapshot import DIR, FILE, Entry

MB = 1000 * 1000
BIG_DIR_BYTES = 100 * MB        # any directory (the deepest one this large)
DATA_DIR_BYTES = 10 * MB        # a directory named like data, checkpoints or run outputs
LARGE_FILE_BYTES = 50 * MB      # any file
WEIGHTS_FILE_BYTES = 10 * MB    # a file named like weights, a checkpoint or an array dump

DATA_DIR_NAMES = frozenset({
    "data", "dataset", "datasets", "checkpoints", "checkpoint", "ckpt", "ckpts", "weights",
    "wandb", "runs", "mlruns", "lightning_logs", "tensorboard", "tb_logs", "outputs", "output",
    "results", "cache", ".cache",
})
WEIGHTS_SUFFIXES = (
    ".ckpt", ".pt", ".pth", ".safetensors", ".bin", ".h5", ".hdf5", ".onnx", ".npy", ".npz",
    ".pkl", ".pickle", ".parquet", ".arrow", ".tfrecord", ".zip", ".tar", ".tgz", ".tar.gz",
)

VENV, CONDA, GIT, DATA, BIG_DIR, WEIGHTS, LARGE_FILE = (
    "venv", "conda_env", "git_repo", "data_dir", "large_dir", "weights_file", "large_file")

_WHAT = {
    VENV: "is a Python virtual environment (it has pyvenv.cfg); the cluster builds the job's own",
    CONDA: "is a conda environment (it has conda-meta/); the cluster builds the job's own",
    GIT: "is a git repository (it has HEAD and objects/)",
    DATA: "looks like data, checkpoints or run outputs",
    BIG_DIR: "is a large directory",
    WEIGHTS: "looks like model weights, a checkpoint or a data file",
    LARGE_FILE: "is a large file",
}


class UploadWarning(NamedTuple):
    kind: str
    path: str       # relative to the upload directory
    is_dir: bool
    bytes: int      # what it adds to the upload

    @property
    def ignore_line(self) -> str:
        """The files.ignore entry that leaves exactly this path out."""
        return pattern_for(self.path, self.is_dir)

    def message(self) -> str:
        shown = quote(self.path + ("/" if self.is_dir else ""), 200)
        return (f"warning: {shown} ({size(self.bytes)}) {_WHAT[self.kind]}; unless the job needs it, "
                f"add {json.dumps(self.ignore_line)} to files.ignore")

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "path": self.path, "is_dir": self.is_dir, "bytes": self.bytes,
                "ignore_line": self.ignore_line, "message": self.message()}


def _parent(rel: str) -> str:
    return rel.rpartition("/")[0]


def _ancestors(rel: str) -> Iterable[str]:
    while "/" in rel:
        rel = _parent(rel)
        yield rel


def _dir_sizes(entries: list[Entry], dirs: list[str]) -> dict[str, int]:
    """Bytes of the files below each directory: each file counts in its own directory, then
    each directory in its parent, deepest first (``dirs`` lists parents before children)."""
    sizes = dict.fromkeys(dirs, 0)
    for e in entries:
        if e.kind == FILE:
            parent = e.rel.rpartition("/")[0]
            if parent:
                sizes[parent] += e.size
    for d in reversed(dirs):
        parent = d.rpartition("/")[0]
        if parent:
            sizes[parent] += sizes[d]
    return sizes


class _Judge:
    def __init__(self, entries: list[Entry], no_warn: tuple[str, ...]) -> None:
        self.files = {e.rel: e.size for e in entries if e.kind == FILE}
        self.dirs = [e.rel for e in entries if e.kind == DIR]      # parents before children
        self.dir_set = set(self.dirs)
        self.sizes = _dir_sizes(entries, self.dirs)
        self.quiet = IgnoreRules(no_warn) if no_warn else None
        self.handled: set[str] = set()      # directories warned about or quiet: nothing below counts
        self.out: list[UploadWarning] = []

    def inside_handled(self, rel: str) -> bool:
        return bool(self.handled) and any(d in self.handled for d in _ancestors(rel))

    def is_quiet(self, rel: str, is_dir: bool) -> bool:
        return self.quiet is not None and self.quiet.is_ignored(rel, is_dir)

    def handle(self, rel: str, kind: str | None) -> None:
        """``rel`` is said (``kind``) or quiet (None): its bytes leave its parents' sizes."""
        self.handled.add(rel)
        n = self.sizes.get(rel, 0)
        for d in _ancestors(rel) if n else ():
            self.sizes[d] -= n
        if kind is not None:
            self.out.append(UploadWarning(kind, rel, True, n))

    def kind_of_dir(self, rel: str) -> str | None:
        if f"{rel}/pyvenv.cfg" in self.files:
            return VENV
        if f"{rel}/conda-meta" in self.dir_set:
            return CONDA
        if f"{rel}/HEAD" in self.files and f"{rel}/objects" in self.dir_set:
            return GIT
        name = rel.rpartition("/")[2].lower()
        if name in DATA_DIR_NAMES and self.sizes.get(rel, 0) >= DATA_DIR_BYTES:
            return DATA
        return None

    def by_content(self) -> None:
        for rel in self.dirs:
            if self.inside_handled(rel):
                continue
            if self.is_quiet(rel, True):
                self.handle(rel, None)
            elif (kind := self.kind_of_dir(rel)) is not None:
                self.handle(rel, kind)

    def by_size(self) -> None:
        """The deepest directories still large once what was said is taken out."""
        big = {d for d in self.dirs if d not in self.handled and self.sizes.get(d, 0) >= BIG_DIR_BYTES}
        has_big_child = {_parent(d) for d in big}
        for rel in self.dirs:
            if rel in big and rel not in has_big_child and not self.inside_handled(rel):
                self.handle(rel, BIG_DIR)

    def large_files(self) -> None:
        for rel, n in self.files.items():
            if n < WEIGHTS_FILE_BYTES or self.inside_handled(rel) or self.is_quiet(rel, False):
                continue
            if n >= LARGE_FILE_BYTES:
                self.out.append(UploadWarning(LARGE_FILE, rel, False, n))
            elif rel.lower().endswith(WEIGHTS_SUFFIXES):
                self.out.append(UploadWarning(WEIGHTS, rel, False, n))


def upload_warnings(entries: list[Entry], files: Files) -> list[UploadWarning]:
    """What to warn about in an upload of ``entries`` (a snapshot plan's), largest first."""
    if not files.warn:
        return []
    judge = _Judge(entries, files.no_warn)
    judge.by_content()
    judge.by_size()
    judge.large_files()
    return sorted(judge.out, key=lambda w: (-w.bytes, w.path))


def warning_lines(warnings: list[UploadWarning], shown: int = 10) -> list[str]:
    """The warnings as lines for a person: the ``shown`` largest, then one line for the rest
    and one on how to silence them."""
    lines = [w.message() for w in warnings[:shown]]
    rest = warnings[shown:]
    if rest:
        lines.append(f"warning: {len(rest)} more ({size(sum(w.bytes for w in rest))}); "
                     "ailabber submit --dry-run lists them all")
    if warnings:
        lines.append("note: files.no_warn in task_config.toml silences the warnings for the paths it names, "
                     "files.warn = false all of them")
    return lines
