"""``ailabber submit --dry-run [--json]``: the report of ``workstation/preview.py``.

Exits as the submit would: 0 when it would be accepted, 2 (with the same ``ailabber:``
lines on stderr) when it would be refused.  Nothing is written, not even the spool's
directories.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ailabber.cli.common import EXIT_OK, EXIT_USAGE, print_json
from ailabber.model.config import ConfigError
from ailabber.model.config_fields import quote
from ailabber.model.joblimits import JobLimits
from ailabber.model.render import size, table
from ailabber.storage.spool import Spool
from ailabber.storage.upload_limits import UploadLimits
from ailabber.workstation.preview import Changes, LimitCheck, Preview, preview
from ailabber.workstation.upload_warnings import warning_lines

LISTED = 20         # paths listed per kind of change in the text report

_LIMIT_NAMES = {"max_upload_bytes": "upload size", "max_upload_files": "upload files",
                "max_disk_bytes": "cluster quota"}


def dry_run(config: Path, spool: Spool, limits: UploadLimits, jobs: JobLimits | None, as_json: bool) -> int:
    try:
        got = preview(config, spool, limits, jobs)
    except ConfigError as exc:
        _refuse(exc.problems)
        return EXIT_USAGE
    if as_json:
        print_json(to_json(got))
    else:
        print(render(got))
    _refuse(got.refusals)
    return EXIT_USAGE if got.refusals else EXIT_OK


def _refuse(lines: list[str]) -> None:
    for line in lines:
        print(f"ailabber: {line}", file=sys.stderr)


# --------------------------------------------------------------------------- JSON


def _limit_json(c: LimitCheck) -> dict[str, Any]:
    return {"name": c.name, "value": c.value, "limit": c.limit, "used": c.used, "fits": c.fits}


def _changes_json(c: Changes | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {"since": c.since, "submitted_at": c.submitted_at, "new": c.new, "changed": c.changed,
            "removed": c.removed, "bytes": c.bytes}


def to_json(p: Preview) -> dict[str, Any]:
    plan = p.plan
    return {
        "dry_run": True,
        "accepted": not p.refusals,
        "refusals": p.refusals,
        "upload": {"root": str(plan.root), "files": plan.file_count, "bytes": plan.total_bytes,
                   "disk_bytes": plan.disk_bytes,
                   "largest": [{"path": e.rel, "bytes": e.size} for e in plan.largest(10)]},
        "excluded": [{"pattern": t.rule.text, "source": t.rule.source, "line": t.rule.line,
                      "where": t.rule.where(), "paths": t.paths,
                      "files": t.files, "bytes": t.bytes} for t in p.excluded],
        "changes": _changes_json(p.changes),
        "limits": [_limit_json(c) for c in p.limits],
        "warnings": [w.to_dict() for w in p.warnings],
    }


# --------------------------------------------------------------------------- text


def _indent(text: str) -> list[str]:
    return ["  " + line for line in text.split("\n")]


def _upload(p: Preview) -> list[str]:
    plan = p.plan
    lines = [f"would upload {plan.file_count} files, {size(plan.total_bytes)} "
             f"({size(plan.disk_bytes)} on disk) from {plan.root}"]
    largest = plan.largest(10)
    if largest:
        lines.append("largest files:")
        lines += _indent(table(("size", "path"), [(size(e.size), quote(e.rel, 200)) for e in largest]))
    return lines


def _excluded(p: Preview) -> list[str]:
    if not p.excluded:
        return ["left out: nothing (no ignore rule matched)"]
    rows = [(t.rule.text, t.rule.where(), str(t.files), size(t.bytes)) for t in p.excluded]
    return ["left out, by rule:", *_indent(table(("rule", "from", "files", "size"), rows))]


def _listed(kind: str, paths: list[str]) -> list[str]:
    lines = [f"  {kind:<8} {quote(rel, 200)}" for rel in paths[:LISTED]]
    if len(paths) > LISTED:
        lines.append(f"  {kind:<8} ... and {len(paths) - LISTED} more (--json lists all)")
    return lines


def _changes(p: Preview) -> list[str]:
    c = p.changes
    if c is None:
        return ["since the last task: no earlier task from this directory in the spool"]
    when = f", submitted {c.submitted_at}" if c.submitted_at else ""
    lines = [f"since {c.since}{when}: {len(c.new)} new, {len(c.changed)} changed, {len(c.removed)} removed "
             f"({size(c.bytes)} new or changed)"]
    return lines + _listed("new", c.new) + _listed("changed", c.changed) + _listed("removed", c.removed)


def _limit_row(c: LimitCheck) -> tuple[str, str, str, str]:
    name = _LIMIT_NAMES[c.name]
    show = str if c.name == "max_upload_files" else size
    if c.limit is None:
        return name, show(c.value), "no limit known", "fits"
    if c.name == "max_disk_bytes":
        used = "usage not known yet" if c.used is None else f"{size(c.used)} used"
        return name, f"{show(c.value)} more", f"{size(c.limit)} ({used})", "fits" if c.fits else "EXCEEDS"
    return name, show(c.value), show(c.limit), "fits" if c.fits else "EXCEEDS"


def _limits(p: Preview) -> list[str]:
    rows = [_limit_row(c) for c in p.limits]
    return ["limits (the cluster's, as spoold last brought them, and spoold.yaml's):",
            *_indent(table(("limit", "this upload", "at most", ""), rows))]


def render(p: Preview) -> str:
    lines = ["dry run: nothing was written"]
    lines += _upload(p) + _excluded(p) + _changes(p) + _limits(p)
    if p.warnings:
        lines += ["warnings (a submit goes on with them):", *("  " + w for w in warning_lines(p.warnings, 50))]
    lines.append("a submit would be refused (see below)" if p.refusals else "a submit would be accepted")
    return "\n".join(lines)
