"""The ``ailabber`` CLI against hostile configs, project trees and arguments.

Every refusal must be one line per problem (``ailabber: <file>: <field>: ...``), exit 2 for
bad input and 1 otherwise, never a traceback, and must leave the spool exactly as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ailabber.model.task import TaskStatus, transition

Setup = Callable[[Path], None]


# --------------------------------------------------------------------------- helpers


def _run(home: Path, *args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, AILABBER_HOME=str(home), AILABBER_FSYNC="0")
    env.pop("AILABBER_CRASH_AT", None)
    return subprocess.run([sys.executable, "-m", "ailabber", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=timeout)


def _listing(home: Path) -> dict[str, str]:
    """Every entry under ``home`` with its type, mode and content hash."""
    out: dict[str, str] = {}
    if not home.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(home):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(home))
            if p.is_symlink():
                out[rel] = "link " + os.readlink(p)
            elif p.is_file():
                out[rel] = f"file {st.st_mode:o} " + hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[rel] = f"other {st.st_mode:o}"
    return out


def _no_traceback(r: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr


def _one_line_error(r: subprocess.CompletedProcess[str], codes: tuple[int, ...]) -> None:
    _no_traceback(r)
    assert r.returncode in codes, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ailabber: "), r.stderr


@pytest.fixture(scope="module")
def seeded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose spool already holds one valid task (the spool must not change)."""
    base = tmp_path_factory.mktemp("seed")
    proj = base / "proj"
    proj.mkdir()
    (proj / "task_config.toml").write_text('[run]\ncommands = ["true"]\n')
    home = base / "home"
    r = _run(home, "submit", cwd=proj)
    assert r.returncode == 0, r.stderr
    return home


# --------------------------------------------------------------------------- hostile task configs


def _write(rel: str, text: str = "x\n") -> Setup:
    def setup(proj: Path) -> None:
        (proj / rel).parent.mkdir(parents=True, exist_ok=True)
        (proj / rel).write_text(text)
    return setup


def _write_bytes(rel: str, data: bytes) -> Setup:
    def setup(proj: Path) -> None:
        (proj / rel).write_bytes(data)
    return setup


def _symlink(rel: str, target: str) -> Setup:
    def setup(proj: Path) -> None:
        (proj / rel).symlink_to(target)
    return setup


def _fifo(rel: str) -> Setup:
    def setup(proj: Path) -> None:
        os.mkfifo(proj / rel)
    return setup


def _config_replaced(kind: str) -> Setup:
    def setup(proj: Path) -> None:
        cfg = proj / "task_config.toml"
        cfg.unlink()
        if kind == "dir":
            cfg.mkdir()
        elif kind == "fifo":
            os.mkfifo(cfg)
        elif kind == "devzero":
            cfg.symlink_to("/dev/zero")
        elif kind == "dangling":
            cfg.symlink_to(proj / "nowhere.toml")
    return setup


CMD = '[run]\ncommands = ["python train.py"]\n'
NESTED_ARRAYS = "[run]\ncommands = " + "[" * 3000 + "]" * 3000 + "\n"
NESTED_TABLES = CMD + "[files]\nignore = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n"

