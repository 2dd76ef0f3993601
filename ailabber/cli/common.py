"""What every verb needs: the spool, task lookup, JSON output and exit codes."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ailabber.daemonkit.lock import holder_pid
from ailabber.daemonkit.spoold_settings import SpooldSettings, load_spoold_settings
from ailabber.daemonkit.yamlfile import SettingsError
from ailabber.model.ids import TaskLookupError
from ailabber.model.names import name_problem
from ailabber.model.task import TaskStatus
from ailabber.storage.spool import DAEMON_LOCK, Spool

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
#: Refused: not the owner of the spool, or not course staff (sysexits' EX_NOPERM).
EXIT_REFUSED = 77


class CliError(Exception):
    """A one-line error for the user, with the exit code to leave with."""

    def __init__(self, message: str, code: int = EXIT_FAIL):
        super().__init__(message)
        self.code = code


def get_settings() -> SpooldSettings:
    """spoold.yaml as spoold reads it.  An invalid file is a usage error naming the file and
    the key: carrying on with defaults would use another spool, or no upload limits."""
    try:
        return load_spoold_settings(None)
    except SettingsError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def get_spool() -> Spool:
    """The spool spoold serves: ``spool`` in spoold.yaml, else ``$AILABBER_HOME/spool``."""
    return Spool(get_settings().spool)


def find_task(spool: Spool, query: str) -> tuple[str, str, Path, TaskStatus]:
    """Resolve an id or unique prefix/suffix to (id, stage, dir, status); exit 2 if none."""
    try:
        task_id = spool.resolve(query)
    except TaskLookupError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    loc = spool.locate(task_id)
    st = spool.read_status(task_id)
    if loc is None or st is None:
        raise CliError(f"task {task_id} has no readable status in {spool.root}", EXIT_FAIL)
    return task_id, loc[0], loc[1], st


def check_name_option(name: str | None) -> None:
    """``--name``, checked at the edge as the config's ``name`` is (exit 2 naming it)."""
    if name is not None and (problem := name_problem(name)) is not None:
        raise CliError(f"--name: {problem}", EXIT_USAGE)


def task_json(st: TaskStatus, stage: str, now: float | None = None) -> dict[str, Any]:
    from ailabber.model.listing import json_fields

    d = st.to_dict()
    d["stage"] = stage
    d.update(json_fields(st, time.time() if now is None else now))
    return d


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def spoold_pid(spool: Spool) -> int | None:
    return holder_pid(spool.root / DAEMON_LOCK)


def holding(spool: Spool, task_id: str, read: Callable[[], int]) -> int:
    """``read()`` with the task held against removal (``storage/trash.reading``): ``clean``
    and spoold's retention leave it alone until ``read`` returns."""
    from ailabber.storage.trash import TaskGone, reading

    try:
        with reading(spool, task_id):
            return read()
    except TaskGone:
        raise CliError(f"{task_id} was removed from the spool (ailabber clean, or spoold's retention)") from None
