"""Figure 5: submitting the large project again after changing one file, over ssh.

A student (real account, spoold as that account, key pinned with rrsync on a loopback
sshd) submits a project of 2,000 incompressible files (500 MB; 200 MB with ``--quick``),
waits until it has run, overwrites one file with new bytes of the same size and submits
again.  Bytes come from the task's status (``upload_bytes_sent`` of
``upload_bytes_total``, rsync's own count); times from the task's local history: from the
``uploading`` event spoold records before rsync starts to the next local event, recorded
once the files and the commit marker are sent.  The floor of each is the first upload.
"""

from __future__ import annotations

import json
import os

from ailabber.storage.fsutil import read_json_lines
from benchmarks.common import Ctx, Row, make_tree, ratio, tree_bytes, upload_span, write_config
from benchmarks.infra import make_site
from testbed.unix_users import chown_tree

BYTES = ("resubmission over ssh, one file changed: bytes sent", "bytes", "<= 0.01x")
TIME = ("resubmission over ssh, one file changed: upload time", "s", "<= 0.1x")
FIGURES = (BYTES, TIME)


def run(ctx: Ctx) -> list[Row]:
    user = ctx.infra.users(1)[0]
    site = make_site(ctx.infra, "resubmit", [user], transport="ssh", scheduler="local", gpus=0)
    p = site.pipes[user]
    total = 200_000_000 if ctx.quick else 500_000_000
    try:
        project = site.base / "work" / "project"
        make_tree(project / "data", files=2000, total_bytes=total, dirs=20)
        write_config(project, ["ls data > /dev/null"], memory="100M", time_limit="1:00")
        chown_tree(site.base / "work", user)
        size = tree_bytes(project)
        site.start()
        first = p.submit(project)
        st1 = p.wait_terminal(first, 600)
        victim = project / "data" / "part07" / "chunk00007.bin"
        victim.write_bytes(os.urandom(victim.stat().st_size))
        second = p.submit(project)
        st2 = p.wait_terminal(second, 600)
        for st in (st1, st2):
            if st["state"] != "completed":
                raise RuntimeError(f"task {st['id']} ended {st['state']}: {st.get('message')}")
        spans = []
        for task_id in (first, second):
            events = [e for e in read_json_lines(p.home / "spool" / "done" / task_id / "events.jsonl")
                      if isinstance(e, dict)]
            span = upload_span(events)
            if span is None:
                raise RuntimeError(f"{task_id}: no upload in its history: {json.dumps(events)[:500]}")
            spans.append(span[1] - span[0])
        remote = site.root / "users" / user / "tasks"
        linked = (remote / second / "files" / "data" / "part00" / "chunk00000.bin").stat().st_nlink
    finally:
        site.cleanup()
    sent1, sent2, total2 = st1["upload_bytes_sent"], st2["upload_bytes_sent"], st2["upload_bytes_total"]
    rb, rt = ratio(sent2, sent1), ratio(spans[1], spans[0])
    common = (f"{size / 1e6:.0f} MB in 2,000 files; second upload sent {sent2:,} of {total2:,} bytes "
              f"({100 * sent2 / total2:.2f} % of the task); unchanged files on the cluster are hard links "
              f"to the first task's (link count {linked})")
    return [
        Row(*BYTES, value=float(sent2), floor=float(sent1), ratio=rb, met=rb is not None and rb <= 0.01,
            floor_what="bytes the first upload of the same project sent", notes=common),
        Row(*TIME, value=spans[1], floor=spans[0], ratio=rt, met=rt is not None and rt <= 0.1,
            floor_what="the first upload of the same project, same transport",
            notes=f"{common}; spoold runs rsync with --checksum, so both sides read and hash every file"),
    ]