# (id, config text or bytes or None for "leave as set up", field named in the first line, setup)
CASES: list[tuple[str, str | bytes | None, str, Setup | None]] = [
    ("syntax-error", "[run\ncommands = 1\n", "syntax", None),
    ("duplicate-key", CMD + 'commands = ["x"]\n', "syntax", None),
    ("raw-nul-byte", b'[run]\ncommands = ["a\x00b"]\n', "syntax", None),
    ("invalid-utf8", b'[run]\ncommands = ["\xff\xfe"]\n', "file", None),
    ("utf16", '[run]\ncommands = ["x"]\n'.encode("utf-16"), "file", None),
    ("too-big", CMD + "# " + "x" * (1024 * 1024) + "\n", "file", None),
    ("config-is-dir", None, "file", _config_replaced("dir")),
    ("config-is-fifo", None, "file", _config_replaced("fifo")),
    ("config-is-devzero", None, "file", _config_replaced("devzero")),
    ("config-dangling-link", None, "file", _config_replaced("dangling")),
    ("empty-file", "", "run.commands", None),
    ("unknown-top-key", "foo = 1\n" + CMD, "foo", None),
    ("newline-in-key", '"a\\nb" = 1\n' + CMD, '"a\\nb"', None),
    ("colon-space-key", '"a: b" = 1\n' + CMD, "'a: b'", None),
    ("unknown-resources-key", CMD + "[resources]\ngpu = 1\n", "resources.gpu", None),
    ("resources-not-table", "resources = 5\n" + CMD, "resources", None),
    ("array-of-tables", '[[run]]\ncommands = ["x"]\n', "run", None),
    ("gpus-bool", CMD + "[resources]\ngpus = true\n", "resources.gpus", None),
    ("gpus-float", CMD + "[resources]\ngpus = 1.5\n", "resources.gpus", None),
    ("gpus-nan", CMD + "[resources]\ngpus = nan\n", "resources.gpus", None),
    ("gpus-negative", CMD + "[resources]\ngpus = -1\n", "resources.gpus", None),
    ("gpus-huge", CMD + "[resources]\ngpus = 99999999999999999999999999\n", "resources.gpus", None),
    ("gpus-string", CMD + '[resources]\ngpus = "2"\n', "resources.gpus", None),
    ("cpus-zero", CMD + "[resources]\ncpus = 0\n", "resources.cpus", None),
    ("memory-words", CMD + '[resources]\nmemory = "lots"\n', "resources.memory", None),
    ("memory-zero", CMD + '[resources]\nmemory = "0G"\n', "resources.memory", None),
    ("memory-too-big", CMD + '[resources]\nmemory = "65T"\n', "resources.memory", None),
    ("memory-negative-int", CMD + "[resources]\nmemory = -5\n", "resources.memory", None),
    ("memory-array", CMD + "[resources]\nmemory = [1]\n", "resources.memory", None),
    ("time-bad-seconds", CMD + '[resources]\ntime_limit = "25:99"\n', "resources.time_limit", None),
    ("time-zero", CMD + "[resources]\ntime_limit = 0\n", "resources.time_limit", None),
    ("time-over-a-year", CMD + '[resources]\ntime_limit = "366-00:00:00"\n', "resources.time_limit", None),
    ("time-hours-after-day", CMD + '[resources]\ntime_limit = "1-24:00"\n', "resources.time_limit", None),
    ("time-datetime", CMD + "[resources]\ntime_limit = 1979-05-27T07:32:00Z\n", "resources.time_limit", None),
    ("commands-string", '[run]\ncommands = "python x"\n', "run.commands", None),
    ("commands-empty", "[run]\ncommands = []\n", "run.commands", None),
    ("commands-int", "[run]\ncommands = [1]\n", "run.commands[0]", None),
    ("commands-blank", '[run]\ncommands = ["   "]\n', "run.commands[0]", None),
    ("commands-nested", '[run]\ncommands = [["a"]]\n', "run.commands[0]", None),
    ("commands-escaped-nul", '[run]\ncommands = ["a\\u0000b"]\n', "run.commands[0]", None),
    ("commands-too-many", "[run]\ncommands = [" + ", ".join(['"true"'] * 101) + "]\n", "run.commands", None),
    ("command-too-long", '[run]\ncommands = ["' + "x" * 10_001 + '"]\n', "run.commands[0]", None),
    ("commands-missing", "[run]\nlogs = []\n", "run.commands", None),
    ("upload-absolute", CMD + '[files]\nupload = "/etc"\n', "files.upload", None),
    ("upload-dotdot", CMD + '[files]\nupload = "../"\n', "files.upload", None),
    ("upload-missing", CMD + '[files]\nupload = "nope"\n', "files.upload", None),
    ("upload-is-file", CMD + '[files]\nupload = "afile"\n', "files.upload", _write("afile")),
    ("upload-symlink-out", CMD + '[files]\nupload = "out"\n', "files.upload", _symlink("out", "/tmp")),
    ("upload-empty-string", CMD + '[files]\nupload = ""\n', "files.upload", None),
    ("workdir-missing", CMD + '[files]\nworkdir = "nope"\n', "files.workdir", None),
    ("workdir-control-char", CMD + '[files]\nworkdir = "a\\nb"\n', "files.workdir", None),
    ("workdir-line-separator", CMD + '[files]\nworkdir = "a\\u2028b"\n', "files.workdir", None),
    ("workdir-is-file", CMD + '[files]\nworkdir = "train.py"\n', "files.workdir", None),
    ("ignore-string", CMD + '[files]\nignore = "*.pt"\n', "files.ignore", None),
    ("ignore-empty-entry", CMD + '[files]\nignore = [""]\n', "files.ignore[0]", None),
    ("ignore-too-many", CMD + "[files]\nignore = [" + ", ".join(['"x"'] * 1001) + "]\n", "files.ignore", None),
    ("ignorefile-not-utf8", CMD, "files.ignore", _write_bytes(".ailabberignore", b"\xff\xfe\n")),
    ("pyproject-without-lock", CMD + '[environment]\npyproject_toml = "pyproject.toml"\n',
     "environment.uv_lock", _write("pyproject.toml")),
    ("pyproject-is-fifo", CMD + '[environment]\npyproject_toml = "pp"\nuv_lock = "uv.lock"\n',
     "environment.pyproject_toml", lambda p: (_fifo("pp")(p), _write("uv.lock")(p))),
    ("wheel-not-whl", CMD + '[environment]\npyproject_toml = "a"\nuv_lock = "b"\nextra_wheels = ["x.txt"]\n',
     "environment.extra_wheels[0]", lambda p: (_write("a")(p), _write("b")(p), _write("x.txt")(p))),
    ("environment-not-table", 'environment = "uv"\n' + CMD, "environment", None),
    ("results-dotdot", '[run]\ncommands = ["x"]\nresults = ["../out"]\n', "run.results[0]", None),
    ("logs-absolute", '[run]\ncommands = ["x"]\nlogs = ["/var/log"]\n', "run.logs[0]", None),
    ("results-symlink-out", '[run]\ncommands = ["x"]\nresults = ["out/x"]\n', "run.results[0]",
     _symlink("out", "/tmp")),
    ("project-symlink-out", CMD, "files.upload", _symlink("escape", "/etc")),
    ("project-dangling-symlink", CMD, "files.upload", _symlink("dangling", "does-not-exist")),
    ("nested-arrays", NESTED_ARRAYS, "syntax", None),
    ("nested-inline-tables", NESTED_TABLES, "syntax", None),
]

