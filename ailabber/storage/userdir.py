"""A directory of the user's own to write into, reached without a symlink anyone else planted.

``ailabber fetch`` copies into a destination the student names, often in a shared place
(``/tmp/...``) where another user may have planted symlinks or may own a directory on the
way.  ``UserDir`` is a ``SafeDir`` that enters only directories the user owns (or, on the
way there, root's and sticky ones), follows only a symlink root made where only root
writes, and replaces each entry under a fresh name instead of writing through it.
"""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Callable
from pathlib import Path

from ailabber.storage.safedir import DIR_FLAGS, SafeDir, UnsafePath, check_name

#: Directories only passed through need search permission, not read (``/srv`` as 0711).
_PASS_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UserDir(SafeDir):
    def enter_owned(self, name: str, uid: int, mode: int = 0o777) -> UserDir:
        """Open the directory ``name`` (made if missing) for a user to write into: never
        through a symlink, and only if ``uid`` owns it, since a directory someone else owns
        may hold their symlinks, swapped in at any moment.  ``mode`` goes through the umask."""
        check_name(name)
        try:
            os.mkdir(name, mode, dir_fd=self.fd)
        except FileExistsError:
            pass
        sub = self._open_dir_nofollow(name)
        sub._require_owner(uid)
        return sub

    def enter_on_the_way(self, name: str, uid: int) -> UserDir:
        """Open ``name`` on the way to a user's destination, where nothing is written.  An
        existing directory may belong to the user, to root, or be sticky (a shared /tmp):
        in none of these can another user swap what the user creates inside.  A missing one
        is made (``enter_owned``); a symlink is followed only if root made it in a directory
        only root controls (``/home -> /data/home``)."""
        check_name(name)
        try:
            fd = os.open(name, _PASS_FLAGS, dir_fd=self.fd)
        except FileNotFoundError:
            return self.enter_owned(name, uid)
        except OSError as exc:
            fd = self._follow_admin_link(name, exc)
        sub = UserDir(fd, self.path / name)
        st = os.fstat(fd)
        if st.st_uid not in (uid, 0) and not st.st_mode & stat.S_ISVTX:
            sub.close()
            raise UnsafePath(0, f"{sub.path} is a directory owned by {owner_name(st.st_uid)}; "
                                "refusing to write below it")
        return sub

    def replace_with(self, name: str, fill: Callable[[int], None], mode: int = 0o644) -> None:
        """Make ``name`` a new regular file written by ``fill(fd)``: it is created under a
        fresh temporary name (O_EXCL, O_NOFOLLOW) and renamed over ``name``, so whatever was
        there, a planted symlink included, is replaced and never written through."""
        check_name(name)
        tmp = _temp_name(name)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=self.fd)
        try:
            try:
                fill(fd)
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
            self._rename_over(tmp, name)
        except BaseException:
            self._unlink_quietly(tmp)
            raise

    def replace_symlink(self, name: str, target: str) -> None:
        """Make ``name`` a symlink to ``target``, replacing whatever entry was there."""
        check_name(name)
        tmp = _temp_name(name)
        os.symlink(target, tmp, dir_fd=self.fd)
        try:
            self._rename_over(tmp, name)
        except BaseException:
            self._unlink_quietly(tmp)
            raise

    def _rename_over(self, tmp: str, name: str) -> None:
        try:
            os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except OSError as exc:
            raise UnsafePath(exc.errno, f"{self.path / name}: {exc.strerror}") from None

    def _unlink_quietly(self, name: str) -> None:
        try:
            os.unlink(name, dir_fd=self.fd)
        except OSError:
            pass

    def _open_dir_nofollow(self, name: str) -> UserDir:
        try:
            return UserDir(os.open(name, DIR_FLAGS, dir_fd=self.fd), self.path / name)
        except OSError as exc:
            raise self._refusal(name, exc) from None

    def _follow_admin_link(self, name: str, exc: OSError) -> int:
        """The descriptor of the directory a root-made symlink in a root-controlled
        directory points to; any other symlink (or non-directory) is refused."""
        st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        here = os.fstat(self.fd)
        root_controlled = here.st_uid == 0 and (not here.st_mode & 0o022 or here.st_mode & stat.S_ISVTX)
        if stat.S_ISLNK(st.st_mode) and st.st_uid == 0 and root_controlled:
            try:
                return os.open(name, _PASS_FLAGS & ~os.O_NOFOLLOW, dir_fd=self.fd)
            except OSError as exc2:
                raise UnsafePath(exc2.errno, f"{self.path / name}: {exc2.strerror}") from None
        raise self._refusal(name, exc)

    def _refusal(self, name: str, exc: OSError) -> UnsafePath:
        """Why ``name`` cannot be entered, naming a symlink's owner."""
        path = self.path / name
        try:
            st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except OSError:
            return UnsafePath(exc.errno, f"{path}: {exc.strerror}")
        if stat.S_ISLNK(st.st_mode):
            return UnsafePath(0, f"{path} is a symlink owned by {owner_name(st.st_uid)}; "
                                 "refusing to write through it")
        if not stat.S_ISDIR(st.st_mode):
            return UnsafePath(0, f"{path} exists and is not a directory")
        return UnsafePath(exc.errno, f"{path}: {exc.strerror}")

    def _require_owner(self, uid: int) -> None:
        owner = os.fstat(self.fd).st_uid
        if owner != uid:
            self.close()
            raise UnsafePath(0, f"{self.path} is a directory owned by {owner_name(owner)}; "
                                "refusing to write into it")



def open_user_dir(path: Path, uid: int) -> UserDir:
    """Open (making what is missing) the directory ``path`` that a command run by ``uid``
    writes into, walking from ``/`` one handle at a time: ``path`` must not be a symlink,
    must end up owned by ``uid``, and be reached through no symlink anyone but root could
    have planted.  ``..`` is resolved in the name first, as the user typed it."""
    names = Path(os.path.abspath(path)).parts[1:]
    cur = UserDir.open(Path("/"))
    try:
        for i, name in enumerate(names):
            last = i == len(names) - 1
            nxt = cur.enter_owned(name, uid) if last else cur.enter_on_the_way(name, uid)
            cur.close()
            cur = nxt
        if not names:
            cur._require_owner(uid)
    except BaseException:
        cur.close()
        raise
    return cur


def owner_name(uid: int) -> str:
    """The login of ``uid`` for a message, or ``uid N`` if it has none."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _temp_name(name: str) -> str:
    return f".{name}.tmp-{os.getpid()}-{os.urandom(3).hex()}"

