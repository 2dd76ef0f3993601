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


def verify_manifest(root: Path, manifest: Any) -> list[str]:
    """Return what is missing or wrong (empty list: the upload is whole)."""
    problems: list[str] = []
    if not isinstance(manifest, dict) or manifest.get("version") != MANIFEST_VERSION:
        return ["manifest is not a version-1 ailabber manifest"]
    files = manifest.get("files")
    links = manifest.get("symlinks", {})
    if not isinstance(files, dict) or not isinstance(links, dict):
        return ["manifest has no file list"]
    real_dirs: set[str] = {""}     # directories below root already checked to be real (no symlink)
    for rel, size in files.items():
        if not _safe_rel(rel):
            problems.append(f"unsafe path in manifest: {rel!r}")
            continue
        parent = rel.rpartition("/")[0]
        try:
            if not _real_dir(root, parent, real_dirs):
                problems.append(f"{rel}: leads outside the upload (through a symlink)")
                continue
            st = os.lstat(os.path.join(root, rel))
        except FileNotFoundError:
            problems.append(f"{rel}: missing")
            continue
        if stat.S_ISLNK(st.st_mode):
            problems.append(f"{rel}: is a symlink, not a file")
            continue
        if not isinstance(size, int) or st.st_size != size:
            problems.append(f"{rel}: size {st.st_size}, expected {size}")
        if len(problems) > 20:
            break
    for rel in links:
        if not _safe_rel(rel) or not os.path.islink(os.path.join(root, rel)):
            problems.append(f"{rel}: symlink missing")
    return problems


def _real_dir(root: Path, rel_dir: str, known: set[str]) -> bool:
    """Whether ``root/rel_dir`` is reached through real directories only (a symlinked
    directory could lead anywhere).  One lstat per directory, remembered in ``known``:
    an upload of thousands of files in a few directories costs a few calls."""
    if rel_dir in known:
        return True
    parent = rel_dir.rpartition("/")[0]
    if not _real_dir(root, parent, known):
        return False
    if not stat.S_ISDIR(os.lstat(os.path.join(root, rel_dir)).st_mode):
        return False
    known.add(rel_dir)
    return True


def _safe_rel(rel: object) -> bool:
    return (
        isinstance(rel, str)
        and bool(rel)
        and not rel.startswith("/")
        and "\0" not in rel
        and ".." not in rel.split("/")
    )