def _params() -> list[object]:
    return [pytest.param(*case[1:], id=case[0]) for case in CASES]


@pytest.mark.parametrize("with_spool", [False, True], ids=["no-spool", "spool"])
@pytest.mark.parametrize(("text", "field", "setup"), _params())
def test_hostile_config_is_refused_cleanly(tmp_path: Path, seeded_home: Path, with_spool: bool,
                                           text: str | bytes | None, field: str, setup: Setup | None) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "train.py").write_text("print('hi')\n")
    cfg = proj / "task_config.toml"
    if isinstance(text, bytes):
        cfg.write_bytes(text)
    elif isinstance(text, str):
        cfg.write_bytes(text.encode("utf-8", "surrogateescape"))
    else:
        cfg.write_text(CMD)
    if setup is not None:
        setup(proj)
    home = tmp_path / "home"
    if with_spool:
        shutil.copytree(seeded_home, home, symlinks=True)
    before = _listing(home)
    r = _run(home, "submit", cwd=proj, timeout=60)
    _no_traceback(r)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert lines, r.stderr
    for line in lines:
        assert line.startswith("ailabber: task_config.toml: "), line
        rest = line[len("ailabber: task_config.toml: "):]
        assert ": " in rest and rest.split(": ", 1)[0].strip(), line
    fields = [line[len("ailabber: task_config.toml: "):] for line in lines]
    assert any(f.startswith(field + ":") for f in fields), (field, lines)
    assert r.stdout == ""
    assert _listing(home) == before


def test_there_are_at_least_thirty_hostile_configs() -> None:
    assert len(CASES) >= 30


# --------------------------------------------------------------------------- hostile project trees


def _project(tmp_path: Path, config: str = CMD) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "task_config.toml").write_text(config)
    (proj / "train.py").write_text("print('hi')\n")
    return proj


def test_fifos_and_sockets_in_the_project_are_left_out(tmp_path: Path) -> None:
    import socket

    proj = _project(tmp_path)
    os.mkfifo(proj / "pipe")
    s = socket.socket(socket.AF_UNIX)
    short = Path("/tmp") / f"ailabber-sock-{os.getpid()}"
    s.bind(str(short))
    os.rename(short, proj / "sock")
    try:
        r = _run(tmp_path / "home", "submit", "--json", cwd=proj, timeout=30)
    finally:
        s.close()
    _no_traceback(r)
    assert r.returncode == 0, r.stderr
    task_id = json.loads(r.stdout)["id"]
    files = tmp_path / "home" / "spool" / "new" / task_id / "files"
    assert (files / "train.py").exists()
    assert not os.path.lexists(files / "pipe") and not os.path.lexists(files / "sock")


