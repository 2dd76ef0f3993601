"""``ailabber metrics``: what a job appends to ``$AILABBER_METRICS`` comes back with the
logs while the job runs, and the CLI shows it from the spool, as charts and as JSON."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from testbed.pipeline import Pipeline

#: The job writes a few lines (one not JSON, one value not a number, the last one cut in
#: the middle), waits for the test to create GO, then finishes the cut line and adds two.
JOB = """\
m="$AILABBER_METRICS"
echo '{"step": 1, "loss": 1.0, "acc": 0.1}' >> "$m"
echo 'not json' >> "$m"
echo '{"step": 2, "loss": 0.5, "acc": "n/a"}' >> "$m"
printf '{"step": 3, "lo' >> "$m"
while [ ! -e %(go)s ]; do sleep 0.1; done
printf 'ss": 0.25, "acc": 0.9}\\n' >> "$m"
echo '{"step": 4, "loss": NaN}' >> "$m"
echo '{"step": 5, "loss": 0.125}' >> "$m"
"""


def _metrics(p: Pipeline, task_id: str, *args: str) -> dict[str, Any]:
    r = p.cli("metrics", task_id, "--json", *args, check=True)
    return dict(json.loads(r.stdout))


def _wait_metrics(p: Pipeline, task_id: str, pred: Any, what: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    m: dict[str, Any] = {}
    while time.monotonic() < deadline:
        m = _metrics(p, task_id)
        if pred(m):
            return m
        time.sleep(0.2)
    raise AssertionError(f"{task_id}: timed out waiting for {what}; last metrics {m}\n{p.daemon_logs()}")


def _points(m: dict[str, Any], name: str) -> list[list[float]]:
    series = m["series"].get(name)
    return list(series["points"]) if series else []


def test_metrics_show_while_the_job_runs_and_after(pipeline: Pipeline, tmp_path: Path) -> None:
    go = tmp_path / "GO"
    task_id = pipeline.submit(pipeline.project([JOB % {"go": go}], time_limit="5:00"))
    running = _wait_metrics(pipeline, task_id, lambda m: m["state"] == "running" and len(_points(m, "loss")) == 2
                            and m["skipped"]["partial_line"] == 1, "the first lines while the job runs")
    assert _points(running, "loss") == [[1, 1.0], [2, 0.5]]
    assert _points(running, "acc") == [[1, 0.1]]
    assert running["skipped"] == {"partial_line": 1, "not_json": 1, "not_object": 0, "bad_step": 0,
                                  "non_numeric": 1, "non_finite": 0}
    shown = pipeline.cli("metrics", task_id, env={"COLUMNS": "70"})
    assert shown.returncode == 0, shown
    assert "loss = 0.5 at step 2" in shown.stdout and "acc = 0.1 at step 1" in shown.stdout
    assert any(0x2800 <= ord(c) < 0x2900 for c in shown.stdout), shown.stdout
    assert max(len(line) for line in shown.stdout.splitlines()) <= 70
    assert shown.stderr.strip() == ("skipped: 1 partial last line (still being written), 1 line that is not JSON, "
                                    "1 value that is not a number")

    go_tmp = tmp_path / ".GO.tmp"
    go_tmp.touch()
    os.replace(go_tmp, go)
    assert pipeline.wait_terminal(task_id)["state"] == "completed"
    after = _metrics(pipeline, task_id)
    assert after["state"] == "completed"
    assert _points(after, "loss") == [[1, 1.0], [2, 0.5], [3, 0.25], [5, 0.125]]
    assert _points(after, "acc") == [[1, 0.1], [3, 0.9]]
    assert after["series"]["loss"]["last"] == 0.125 and after["series"]["loss"]["last_x"] == 5
    assert after["skipped"] == {"partial_line": 0, "not_json": 1, "not_object": 0, "bad_step": 0,
                                "non_numeric": 1, "non_finite": 1}
    assert list(_metrics(pipeline, task_id, "--series", "acc")["series"]) == ["acc"]
    only = pipeline.cli("metrics", task_id, "--series", "acc", check=True).stdout
    assert "acc = 0.9 at step 3" in only and "loss" not in only

    wrong = pipeline.cli("metrics", task_id, "--series", "los")
    assert wrong.returncode == 2, wrong
    assert wrong.stderr.strip().splitlines() == [
        f"ailabber: --series: {task_id} has no series 'los'; did you mean 'loss'? (it has: loss, acc)"]

    pipeline.cli("fetch", task_id, "--dest", str(tmp_path / "fetched"), check=True)
    fetched = (tmp_path / "fetched" / "ailabber-logs" / "metrics.jsonl").read_bytes()
    assert fetched.endswith(b'{"step": 5, "loss": 0.125}\n')


def test_a_task_without_metrics_says_so(tmp_path: Path) -> None:
    p = Pipeline(tmp_path)                 # daemons down: the CLI reads the spool alone
    task_id = p.submit(p.project(["true"]))
    r = p.cli("metrics", task_id)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip() == (f"no metrics yet for {task_id} (pending); a job writes them as JSON lines "
                                "to $AILABBER_METRICS")
    assert _metrics(p, task_id) == {"id": task_id, "state": "pending", "lines": 0, "series": {},
                                    "skipped": {"partial_line": 0, "not_json": 0, "not_object": 0,
                                                "bad_step": 0, "non_numeric": 0, "non_finite": 0}}
    r = p.cli("metrics", task_id, "--height", "1")
    assert r.returncode == 2 and r.stderr.strip() == "ailabber: --height: must be a whole number >= 2, got 1"


def test_a_metrics_file_past_the_log_limit_is_noted_once_and_kept(tmp_path: Path) -> None:
    """The wrapper cannot cut a file the job writes itself: it says so in output.log."""
    p = Pipeline(tmp_path, remoted_extra={"limits": {"max_log_bytes": 1000}})
    p.start_all()
    try:
        job = ('for i in $(seq 1 100); do echo "{\\"step\\": $i, \\"loss\\": 0.5}" >> "$AILABBER_METRICS"; done; '
               # waits for the note (spelt so that the command's own "$ ..." line does not match)
               'w="log limit"; until grep -q "past the $w" "$AILABBER_LOG_DIR/output.log"; do sleep 0.2; done')
        task_id = p.submit(p.project([job], time_limit="3:00"))
        st = p.wait_terminal(task_id, timeout=240)
        assert st["state"] == "completed", st
        out = p.cli("logs", task_id, check=True).stdout
        notes = [line for line in out.splitlines() if "past the log limit" in line]
        assert len(notes) == 1, out
        assert "of 1000 bytes per task" in notes[0] and "counts against your disk quota" in notes[0]
        assert len(_points(_metrics(p, task_id), "loss")) == 100
    finally:
        p.stop_all()
