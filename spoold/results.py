"""Bringing a task's ``run.logs`` and ``run.results`` back, and saying what matched nothing.

Once a task has ended, remoted has listed what each entry matches (``outputs.json`` in its
outbox, written before the final status): spoold pulls that listing, takes only the paths
that pass ``parse_outputs`` (the job named them: any name at all), brings back exactly
those, and records in the task's status and events which entries matched nothing.  A
running task (``fetch``), or one without a usable listing, is brought back by its
patterns as rsync's filter rules match them, and nothing is said about what matched.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ailabber.model.outputs import OUTPUTS_FILE, Outputs, parse_outputs, unmatched_field, unmatched_lines
from ailabber.model.remote_layout import OUTBOX
from ailabber.model.task import now_iso
from ailabber.storage import fsutil, statusfile
from ailabber.storage.spool import META, RESULTS, Spool
from spoold.transport import RsyncTransport

log = logging.getLogger("spoold")


def pull_results(transport: RsyncTransport, spool: Spool, task_id: str, task_dir: Path) -> Outputs | None:
    """The task's logs, then its outputs into ``task_dir/results``; the listing used, if any."""
    meta = fsutil.read_json_or_none(task_dir / META) or {}
    logs = [p for p in meta.get("logs", []) if isinstance(p, str)]
    results = [p for p in meta.get("results", []) if isinstance(p, str)]
    workdir = str(meta.get("workdir", "."))
    transport.pull_logs([task_id], spool.root)
    st = statusfile.read_status(task_dir)
    out = None
    if st is not None and st.terminal and (logs or results):
        copy = spool.outbox(task_id) / OUTPUTS_FILE
        transport.pull_file(f"{OUTBOX}/{task_id}/{OUTPUTS_FILE}", copy)
        out = parse_outputs(fsutil.read_json_or_none(copy), logs, results)
        if out is None and copy.exists():
            log.warning("%s: %s is not a listing of this task's entries; bringing them back by pattern",
                        task_id, OUTPUTS_FILE)
    if out is not None and out.complete:
        transport.pull_paths(task_id, workdir, out.paths(), task_dir / RESULTS)
    else:
        transport.pull_results(task_id, workdir, logs + results, task_dir / RESULTS)
    if out is not None:
        record_listing(task_dir, out)
    return out


def record_listing(task_dir: Path, out: Outputs) -> None:
    """Say once, in the status (``unmatched``) and as an event, which entries matched
    nothing, or (``outputs_incomplete``) why that is not known."""
    st = statusfile.read_status(task_dir)
    if st is None or "unmatched" in st.extra or "outputs_incomplete" in st.extra:
        return
    event: dict[str, object] | None = None
    if out.complete:
        st.extra["unmatched"] = unmatched = unmatched_field(out)
        if unmatched:
            event = {"event": "unmatched", "unmatched": unmatched, "message": "; ".join(unmatched_lines(unmatched))}
    else:
        st.extra["outputs_incomplete"] = out.note or "the listing is incomplete"
        event = {"event": "outputs_incomplete", "message": st.extra["outputs_incomplete"]}
    if event is not None:
        st.seq += 1
        event = {"at": now_iso(), "seq": st.seq, **event}
    statusfile.record(task_dir, st, event)
