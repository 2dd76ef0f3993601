"""Task names and ``last`` through the real CLI and daemons (local scheduler): a name from
the config or ``--name`` reaches ``status`` and ``list``, stands in for the id in every
verb, and an ambiguous one is a usage error that lists the ids."""

from __future__ import annotations

import json
from pathlib import Path

from testbed.pipeline import Pipeline


def _named(p: Pipeline, name: str, commands: list[str], **kw: object) -> Path:
    d = p.project(commands, **kw)    # type: ignore[arg-type]
    cfg = d / "task_config.toml"
    cfg.write_text(f'name = "{name}"\n' + cfg.read_text())
    return d


def test_names_from_the_config_and_from_the_option_and_last(pipeline: Pipeline) -> None:
    first = pipeline.submit(_named(pipeline, "baseline", ["echo base"]))
    r = pipeline.cli("submit", "--json", "--name", "lr 0.2", cwd=_named(pipeline, "baseline", ["echo lr"]),
                     check=True)
    second = json.loads(r.stdout)["id"]
    assert json.loads(r.stdout)["name"] == "lr 0.2"               # --name wins over the file
    assert pipeline.status("baseline")["id"] == first
    assert pipeline.status("lr 0.2")["id"] == second
    assert pipeline.status("last")["id"] == second
    r = pipeline.cli("wait", "lr 0.2", timeout=90)
    assert r.returncode == 0 and second in r.stdout, r
    st = pipeline.wait_terminal(first)        # the cluster takes a config with a name, and the name stays
    assert (st["state"], st["name"]) == ("completed", "baseline"), st
    assert "echo lr" not in pipeline.cli("logs", "baseline", check=True).stdout
    assert "base" in pipeline.cli("logs", "baseline", check=True).stdout
    human = pipeline.cli("status", "baseline", check=True).stdout
    assert "name         baseline" in human and "command      echo base" in human, human


def test_an_ambiguous_name_is_a_usage_error_listing_the_ids(tmp_path: Path) -> None:
    p = Pipeline(tmp_path)   # the CLI alone: the spool answers
    proj = _named(p, "sweep", ["true"])
    ids = sorted(p.submit(proj) for _ in range(2))
    for verb in ("status", "cancel", "logs"):
        r = p.cli(verb, "sweep")
        assert r.returncode == 2, (verb, r)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and ids[0] in lines[0] and ids[1] in lines[0] and "sweep" in lines[0], lines
    assert p.cli("status", ids[0][-6:], check=True)


def test_bad_names_are_one_line_naming_the_field(tmp_path: Path) -> None:
    p = Pipeline(tmp_path)
    proj = p.project(["true"])
    r = p.cli("submit", "--name", "../x", cwd=proj)
    assert r.returncode == 2 and r.stderr.startswith("ailabber: --name: must start with a letter"), r
    proj = _named(p, "a/b", ["true"])
    r = p.cli("submit", cwd=proj)
    assert r.returncode == 2, r
    assert r.stderr.strip().splitlines() == [
        "ailabber: task_config.toml: name: may contain only letters, digits, spaces and - _ . (got 'a/b')"]
    r = p.cli("status", "last")
    assert r.returncode == 2 and "last" in r.stderr, r
    assert not (p.home / "spool" / "new").exists() or not any((p.home / "spool" / "new").iterdir())


def test_list_shows_name_state_time_against_the_limit_and_the_command(pipeline: Pipeline) -> None:
    done = pipeline.submit(_named(pipeline, "quick", ["sleep 1", "true"]))
    assert pipeline.wait_terminal(done)["state"] == "completed"
    long_cmd = "sleep 300 # " + "x" * 200
    running = pipeline.submit(_named(pipeline, "long one", [long_cmd], time_limit="30:00"))
    pipeline.wait_for(running, lambda s: s["state"] == "running" and s["reason"] is None, 90, "running")
    try:
        r = pipeline.cli("list", check=True, env={"COLUMNS": "120"})
        lines = r.stdout.splitlines()
        assert lines[0].split() == ["ID", "NAME", "STATE", "REASON", "AGE", "TIME", "COMMAND"]
        assert all(len(line) <= 120 for line in lines), lines
        row = {line.split()[0]: line for line in lines[1:]}
        assert "quick" in row[done] and "completed" in row[done] and row[done].endswith("sleep 1")
        assert "long one" in row[running] and "left" in row[running] and row[running].endswith("...")
        assert "sleep 300 # xxx" in row[running]
        listed = {t["id"]: t for t in json.loads(pipeline.cli("list", "--json", check=True).stdout)}
        q, lg = listed[done], listed[running]
        assert (q["name"], q["first_command"], q["time_limit_s"]) == ("quick", "sleep 1", 600)
        assert q["remaining_s"] is None
        assert q["elapsed_s"] >= 1
        assert (lg["name"], lg["first_command"], lg["time_limit_s"]) == ("long one", long_cmd, 1800)
        assert lg["elapsed_s"] >= 0 and 0 < lg["remaining_s"] <= 1800
        assert abs(lg["elapsed_s"] + lg["remaining_s"] - 1800) < 1
    finally:
        pipeline.cli("cancel", "long one", check=True)
    assert pipeline.wait_terminal(running)["state"] == "terminated"
