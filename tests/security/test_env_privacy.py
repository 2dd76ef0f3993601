"""A student's environment cache is theirs alone, and jobs get a PATH of their own.

Real accounts, remoted as root, the real uv.  What one student's job builds (the copy of
``pyproject.toml``, which may name a private index with its password, the lock, the venv,
uv's own cache) can be neither listed nor read by another student, a cache left open by an
earlier version is closed at its next use, and a job's PATH never carries remoted's.
"""

from __future__ import annotations

import io
import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from ailabber.daemonkit.remoted_settings import DEFAULT_JOB_PATH, load_remoted_settings
from ailabber.daemonkit.yamlfile import SettingsError
from remoted.envs import UV_CACHE, EnvSpec, ensure_env, private_dir
from remoted.jobspec import JobSpec
from remoted.schedulers.slurm import SlurmScheduler
from testbed.pipeline import Pipeline, owned_project, shared_root, student_area, student_pipeline
from testbed.unix_users import chown_tree, world_dir
from tests.integration.conftest import STUDENTS, student_python  # noqa: F401

UV = shutil.which("uv") or "uv"
ALICE, BOB = STUDENTS
SECRET = "s3cret-index-password"
PYPROJECT = f"""\
[project]
name = "private-probe"
version = "0.1.0"
requires-python = ">=3.10"
dependencies = []

[tool.uv]
package = false

[[tool.uv.index]]
name = "course-private"
url = "https://{ALICE}:{SECRET}@packages.invalid/simple"
"""
ENV_TOML = '[environment]\npyproject_toml = "pyproject.toml"\nuv_lock = "uv.lock"\n'
PRINT_PATH = 'mkdir -p output; printf %s "$PATH" > output/path'
OLD_KEY = "0" * 32