def test_weird_file_names_are_uploaded(tmp_path: Path) -> None:
    proj = _project(tmp_path)
    names = ["new\nline.txt", "tab\there", " leading-space", "-dash", "quote'\"", "uni-\u2028-sep"]
    for n in names:
        (proj / n).write_text("x")
    raw = os.fsencode(str(proj)) + b"/bad-\xff-utf8"
    with open(raw, "wb") as fh:
        fh.write(b"y")
    r = _run(tmp_path / "home", "submit", "--json", cwd=proj, timeout=30)
    _no_traceback(r)
    assert r.returncode == 0, r.stderr
    task_id = json.loads(r.stdout)["id"]
    files = tmp_path / "home" / "spool" / "new" / task_id / "files"
    for n in names:
        assert (files / n).read_text() == "x"
    assert os.path.exists(os.fsencode(str(files)) + b"/bad-\xff-utf8")


def test_submit_with_home_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    proj = _project(tmp_path)
    home = tmp_path / "home"
    home.write_text("not a directory")
    r = _run(home, "submit", cwd=proj)
    _one_line_error(r, (1,))
    assert home.read_text() == "not a directory"


def test_config_path_naming_a_missing_file_exits_2(tmp_path: Path) -> None:
    r = _run(tmp_path / "home", "submit", str(tmp_path / "nope.toml"), cwd=tmp_path)
    _no_traceback(r)
    assert r.returncode == 2
    assert r.stderr.startswith("ailabber: nope.toml: file:"), r.stderr
    assert not (tmp_path / "home").exists()


# --------------------------------------------------------------------------- other verbs


def _fake_done_task(home: Path, task_id: str = "240101-000000000-abcdef") -> str:
    d = home / "spool" / "done" / task_id
    d.mkdir(parents=True)
    st = TaskStatus(id=task_id, owner="me", submitted_at="2024-01-01T00:00:00.000Z")
    st, _ = transition(st, "completed", None, exit_code=0)
    (d / "status.json").write_text(json.dumps(st.to_dict()))
    return task_id


@pytest.mark.parametrize("verb", ["status", "logs", "cancel", "wait", "fetch"])
@pytest.mark.parametrize("query", ["nope", "", "../../etc", "240101"])
def test_unknown_or_ambiguous_task_exits_2(tmp_path: Path, verb: str, query: str) -> None:
    home = tmp_path / "home"
    _fake_done_task(home, "240101-000000000-abcdef")
    _fake_done_task(home, "240101-000000001-abcdeg")
    r = _run(home, verb, query, cwd=tmp_path, timeout=30)
    _one_line_error(r, (2,))


def test_status_of_task_with_garbage_status_file_is_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    task_id = _fake_done_task(home)
    (home / "spool" / "done" / task_id / "status.json").write_text('{"id": 5, "state": "nonsense"}')
    r = _run(home, "status", task_id)
    _one_line_error(r, (1,))


def test_fetch_into_an_impossible_destination_is_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    task_id = _fake_done_task(home)
    (tmp_path / "blocker").write_text("x")
    r = _run(home, "fetch", task_id, "--dest", str(tmp_path / "blocker" / "sub"))
    _one_line_error(r, (1, 2))


def test_init_into_a_missing_directory_is_one_line(tmp_path: Path) -> None:
    r = _run(tmp_path / "home", "init", str(tmp_path / "no" / "such" / "task_config.toml"))
    _one_line_error(r, (1, 2))


def test_init_force_onto_a_directory_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    r = _run(tmp_path / "home", "init", "--force", str(tmp_path / "adir"))
    _one_line_error(r, (1, 2))


def test_logs_when_the_log_is_a_directory_is_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    task_id = _fake_done_task(home)
    (home / "spool" / "outbox" / task_id / "logs" / "output.log").mkdir(parents=True)
    r = _run(home, "logs", task_id)
    _one_line_error(r, (1,))


def test_list_with_a_broken_spool_is_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "spool").mkdir(parents=True)
    (home / "spool" / "new").write_text("x")
    r = _run(home, "list")
    _one_line_error(r, (1,))
