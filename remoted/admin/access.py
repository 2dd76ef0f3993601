"""Who may run ``ailabber admin``: root, and the members of the Unix group remoted.yaml
names in ``admin_group``.

Two checks, both from the operating system: the command checks its caller (real uid and
groups) to refuse early with a clear line, and remoted checks the owner of every request
file (``st_uid`` of what it opened) before it acts, since the command's own check runs in
the caller's process and proves nothing to remoted.
"""

from __future__ import annotations

import grp
import os
import pwd

from ailabber.daemonkit.remoted_settings import RemotedSettings


class Refused(Exception):
    """One line: who was refused, and who may."""


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def staff_gid(settings: RemotedSettings) -> int | None:
    if settings.admin_group is None:
        return None
    try:
        return grp.getgrnam(settings.admin_group).gr_gid
    except KeyError:
        return None


def is_staff(uid: int, settings: RemotedSettings) -> bool:
    """Whether the account ``uid`` may act as course staff: root, or a member of
    ``admin_group`` (as its primary group or a supplementary one), as the group database
    says now."""
    if uid == 0:
        return True
    gid = staff_gid(settings)
    if gid is None:
        return False
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return False
    return entry.pw_gid == gid or entry.pw_name in grp.getgrgid(gid).gr_mem


def caller(settings: RemotedSettings) -> str:
    """The name of the user running this command if they are staff; ``Refused`` otherwise.
    The real uid counts (not the effective one), and the process's own groups."""
    uid = os.getuid()
    if uid == 0:
        return "root"
    gid = staff_gid(settings)
    if gid is not None and (gid == os.getgid() or gid in os.getgroups()):
        return user_name(uid)
    who = user_name(uid)
    if settings.admin_group is None:
        raise Refused(f"{who} may not run admin commands: only root may, since "
                      f"{settings.source or 'remoted.yaml'} names no admin_group")
    raise Refused(f"{who} may not run admin commands: only root and members of the group "
                  f"'{settings.admin_group}' may")
