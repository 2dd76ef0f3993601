"""remoted.envs against the real uv, real processes and a real filesystem.

The probe project has no third-party dependencies, so its lock is made offline and every
environment builds in well under a second without touching the network.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from remoted.envkey import env_key, python_identity
from remoted.envs import UV_CACHE, EnvBuildError, EnvSpec, ensure_env

UV = shutil.which("uv")
pytestmark = pytest.mark.skipif(UV is None, reason="uv is not installed")

PYPROJECT = """\
[project]
name = "envprobe"
version = "0.1.0"
requires-python = ">=3.10"
dependencies = []
"""

PYPROJECT_WITH_BACKEND = PYPROJECT.replace('name = "envprobe"', 'name = "envprobe-packaged"') + """
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"
"""


def _lock(project: Path) -> None:
    """``uv lock`` with no network: a project without dependencies needs none."""
    assert UV is not None
    subprocess.run([UV, "lock", "--offline", "--project", str(project)], check=True,
                   stdin=subprocess.DEVNULL, capture_output=True)


@pytest.fixture(scope="session")
def locked_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for name, text in (("plain", PYPROJECT), ("backend", PYPROJECT_WITH_BACKEND)):
        d = tmp_path_factory.mktemp(f"template-{name}")
        (d / "pyproject.toml").write_text(text)
        _lock(d)
        out[name] = d
    return out


def _project(template: Path, dest: Path) -> EnvSpec:
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copyfile(template / name, dest / name)
    return EnvSpec(dest / "pyproject.toml", dest / "uv.lock")


@pytest.fixture
def spec(locked_templates: dict[str, Path], tmp_path: Path) -> EnvSpec:
    return _project(locked_templates["plain"], tmp_path / "upload")


def _run_python(venv: Path, code: str) -> str:
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], check=True,
                         capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return out.stdout.strip()


def test_builds_an_env_whose_python_runs(spec: EnvSpec, tmp_path: Path) -> None:
    log = io.StringIO()
    result = ensure_env(spec, tmp_path / "cache", log)

    assert result.built is True
    assert result.venv == tmp_path / "cache" / result.key / "venv"
    assert Path(_run_python(result.venv, "import sys; print(sys.prefix)")) == result.venv
    ready = json.loads((tmp_path / "cache" / result.key / "ready.json").read_text())
    assert ready["key"] == result.key
    assert ready["python"] == python_identity(spec)
    assert ready["uv"].startswith("uv ")
    assert (tmp_path / "cache" / f"{result.key}.lock").exists()
    text = log.getvalue()
    assert f"[ailabber] building env {result.key}" in text
    assert "[ailabber] env" in text and "ready" in text


def test_backend_project_works_without_building_it(locked_templates: dict[str, Path],
                                                   tmp_path: Path) -> None:
    """A declared build-system is not used: the student's project is never installed."""
    spec = _project(locked_templates["backend"], tmp_path / "upload")
    result = ensure_env(spec, tmp_path / "cache", io.StringIO())
    assert result.built
    assert _run_python(result.venv, "import importlib.util as u; print(u.find_spec('envprobe_packaged'))") == "None"


def test_second_call_reuses_quickly(spec: EnvSpec, tmp_path: Path) -> None:
    first = ensure_env(spec, tmp_path / "cache", io.StringIO())
    log = io.StringIO()
    t0 = time.monotonic()
    second = ensure_env(spec, tmp_path / "cache", log)
    elapsed = time.monotonic() - t0

    assert (second.built, second.key, second.venv) == (False, first.key, first.venv)
    assert elapsed < 2.0
    assert f"[ailabber] reusing env {first.key}" in log.getvalue()
    assert "building" not in log.getvalue()


