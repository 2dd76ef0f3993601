"""``ailabber-gate [--rrsync=PATH] [rrsync options] DIR``: the forced command an admin pins
a student's ssh key to, in place of ``rrsync DIR``.

It allows exactly what rrsync allows for that directory, plus one verb, ``watch``
(``remoted/areawatch.py``): a long-lived session that says when something in the
directory changed, so that spoold pulls only then instead of polling.  The bar is
rrsync's because it *is* rrsync: every command other than ``watch`` (rsync's server
command, or anything else) is handed to rrsync by ``exec``, with the same arguments and
environment, and rrsync accepts or refuses it exactly as when it is the forced command
itself.  ``watch`` takes no arguments; what it watches is fixed by ``DIR``, from the
admin's ``authorized_keys`` line, never by the student.

This module imports nothing but the standard library's ``os`` and ``sys`` before it
knows the command is not rsync: every rsync session pays its start-up on the login node.
"""

from __future__ import annotations

import os
import sys

#: Where rrsync is looked for (never along $PATH): Debian and Ubuntu ship it in the
#: rsync package; elsewhere give ``--rrsync=PATH``.
RRSYNC_PLACES = ("/usr/bin/rrsync", "/usr/local/bin/rrsync")
USAGE = "usage: ailabber-gate [--rrsync=PATH] [rrsync options] DIR (as a forced command in authorized_keys)"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    rrsync = next((p for p in RRSYNC_PLACES if os.access(p, os.X_OK)), RRSYNC_PLACES[0])
    if args and args[0].startswith("--rrsync="):
        rrsync = args.pop(0).partition("=")[2]
    if not args or args[-1].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 2
    command = os.environ.get("SSH_ORIGINAL_COMMAND")
    if command is None:
        print("ailabber-gate: runs only as the forced command of an ssh key (SSH_ORIGINAL_COMMAND is not set)",
              file=sys.stderr)
        return 2
    if not command.startswith("rsync "):
        from ailabber.model.watch_lines import VERB

        words = command.split()
        if words[:1] == [VERB]:
            if len(words) > 1:
                print(f"ailabber-gate: {VERB} takes no arguments (it watches the directory the key is pinned to)",
                      file=sys.stderr)
                return 2
            if "-wo" in args[:-1]:
                print(f"ailabber-gate: {VERB} refused: this key is write-only", file=sys.stderr)
                return 2
            from pathlib import Path

            from remoted.areawatch import AreaWatch

            return AreaWatch(Path(args[-1])).run()
    try:
        os.execv(rrsync, [rrsync, *args])       # rrsync allows or refuses, as it would alone
    except OSError as exc:
        print(f"ailabber-gate: cannot run rrsync at {rrsync}: {exc.strerror} (give --rrsync=PATH)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
