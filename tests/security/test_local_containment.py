"""A local job as the kernel sees it: remoted as root, a real student account, real cgroups.

The job wrapper is started as root only to join the job's cgroup, then becomes the
student for good; the job's memory is the task's ``resources.memory``, enforced by the
kernel; the commands do not show in other users' ``ps``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from remoted.containment import Containment, Mounts
from testbed.pipeline import Pipeline, owned_project, shared_root, student_area, student_pipeline
from testbed.strays import kill_marked, wait_gone
from testbed.unix_users import world_dir
from tests.conftest import require
from tests.integration.conftest import STUDENTS, student_python  # noqa: F401

STUDENT = STUDENTS[0]


@contextmanager
def _site(python: Path, **remoted: object) -> Iterator[Pipeline]:
    base = world_dir("ailabber-contain-")
    root = shared_root(base)
    student_area(root, STUDENT)
    p = student_pipeline(base / "site", STUDENT, python, root, base / "home", dict(remoted))
    p.start("remoted")
    p.start("spoold")
    try:
        yield p
    finally:
        p.stop_all()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def site(student_python: Path, pytestconfig: pytest.Config) -> Iterator[Pipeline]:
    require(pytestconfig, Containment.detect().cgroups, "a writable cgroup hierarchy (root)")
    with _site(student_python, containment="cgroup") as p:
        yield p


def test_without_cgroups_strays_that_keep_the_task_marker_are_swept(student_python: Path) -> None:
    """The fallback where no cgroup is writable: the wrapper ends its own descendants and
    remoted sweeps for the task's environment marker; doctor says this mode is weaker."""
    with _site(student_python, containment="processes") as p:
        marker = f"ailabber-stray-{os.getpid()}-{time.time_ns()}"
        stray = f"(setsid nohup bash -c 'exec -a {marker} sleep 900' </dev/null >/dev/null 2>&1 &); sleep 1"
        t = p.submit(_project(p, "stray", stray))
        try:
            assert p.wait_terminal(t, 120)["state"] == "completed"
            assert wait_gone(marker, 5) == []
        finally:
            kill_marked(marker)
        doctor = p.cli("doctor", "--remoted-config", str(p.remoted_cfg))
        line = next(ln for ln in doctor.stdout.splitlines() if "job containment" in ln)
        assert "WARN" in line and "processes only" in line, doctor.stdout


def test_doctor_shows_the_containment_remoted_uses(site: Pipeline) -> None:
    deadline = time.monotonic() + 30
    line = ""
    while time.monotonic() < deadline and "cgroup" not in line:     # the first heartbeat
        doctor = site.cli("doctor", "--remoted-config", str(site.remoted_cfg))
        line = next((ln for ln in doctor.stdout.splitlines() if "job containment" in ln), "")
        time.sleep(0.2)
    assert line.startswith("ok") and "cgroup" in line, line


def test_a_job_over_its_memory_ends_as_oom_and_the_next_one_runs(site: Pipeline,
                                                                   pytestconfig: pytest.Config) -> None:
    require(pytestconfig, Containment.detect().memory_kind is not None, "a memory cgroup controller")
    hog = "python3 -c \"b = bytearray(400 * 2**20); import time; time.sleep(30)\""
    t = site.submit(_project(site, "hog", hog, memory="100M"))
    st = site.wait_terminal(t, 120)
    assert (st["state"], st["reason"]) == ("failed", "oom"), st
    assert "100 MiB" in st["message"], st
    ok = site.submit(_project(site, "fits", "python3 -c \"b = bytearray(20 * 2**20)\"", memory="100M"))
    assert site.wait_terminal(ok, 120)["state"] == "completed"


def test_commands_stay_out_of_what_ps_shows_everyone(site: Pipeline) -> None:
    marker = f"secret-{os.getpid()}-{time.time_ns()}"
    t = site.submit(_project(site, "quiet", f"sleep 30; echo {marker}"))
    site.wait_for(t, lambda s: s["state"] == "running", what="running")
    import pwd

    uid = pwd.getpwnam(STUDENT).pw_uid
    deadline = time.monotonic() + 30
    shells: list[psutil.Process] = []
    while time.monotonic() < deadline and not shells:      # the job's shell, running now
        shells = [p for p in psutil.process_iter(["cmdline", "uids"])
                  if p.info["uids"] and p.info["uids"].real == uid and (p.info["cmdline"] or [""])[0] == "/bin/bash"]
        time.sleep(0.1)
    assert shells, "the job's shell never started"
    leaked = [p.info["cmdline"] for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])]
    assert leaked == []
    site.cli("cancel", t, check=True)
    site.wait_terminal(t, 60)


def test_the_wrapper_runs_as_the_student_without_capabilities(site: Pipeline) -> None:
    probe = "mkdir -p output; grep -E '^(Uid|Gid|CapEff|CapPrm|CapBnd):' /proc/$PPID/status > output/wrapper"
    t = site.submit(_project(site, "ids", probe))
    st = site.wait_terminal(t, 120)
    assert st["state"] == "completed", (st, site.daemon_logs())
    dest = Path(site.home) / "fetched"
    site.cli("fetch", t, "--dest", str(dest), check=True)
    fields = dict(line.split(":", 1) for line in (dest / "output" / "wrapper").read_text().splitlines())
    import pwd

    uid = str(pwd.getpwnam(STUDENT).pw_uid)
    assert fields["Uid"].split() == [uid] * 4          # real, effective, saved, filesystem
    assert int(fields["CapEff"], 16) == 0 and int(fields["CapPrm"], 16) == 0


def test_mounts_are_read_from_the_kernels_own_description() -> None:
    mountinfo = ("41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
                 "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
                 "37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer\n")
    own = "4:memory:/process_api/abc\n6:freezer:/\n0::/system.slice/x.service\n"
    m = Mounts.parse(mountinfo, own)
    assert m.v2 == Path("/sys/fs/cgroup/unified/system.slice/x.service")
    assert m.v1 == {"memory": Path("/sys/fs/cgroup/memory/process_api/abc"), "freezer": Path("/sys/fs/cgroup/freezer")}
    # A cgroup namespace root below the mount's root.
    m = Mounts.parse("50 31 0:40 /lxc/c1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", "0::/lxc/c1/svc\n")
    assert m.v2 == Path("/sys/fs/cgroup/svc")
    assert Mounts.parse("", "").v2 is None


def _project(p: Pipeline, name: str, cmd: str, memory: str = "1G") -> Path:
    d = owned_project(p, name, cmd)
    toml = (d / "task_config.toml").read_text().replace('memory = "1G"', f'memory = "{memory}"')
    (d / "task_config.toml").write_text(toml)
    return d