def test_key_depends_on_lock_wheels_and_python(spec: EnvSpec, tmp_path: Path) -> None:
    python = python_identity(spec)
    base = env_key(spec, python)
    assert len(base) == 32 and int(base, 16) >= 0
    assert env_key(spec, python) == base

    assert env_key(spec, python + "-elsewhere") != base

    spec.uv_lock.write_bytes(spec.uv_lock.read_bytes() + b"\n# touched\n")
    assert env_key(spec, python) != base

    wheel = tmp_path / "x-1.0-py3-none-any.whl"
    wheel.write_bytes(b"one")
    with_wheel = env_key(EnvSpec(spec.pyproject, spec.uv_lock, (wheel,)), python)
    wheel.write_bytes(b"two")
    assert env_key(EnvSpec(spec.pyproject, spec.uv_lock, (wheel,)), python) != with_wheel


def test_python_identity_names_the_interpreter(spec: EnvSpec) -> None:
    identity = python_identity(spec)
    impl, version, *_rest = identity.split("-")
    assert impl and version[0].isdigit()
    path = identity.split("-", 5)[-1]
    assert Path(path).is_absolute()


def test_python_version_file_is_honoured(spec: EnvSpec, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A pin nothing can satisfy shows in the identity and fails the build cleanly."""
    (spec.pyproject.parent / ".python-version").write_text("3.99\n")
    assert python_identity(spec).startswith("unresolved-3.99-")
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS", "never")
    with pytest.raises(EnvBuildError, match=r"uv sync --locked failed .*3\.99"):
        ensure_env(spec, tmp_path / "cache", io.StringIO())
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.is_dir() and p.name != UV_CACHE] == []


@pytest.mark.parametrize("lock_text", [
    "this is {{ not toml\n",
    # Valid TOML, but for a different project than pyproject.toml declares.
    ('version = 1\nrevision = 3\nrequires-python = ">=3.10"\n\n'
     '[[package]]\nname = "someone-else"\nversion = "0.1.0"\nsource = { virtual = "." }\n'),
], ids=["garbage", "mismatched"])
def test_broken_lock_fails_and_leaves_nothing(spec: EnvSpec, tmp_path: Path, lock_text: str) -> None:
    spec.uv_lock.write_text(lock_text)
    log = io.StringIO()
    with pytest.raises(EnvBuildError) as err:
        ensure_env(spec, tmp_path / "cache", log)

    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("uv sync --locked failed (exit ")
    assert "error:" in log.getvalue()            # uv's own words are in the log
    key = env_key(spec, python_identity(spec))
    assert not (tmp_path / "cache" / key).exists()
    assert (tmp_path / "cache" / f"{key}.lock").exists()   # lock files are never deleted
    assert [p for p in (tmp_path / "cache").iterdir() if p.is_dir() and p.name != UV_CACHE] == []


def test_interrupted_build_is_discarded_and_rebuilt(spec: EnvSpec, tmp_path: Path) -> None:
    key = env_key(spec, python_identity(spec))
    half = tmp_path / "cache" / key
    (half / "venv" / "bin").mkdir(parents=True)
    (half / "venv" / "bin" / "python").write_text("not a python")
    log = io.StringIO()

    result = ensure_env(spec, tmp_path / "cache", log)

    assert result.built and result.key == key
    assert "removing unfinished build" in log.getvalue()
    assert _run_python(result.venv, "print(6 * 7)") == "42"


def _handmade_wheel(dest: Path) -> Path:
    """A minimal valid pure-Python wheel, written without any build backend."""
    files = {
        "ailabber_probe_wheel/__init__.py": b"VALUE = 42\n",
        "ailabber_probe_wheel-1.0.dist-info/METADATA":
            b"Metadata-Version: 2.1\nName: ailabber-probe-wheel\nVersion: 1.0\n",
        "ailabber_probe_wheel-1.0.dist-info/WHEEL":
            b"Wheel-Version: 1.0\nGenerator: handmade\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("ailabber_probe_wheel-1.0.dist-info/RECORD,,")
    files["ailabber_probe_wheel-1.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    path = dest / "ailabber_probe_wheel-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def test_extra_wheel_is_installed(spec: EnvSpec, tmp_path: Path) -> None:
    wheel = _handmade_wheel(tmp_path)
    with_wheel = EnvSpec(spec.pyproject, spec.uv_lock, (wheel,))
    log = io.StringIO()

    result = ensure_env(with_wheel, tmp_path / "cache", log)

    assert result.built
    assert result.key != env_key(spec, python_identity(spec))
    assert (tmp_path / "cache" / result.key / "wheels" / wheel.name).is_file()
    assert _run_python(result.venv, "import ailabber_probe_wheel as m; print(m.VALUE)") == "42"
    assert "uv pip install" in log.getvalue()


def test_uv_missing_is_said_plainly(spec: EnvSpec, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(EnvBuildError, match=r"uv is not installed on the cluster side \(looked for 'uv' on PATH\)"):
        ensure_env(spec, tmp_path / "cache", io.StringIO())
    assert not (tmp_path / "cache").exists()


WORKER = """\
import json, sys, time
from pathlib import Path
from remoted.envs import EnvSpec, ensure_env

pyproject, lock, cache, uv, go, log_path = sys.argv[1:]
while not Path(go).exists():
    time.sleep(0.005)
with open(log_path, "w") as log:
    r = ensure_env(EnvSpec(Path(pyproject), Path(lock)), Path(cache), log, uv=uv)
print(json.dumps({"built": r.built, "key": r.key, "venv": str(r.venv)}))
"""

SLOW_UV = """\
#!{python}
# uv, but "uv sync" starts a second late: the other process surely finds the lock held.
import os, sys, time
if sys.argv[1:2] == ["sync"]:
    time.sleep(1.0)
os.execv({uv!r}, [{uv!r}, *sys.argv[1:]])
"""


def test_concurrent_processes_build_once(spec: EnvSpec, tmp_path: Path) -> None:
    assert UV is not None
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    slow_uv = tmp_path / "slow-uv"
    slow_uv.write_text(SLOW_UV.format(python=sys.executable, uv=UV))
    slow_uv.chmod(0o755)
    go = tmp_path / "go"
    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(worker), str(spec.pyproject), str(spec.uv_lock),
             str(tmp_path / "cache"), str(slow_uv), str(go), str(log)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
        )
        for log in logs
    ]
    time.sleep(0.5)          # let every worker import and start polling
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out))

    assert sum(r["built"] for r in results) == 1
    assert len({r["key"] for r in results}) == 1
    texts = [log.read_text() for log in logs]
    assert sum("[ailabber] building env" in t for t in texts) == 1
    assert sum("uv sync --locked" in t for t in texts) == 1
    waiters = [t for t in texts if "building env" not in t]
    assert all("reusing env" in t for t in waiters)
    assert any("waiting for another job building the same environment" in t for t in waiters)
    assert _run_python(Path(results[0]["venv"]), "print('ok')") == "ok"



def test_interpreter_description_is_remembered_while_the_file_is_the_same(spec: EnvSpec, tmp_path: Path) -> None:
    """The second half of the interpreter identity is kept in the cache, keyed by the
    interpreter file itself: a replaced interpreter is described afresh."""
    from remoted.envkey import INTERPRETERS_FILE
    from remoted.envkey import find_interpreter as _find_interpreter

    memo = tmp_path / INTERPRETERS_FILE
    first = _find_interpreter(spec, "uv", tmp_path)
    assert first.path is not None
    saved = json.loads(memo.read_text())
    assert saved[first.path]["identity"] == first.identity
    saved[first.path]["identity"] = "remembered"
    memo.write_text(json.dumps(saved))
    assert _find_interpreter(spec, "uv", tmp_path).identity == "remembered"    # no second uv run
    saved[first.path]["file"][1] += 1                                      # another inode
    memo.write_text(json.dumps(saved))
    assert _find_interpreter(spec, "uv", tmp_path).identity == first.identity
