"""``ailabber doctor`` names each broken piece of a deliberately broken setup."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
from pathlib import Path

import pytest
import yaml

from testbed.pipeline import Pipeline
from testbed.sshd import Sshd, available, keygen
from tests.conftest import require


def _doctor(p: Pipeline, *args: str) -> dict[str, dict[str, object]]:
    r = p.cli("doctor", "--json", *args, timeout=120)
    checks = json.loads(r.stdout)
    assert r.returncode == (0 if all(c["ok"] or c.get("warning") for c in checks) else 1)
    return {c["name"]: c for c in checks}


def _wait_heartbeat(p: Pipeline) -> None:
    import time

    me = next((p.root / "users").iterdir()) if (p.root / "users").exists() else None
    deadline = time.monotonic() + 30
    while not (me and (me / "remoted.json").exists()):
        assert time.monotonic() < deadline, p.daemon_logs()
        time.sleep(0.2)
        me = next((p.root / "users").iterdir(), None) if (p.root / "users").exists() else None


def test_a_healthy_setup_passes_every_check(pipeline: Pipeline) -> None:
    _wait_heartbeat(pipeline)
    checks = _doctor(pipeline)
    assert all(c["ok"] for c in checks.values()), checks
    assert {"configuration valid", "spool writable", "spoold running", "remote reachable", "remoted alive",
            "scheduler reachable", "uv on the cluster side"} <= set(checks)


def test_broken_configuration(tmp_path: Path) -> None:
    p = Pipeline(tmp_path)
    p.spoold_cfg.write_text("remote: [unclosed\n")
    checks = _doctor(p)
    assert not checks["configuration valid"]["ok"] and "syntax" in str(checks["configuration valid"]["detail"])


def test_spool_not_writable_and_spoold_down(tmp_path: Path) -> None:
    p = Pipeline(tmp_path)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    cfg = yaml.safe_load(p.spoold_cfg.read_text())
    cfg["spool"] = str(blocker)
    p.spoold_cfg.write_text(yaml.safe_dump(cfg))
    checks = _doctor(p)
    assert not checks["spool writable"]["ok"]
    assert not checks["spoold running"]["ok"]


def test_remoted_down_and_uv_missing(tmp_path: Path) -> None:
    p = Pipeline(tmp_path)
    p.start("spoold")
    path = ":".join(d for d in ("/usr/bin", "/bin") if not (Path(d) / "uv").exists())
    p.start("remoted", PATH=path)
    try:
        _wait_heartbeat(p)
        checks = _doctor(p)
        assert checks["remoted alive"]["ok"] and not checks["uv on the cluster side"]["ok"], checks
        p.kill("remoted")
        beat = next((p.root / "users").iterdir()) / "remoted.json"
        data = json.loads(beat.read_text())
        data["at"] -= 3600                       # as if remoted had died an hour ago
        beat.write_text(json.dumps(data))
        checks = _doctor(p)
        assert not checks["remoted alive"]["ok"] and "ago" in str(checks["remoted alive"]["detail"])
    finally:
        p.stop_all()


def test_scheduler_unreachable(tmp_path: Path) -> None:
    require_sinfo = shutil.which("sinfo")
    if not require_sinfo:
        pytest.skip("needs Slurm's client tools")
    p = Pipeline(tmp_path, scheduler="slurm", remoted_env={"SLURM_CONF": str(tmp_path / "no-such-slurm.conf")})
    p.start_all()
    try:
        _wait_heartbeat(p)
        checks = _doctor(p)
        assert not checks["scheduler reachable"]["ok"], checks
        admin = _doctor(p, "--remoted-config", str(p.remoted_cfg))
        assert admin["remoted running"]["ok"] and not admin["scheduler reachable"]["ok"]
    finally:
        p.stop_all()


def test_unreachable_and_unconfined_remotes(tmp_path: Path, pytestconfig: pytest.Config) -> None:
    ok, why = available()
    require(pytestconfig, ok, why)
    sshd = Sshd()
    sshd.start()
    try:
        key = tmp_path / "key"
        area = tmp_path / "area"
        area.mkdir()
        sshd.authorize("root", keygen(key), rrsync_dir=None)      # a key that is NOT pinned
        p = Pipeline(tmp_path / "p", spoold_extra={
            "remote": sshd.url("root", str(area)), "identity_file": str(key),
            "ssh_options": sshd.client_options(), "connect_timeout": 3})
        checks = _doctor(p)
        assert checks["remote reachable"]["ok"], checks
        assert not checks["remote directory confined"]["ok"]
        cfg = yaml.safe_load(p.spoold_cfg.read_text())
        cfg["remote"] = f"ssh://root@127.0.0.1:{sshd.port + 1 if sshd.port < 65535 else 1}/"
        p.spoold_cfg.write_text(yaml.safe_dump(cfg))
        checks = _doctor(p)
        assert not checks["remote reachable"]["ok"] and "refused" in str(checks["remote reachable"]["detail"])
    finally:
        sshd.stop()
        os.environ.pop("AILABBER_UNUSED", None)


def _age_remote_beat(p: Pipeline, seconds: float) -> dict[str, object]:
    """Make the user's remoted.json look ``seconds`` older, by temp name + rename as remoted
    itself writes it (remoted is stopped by then: nothing else writes the file)."""
    beat = next((p.root / "users").iterdir()) / "remoted.json"
    data = json.loads(beat.read_text())
    data["at"] -= seconds
    tmp = beat.with_name(".remoted.json.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, beat)
    return dict(data)


def test_doctor_says_remoted_stopped_after_a_few_missed_beats(tmp_path: Path) -> None:
    p = Pipeline(tmp_path)
    p.start_all()
    try:
        _wait_heartbeat(p)
        p.kill("remoted")
        _age_remote_beat(p, 100)             # three beats of 30 s missed, well under two minutes
        checks = _doctor(p)
        alive = str(checks["remoted alive"]["detail"])
        assert not checks["remoted alive"]["ok"] and "not running" in alive and re.search(r"1m4\ds ago", alive), checks
        assert not checks["scheduler reachable"]["ok"], checks
        assert "not running" in str(checks["scheduler reachable"]["detail"])
    finally:
        p.stop_all()


def test_status_and_whoami_say_remoted_stopped(tmp_path: Path) -> None:
    import time

    p = Pipeline(tmp_path)
    p.start_all()
    _wait_heartbeat(p)
    p.stop_all()                             # remoted down for good; spoold restarted below
    data = _age_remote_beat(p, 300)
    p.start("spoold")
    try:
        copy = p.home / "spool" / "remoted.json"
        deadline = time.monotonic() + 60
        while not (copy.exists() and json.loads(copy.read_text() or "{}").get("at") == data["at"]):
            assert time.monotonic() < deadline, p.daemon_logs()
            time.sleep(0.2)
        task = p.submit(p.project(["true"]))
        p.wait_for(task, lambda s: s.get("reason") == "uploaded", what="uploaded")
        out = p.cli("status", task, check=True).stdout
        assert "remoted is not running" in out and re.search(r"5m0\ds ago", out) and "ailabber up" in out, out
        who = json.loads(p.cli("whoami", "--json", check=True).stdout)
        assert who["remoted_running"] is False and re.search(r"5m0\ds ago", who["remoted"]), who
        assert "remoted is not running" in p.cli("whoami", check=True).stdout
    finally:
        p.stop_all()


def test_doctor_before_the_first_up_says_nothing_is_set_up(tmp_path: Path) -> None:
    p = Pipeline(tmp_path)      # spoold.yaml names a remote that no daemon ever created
    r = p.cli("doctor", "--json")
    assert r.returncode == 1
    checks = {c["name"]: c for c in json.loads(r.stdout)}
    detail = str(checks["remote reachable"]["detail"])
    assert "rsync" not in detail and "ailabber up" in detail, detail


def test_admin_doctor_says_remoted_stopped_after_a_few_missed_beats(tmp_path: Path) -> None:
    """The admin's doctor judges heartbeat.json by remoted's own interval (``every``), as the
    students' side judges remoted.json: fresh while remoted beats, "not running" once it
    missed a few beats."""
    p = Pipeline(tmp_path)
    p.start_all()
    try:
        _wait_heartbeat(p)
        admin = _doctor(p, "--remoted-config", str(p.remoted_cfg))
        assert admin["remoted heartbeat"]["ok"], admin
        p.kill("remoted", signal.SIGTERM)
        beat = p.root / "heartbeat.json"
        data = json.loads(beat.read_text())
        data["at"] -= 4 * data["every"]
        tmp = beat.with_name(".heartbeat.json.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, beat)
        admin = _doctor(p, "--remoted-config", str(p.remoted_cfg))
        assert not admin["remoted heartbeat"]["ok"] and "remoted is not running" in admin["remoted heartbeat"]["detail"]
        assert not admin["remoted running"]["ok"]
    finally:
        p.stop_all()
