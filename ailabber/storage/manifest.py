"""Make "complete" checkable: a list of every file of an upload with its size.

The manifest is the commit marker of an upload on the remote side.  remoted accepts a task
only when every listed file is present with its listed size, so a transfer cut short (or
still in flight) is never mistaken for a task.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

MANIFEST_VERSION = 1


def build_manifest(root: Path, task_id: str, members: list[str]) -> dict[str, Any]:
    """List every regular file and symlink under ``root/<member>`` for each member."""
    files: dict[str, int] = {}
    links: dict[str, str] = {}
    for member in members:
        top = root / member
        if top.is_symlink():
            links[member] = os.readlink(top)
        elif top.is_file():
            files[member] = top.stat().st_size
        elif top.is_dir():
            for dirpath, dirnames, filenames in os.walk(top):
                rel_dir = os.path.relpath(dirpath, root)
                for name in dirnames + filenames:
                    full = os.path.join(dirpath, name)
                    rel = os.path.join(rel_dir, name)
                    if os.path.islink(full):
                        links[rel] = os.readlink(full)
                    elif name in filenames and os.path.isfile(full):
                        files[rel] = os.stat(full).st_size
    return manifest_of(task_id, files, links)


def manifest_of(task_id: str, files: dict[str, int], links: dict[str, str]) -> dict[str, Any]:
    """The manifest of an upload whose regular files (path -> size) and symlinks
    (path -> target) are already known, e.g. from the snapshot that wrote them."""
    return {
        "version": MANIFEST_VERSION,
        "id": task_id,
        "files": files,
        "symlinks": links,
        "total_bytes": sum(files.values()),
        "file_count": len(files),
    }


def verify_manifest(root: Path | int, manifest: Any) -> list[str]:
    """Return what is missing or wrong (empty list: the upload is whole).

    ``root`` is the upload directory, or an open handle of it (remoted, as root, passes
    the handle it reached without following a symlink).  Every directory below it is
    entered with ``O_NOFOLLOW`` relative to its parent's handle, so a symlink swapped in
    at any moment makes a file "missing" instead of leading the check anywhere else."""
    problems: list[str] = []
    if not isinstance(manifest, dict) or manifest.get("version") != MANIFEST_VERSION:
        return ["manifest is not a version-1 ailabber manifest"]
    files = manifest.get("files")
    links = manifest.get("symlinks", {})
    if not isinstance(files, dict) or not isinstance(links, dict):
        return ["manifest has no file list"]
    with _Walker(root) as walk:
        for rel in sorted(files, key=lambda r: r.split("/") if isinstance(r, str) else []):
            size = files[rel]
            if not _safe_rel(rel):
                problems.append(f"unsafe path in manifest: {rel!r}")
                continue
            st = walk.lstat(rel)
            if st is None:
                problems.append(f"{rel}: missing")
            elif isinstance(st, _Outside):
                problems.append(f"{rel}: leads outside the upload (through a symlink)")
            elif stat.S_ISLNK(st.st_mode):
                problems.append(f"{rel}: is a symlink, not a file")
            elif not isinstance(size, int) or st.st_size != size:
                problems.append(f"{rel}: size {st.st_size}, expected {size}")
            if len(problems) > 20:
                break
        for rel in links:
            st = walk.lstat(rel) if _safe_rel(rel) else None
            if st is None or isinstance(st, _Outside) or not stat.S_ISLNK(st.st_mode):
                problems.append(f"{rel}: symlink missing")
    return problems


class _Outside:
    """What ``_Walker.lstat`` says of a path with a directory on the way that is not a
    real directory (a symlink swapped in, a file)."""


_OUTSIDE = _Outside()


class _Walker:
    """``lstat`` of relative paths through directory handles, keeping open only the
    handles along the current path (paths are visited sorted, so directories come in
    runs): an upload of thousands of directories never holds thousands of descriptors."""

    _FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

    def __init__(self, root: Path | int):
        self._own = not isinstance(root, int)
        self._root = os.open(root, self._FLAGS) if not isinstance(root, int) else root
        self._stack: list[tuple[str, int]] = []       # (component, fd) below the root

    def __enter__(self) -> _Walker:
        return self

    def __exit__(self, *_exc: object) -> None:
        while self._stack:
            os.close(self._stack.pop()[1])
        if self._own:
            os.close(self._root)

    def lstat(self, rel: str) -> os.stat_result | _Outside | None:
        *dirs, name = rel.split("/")
        keep = 0
        while keep < min(len(dirs), len(self._stack)) and self._stack[keep][0] == dirs[keep]:
            keep += 1
        while len(self._stack) > keep:
            os.close(self._stack.pop()[1])
        for part in dirs[keep:]:
            parent = self._stack[-1][1] if self._stack else self._root
            try:
                fd = os.open(part, self._FLAGS, dir_fd=parent)
            except FileNotFoundError:
                return None
            except OSError:          # ELOOP (a symlink), ENOTDIR: not a real directory
                return _OUTSIDE
            self._stack.append((part, fd))
        parent = self._stack[-1][1] if self._stack else self._root
        try:
            return os.stat(name, dir_fd=parent, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None


def _safe_rel(rel: object) -> bool:
    return (
        isinstance(rel, str)
        and bool(rel)
        and not rel.startswith("/")
        and "\0" not in rel
        and ".." not in rel.split("/")
        and _encodable(rel)
    )


def _encodable(rel: str) -> bool:
    """Whether ``rel`` is a name the filesystem can be asked about (a lone surrogate from
    a forged manifest is not)."""
    try:
        os.fsencode(rel)
    except UnicodeError:
        return False
    return True


def manifest_files(path: Path) -> dict[str, int]:
    """The file sizes a manifest lists ({} when it cannot be read): an upload's total."""
    import json

    try:
        data = json.loads(path.read_bytes())
        files = data.get("files", {})
        return {k: int(v) for k, v in files.items() if isinstance(v, int)}
    except (OSError, ValueError, AttributeError):
        return {}
