"""``ailabber up`` as a user runs it, and the bundled demo end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil


def _env(home: Path) -> dict[str, str]:
    return dict(os.environ, AILABBER_HOME=str(home), AILABBER_FSYNC="0")


def test_up_runs_both_daemons_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "task_config.toml").write_text('[run]\ncommands = ["echo from-up"]\n')
    up = subprocess.Popen([sys.executable, "-m", "ailabber", "up", "--gpus", "0"], env=_env(home),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        sub = subprocess.run([sys.executable, "-m", "ailabber", "submit", "--json"], cwd=proj, env=_env(home),
                             capture_output=True, text=True, check=True)
        task_id = json.loads(sub.stdout)["id"]
        r = subprocess.run([sys.executable, "-m", "ailabber", "wait", task_id, "--timeout", "60"],
                           env=_env(home), capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        children = psutil.Process(up.pid).children()
        assert len(children) == 2
    finally:
        up.send_signal(signal.SIGTERM)
        out, _ = up.communicate(timeout=60)
    assert up.returncode == 0, out
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)
    assert b"spoold stopping" in out and b"remoted stopping" in out
    assert (home / "spoold.yaml").exists() and (home / "remoted.yaml").exists()


def test_up_while_already_running_says_so_and_exits_3(tmp_path: Path) -> None:
    import time

    home = tmp_path / "home"
    up = subprocess.Popen([sys.executable, "-m", "ailabber", "up", "--gpus", "0"], env=_env(home),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:           # both daemons hold their locks once their children exist and whoami sees spoold
            who = subprocess.run([sys.executable, "-m", "ailabber", "whoami", "--json"], env=_env(home),
                                 capture_output=True, text=True)
            if who.returncode == 0 and json.loads(who.stdout)["spoold_running"] \
                    and (home / "remote" / "remoted.lock").exists():
                break
            assert time.monotonic() < deadline, who
            time.sleep(0.2)
        spoold_pid = json.loads(who.stdout)["spoold_pid"]
        again = subprocess.run([sys.executable, "-m", "ailabber", "up", "--gpus", "0"], env=_env(home),
                               capture_output=True, text=True, timeout=60)
        assert again.returncode == 3, again
        assert "already running" in again.stderr and str(spoold_pid) in again.stderr, again.stderr
        assert "Ctrl-C stops" not in again.stderr and "spoold and remoted running" not in again.stderr
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(60)


def test_demo_runs_the_bundled_example(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "ailabber", "demo"], cwd=tmp_path, env=dict(os.environ),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "completed" in r.stdout
    results = list((tmp_path / "ailabber-results").glob("*/output/metrics.json"))
    assert len(results) == 1
    metrics = json.loads(results[0].read_text())
    assert metrics["epochs"] == 20 and 0.5 < metrics["test_accuracy"] <= 1.0