def _as(user: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run a program as ``user`` (uid, gid, no other groups), as that student could."""
    pw = pwd.getpwnam(user)
    return subprocess.run(list(argv), user=pw.pw_uid, group=pw.pw_gid, extra_groups=[],
                          env={"PATH": DEFAULT_JOB_PATH, "HOME": pw.pw_dir}, cwd="/",
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _locked_project(p: Pipeline, name: str, cmd: str) -> Path:
    """A project with ``[environment]``, locked offline (no dependencies, so no index is
    asked), owned by the pipeline's student."""
    d = p.project([cmd], name=name, results=["output"], extra_toml=ENV_TOML,
                  files={"pyproject.toml": PYPROJECT})
    subprocess.run([UV, "lock", "--offline", "--project", str(d)], check=True, capture_output=True,
                   stdin=subprocess.DEVNULL)
    chown_tree(d, p.client_user or "root")
    return d


def _job_path(p: Pipeline, task_id: str) -> str:
    st = p.wait_terminal(task_id, 180)
    assert st["state"] == "completed", (st, p.cli("logs", task_id).stdout, p.daemon_logs())
    return (p.remote_task(task_id) / "files" / "output" / "path").read_text()


def _remoted_path(base: Path) -> str:
    """remoted's own PATH for these runs: a directory of the test's first, then root's."""
    bogus = base / "remoted-only-bin"
    bogus.mkdir(mode=0o755)
    return f"{bogus}:{os.environ['PATH']}"


@dataclass(frozen=True)
class Run:
    envs: Path              # remoted's env_cache
    remoted_path: str       # the PATH remoted was started with
    alice_path: str         # echo $PATH of Alice's task (with an environment)
    bob_path: str           # echo $PATH of Bob's task (without one)


@pytest.fixture(scope="module")
def run(student_python: Path) -> Iterator[Run]:  # noqa: F811
    """Alice, whose cache an earlier version left open (0755 and 0644), runs a task with an
    environment; Bob, who has no cache yet, one without.  remoted runs as root with a PATH
    that starts with a directory of its own."""
    base = world_dir("ailabber-envprivacy-")
    root = shared_root(base)
    pipes = {}
    for name in STUDENTS:
        student_area(root, name)
        pipes[name] = student_pipeline(base / name, name, student_python, root, base / f"home-{name}")
    alice, bob = pipes[ALICE], pipes[BOB]
    envs = alice.base / "envs"               # the env_cache of the remoted started below
    old = envs / ALICE / OLD_KEY
    old.mkdir(parents=True, mode=0o755)
    (old / "pyproject.toml").write_text(PYPROJECT)
    os.chmod(envs, 0o755)
    os.chmod(envs / ALICE, 0o755)
    chown_tree(envs / ALICE, ALICE)
    # As an earlier version left it: any student could read it.
    assert SECRET in _as(BOB, "/bin/cat", str(old / "pyproject.toml")).stdout
    remoted_path = _remoted_path(base)
    alice.start("remoted", PATH=remoted_path)
    try:
        for p in pipes.values():
            p.start("spoold")
        a = alice.submit(_locked_project(alice, "with-env", PRINT_PATH))
        b = bob.submit(owned_project(bob, "no-env", PRINT_PATH))
        yield Run(envs, remoted_path, _job_path(alice, a), _job_path(bob, b))
    finally:
        for p in pipes.values():
            p.stop_all()
        alice.stop_all()
        shutil.rmtree(base, ignore_errors=True)


# --- the cache -------------------------------------------------------------------------------

def test_another_student_can_neither_list_nor_read_the_cache(run: Run) -> None:
    cache = run.envs / ALICE
    assert (cache.stat().st_uid, _mode(cache)) == (pwd.getpwnam(ALICE).pw_uid, 0o700)
    keys = [d.name for d in cache.iterdir() if d.is_dir() and d.name not in (OLD_KEY, UV_CACHE)]
    assert len(keys) == 1, keys
    copy = cache / keys[0] / "pyproject.toml"
    # The paths are right: their owner lists and reads them.
    assert keys[0] in _as(ALICE, "/bin/ls", str(cache)).stdout.split()
    assert SECRET in _as(ALICE, "/bin/cat", str(copy)).stdout
    for argv in (("/bin/ls", str(cache)), ("/bin/cat", str(copy)), ("/bin/cat", str(cache / keys[0] / "uv.lock")),
                 ("/bin/ls", str(cache / keys[0] / "venv"))):
        seen = _as(BOB, *argv)
        assert seen.returncode != 0 and "Permission denied" in seen.stderr, (argv, seen)
        assert SECRET not in seen.stdout


def test_a_cache_left_open_by_an_earlier_version_is_closed(run: Run) -> None:
    old = run.envs / ALICE / OLD_KEY / "pyproject.toml"
    seen = _as(BOB, "/bin/cat", str(old))
    assert seen.returncode != 0 and "Permission denied" in seen.stderr, seen
    assert SECRET in _as(ALICE, "/bin/cat", str(old)).stdout


def test_uv_keeps_its_own_cache_inside_the_private_one(run: Run) -> None:
    uv_cache = run.envs / ALICE / UV_CACHE
    assert uv_cache.is_dir() and any(uv_cache.iterdir())
    assert uv_cache.stat().st_uid == pwd.getpwnam(ALICE).pw_uid


def test_remoted_makes_a_new_cache_private_before_the_job_starts(run: Run) -> None:
    """Bob's task had no environment, so only remoted touched his cache directory."""
    cache = run.envs / BOB
    assert (cache.stat().st_uid, _mode(cache)) == (pwd.getpwnam(BOB).pw_uid, 0o700)


def test_a_cache_of_another_account_is_refused_not_taken_over(student_python: Path) -> None:  # noqa: F811
    alice, bob = pwd.getpwnam(ALICE), pwd.getpwnam(BOB)
    base = world_dir("ailabber-envforeign-")
    try:
        cache = base / ALICE
        (cache / OLD_KEY / "venv" / "bin").mkdir(parents=True)
        chown_tree(cache, BOB)                   # say, planted with a python of Bob's
        with pytest.raises(PermissionError, match=f"belongs to uid {bob.pw_uid}, not to uid {alice.pw_uid}"):
            private_dir(cache, alice.pw_uid, alice.pw_gid)
        assert cache.stat().st_uid == bob.pw_uid
        # The job (as Alice) refuses it as well, with one line for the task's message.
        code = ("import io, sys; from pathlib import Path; from remoted.envs import *\n"
                "try:\n"
                f"    ensure_env(EnvSpec(Path({str(base)!r}) / 'p.toml', Path({str(base)!r}) / 'p.toml'), "
                f"Path({str(cache)!r}), io.StringIO(), uv={str(student_python.parent / 'uv')!r})\n"
                "except EnvBuildError as exc:\n"
                "    print(exc)\n")
        (base / "p.toml").write_text(PYPROJECT)
        said = _as(ALICE, str(student_python), "-I", "-c", code)
        assert said.stdout.startswith(f"cannot use the environment cache {cache}: it belongs to uid "
                                      f"{bob.pw_uid}"), said
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_root_made_cache_is_given_to_its_user_and_a_symlink_is_not_followed(student_python: Path) -> None:  # noqa: F811
    alice = pwd.getpwnam(ALICE)
    base = world_dir("ailabber-envgive-")
    try:
        made = base / "made-by-root"
        made.mkdir(mode=0o755)
        private_dir(made, alice.pw_uid, alice.pw_gid)
        assert (made.stat().st_uid, made.stat().st_gid, _mode(made)) == (alice.pw_uid, alice.pw_gid, 0o700)
        target = base / "elsewhere"
        target.mkdir(mode=0o755)
        (base / "link").symlink_to(target)
        with pytest.raises(OSError):
            private_dir(base / "link", alice.pw_uid, alice.pw_gid)
        assert (target.stat().st_uid, _mode(target)) == (0, 0o755)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_uv_cache_settings_around_the_job_are_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A UV_CACHE_DIR or XDG_CACHE_HOME inherited from remoted may be shared by everyone:
    the build keeps its downloads in the user's private cache instead."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(PYPROJECT)
    subprocess.run([UV, "lock", "--offline", "--project", str(project)], check=True, capture_output=True,
                   stdin=subprocess.DEVNULL)
    shared, xdg = tmp_path / "shared-uv-cache", tmp_path / "xdg"
    monkeypatch.setenv("UV_CACHE_DIR", str(shared))
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    cache = tmp_path / "cache"
    result = ensure_env(EnvSpec(project / "pyproject.toml", project / "uv.lock"), cache, io.StringIO(), uv=UV)
    assert result.built and (cache / UV_CACHE).is_dir()
    assert not shared.exists() and not xdg.exists()
    assert _mode(cache) == 0o700


# --- the job's PATH --------------------------------------------------------------------------

def test_the_job_path_is_the_default_and_not_remoteds(run: Run) -> None:
    assert run.bob_path == DEFAULT_JOB_PATH
    venv_bin, rest = run.alice_path.split(":", 1)
    assert rest == DEFAULT_JOB_PATH
    assert Path(venv_bin).is_relative_to(run.envs / ALICE)
    default = set(DEFAULT_JOB_PATH.split(":"))
    leaked = [d for d in run.remoted_path.split(":") if d not in default]
    assert leaked and not set(leaked) & set(run.alice_path.split(":") + run.bob_path.split(":"))


def test_job_path_from_the_settings_is_used(student_python: Path) -> None:  # noqa: F811
    base = world_dir("ailabber-jobpath-")
    root = shared_root(base)
    student_area(root, BOB)
    configured = f"{base / 'course-tools'}:/usr/bin:/bin"
    bob = student_pipeline(base / BOB, BOB, student_python, root, base / f"home-{BOB}",
                           {"job_path": configured})
    bob.start("remoted", PATH=_remoted_path(base))
    bob.start("spoold")
    try:
        assert _job_path(bob, bob.submit(owned_project(bob, "no-env", PRINT_PATH))) == configured
    finally:
        bob.stop_all()
        shutil.rmtree(base, ignore_errors=True)


def test_sbatch_hands_the_wrapper_the_job_path_and_not_remoteds(tmp_path: Path) -> None:
    configured = "/opt/course/bin:/usr/bin:/bin"
    spec = JobSpec(task_id="t1", user="u", workdir=str(tmp_path), run_dir=str(tmp_path), log_dir=str(tmp_path),
                   commands=["true"], path=configured)
    export = next(a for a in SlurmScheduler().sbatch_args(spec) if a.startswith("--export="))
    assert f",PATH={configured}," in f"{export},"
    assert os.environ["PATH"] not in export


@pytest.mark.parametrize(("value", "ok"), [
    ("/opt/course/bin:/usr/bin:/bin", True),
    ("/usr/bin", True),
    ("", False),
    ("/usr/bin::/bin", False),
    ("bin:/usr/bin", False),
    ("/usr/bin:.", False),
    (["/usr/bin"], False),
    ("/usr/bin\n/bin", False),
])
def test_job_path_setting_must_be_absolute_directories(tmp_path: Path, value: object, ok: bool) -> None:
    cfg = tmp_path / "remoted.yaml"
    cfg.write_text(yaml.safe_dump({"root": str(tmp_path / "root"), "job_path": value}))
    if ok:
        assert load_remoted_settings(cfg).job_path == value
        return
    with pytest.raises(SettingsError) as err:
        load_remoted_settings(cfg)
    message = str(err.value)
    assert message.startswith(f"{cfg}: job_path: must be absolute directories") and "\n" not in message


def test_job_path_defaults_to_the_system_directories(tmp_path: Path) -> None:
    cfg = tmp_path / "remoted.yaml"
    cfg.write_text(yaml.safe_dump({"root": str(tmp_path / "root")}))
    assert load_remoted_settings(cfg).job_path == DEFAULT_JOB_PATH == "/usr/local/bin:/usr/bin:/bin"
