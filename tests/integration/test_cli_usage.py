"""The CLI's answers to mistakes a student makes: each says in one line what was wrong
and what to do, with the right exit code.  No daemon runs here: the CLI alone decides."""

from __future__ import annotations

import os
from pathlib import Path

from testbed.pipeline import Pipeline


def _cfg(p: Pipeline, **extra: object) -> None:
    """Rewrite spoold.yaml by temp name + rename, as an editor that saves atomically would."""
    import yaml

    data = yaml.safe_load(p.spoold_cfg.read_text())
    data.update(extra)
    tmp = p.spoold_cfg.with_name(".spoold.yaml.tmp")
    tmp.write_text(yaml.safe_dump(data))
    os.replace(tmp, p.spoold_cfg)


def test_list_refuses_an_unknown_state_and_suggests_the_near_one(tmp_path: Path) -> None:
    p = Pipeline(tmp_path)
    r = p.cli("list", "--state", "runing")
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--state" in lines[0] and "'running'" in lines[0], lines
    assert "pending" in lines[0] and "completed" in lines[0]        # the valid values
    assert r.stdout == ""


def test_list_refuses_a_limit_below_one(tmp_path: Path) -> None:
    p = Pipeline(tmp_path)
    for bad in ("0", "-1"):
        r = p.cli("list", "--limit", bad)
        assert r.returncode == 2, (bad, r)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "--limit" in lines[0] and ">= 1" in lines[0], lines
    assert p.cli("list", "--limit", "1").returncode == 0


def test_cancel_takes_several_ids_and_fails_if_one_is_unknown(tmp_path: Path) -> None:
    p = Pipeline(tmp_path)
    a = p.submit(p.project(["true"]))
    b = p.submit(p.project(["true"]))
    r = p.cli("cancel", a, b)
    assert r.returncode == 0, r
    assert f"cancel requested for {a}" in r.stdout and f"cancel requested for {b}" in r.stdout
    r = p.cli("cancel", a, "zzzzzz")
    assert r.returncode == 2, r
    assert f"cancel requested for {a}" in r.stdout and "zzzzzz" in r.stderr
    assert "usage:" not in r.stdout + r.stderr


def test_submit_of_a_directory_names_the_path_typed(tmp_path: Path) -> None:
    p = Pipeline(tmp_path)
    (tmp_path / "proj" / "sub").mkdir(parents=True)
    r = p.cli("submit", "proj/sub", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith("ailabber: proj/sub: "), r.stderr


def test_a_missing_config_suggests_init(tmp_path: Path) -> None:
    p = Pipeline(tmp_path)
    (tmp_path / "empty").mkdir()
    r = p.cli("submit", cwd=tmp_path / "empty")
    assert r.returncode == 2 and "does not exist" in r.stderr and "ailabber init" in r.stderr, r.stderr
    r = p.cli("submit", "elsewhere/task_config.toml", cwd=tmp_path / "empty")
    assert "ailabber init elsewhere/task_config.toml" in r.stderr, r.stderr


def test_an_invalid_spoold_yaml_is_an_error_at_submit(tmp_path: Path) -> None:
    p = Pipeline(tmp_path)
    project = p.project(["true"], files={"big.bin": "x" * 5000})
    _cfg(p, max_upload_bytes="lots")
    r = p.cli("submit", cwd=project)
    assert r.returncode == 2, r
    assert str(p.spoold_cfg) in r.stderr and "max_upload_bytes" in r.stderr, r.stderr
    new = p.home / "spool" / "new"
    assert not new.exists() or not any(new.iterdir())        # nothing was submitted without the limits
    r = p.cli("list")
    assert r.returncode == 2 and "max_upload_bytes" in r.stderr, r

