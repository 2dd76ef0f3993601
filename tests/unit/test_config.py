"""task_config.toml parsing: the documented example, defaults, and hostile input."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ailabber.model.config import ConfigError, Environment, Files, Resources, Run
from ailabber.workstation.project import load_task_config

EXAMPLE = """\
[resources]
gpus = 1
cpus = 4
memory = "32G"
time_limit = "4:00:00"
[environment]
pyproject_toml = "./pyproject.toml"
uv_lock = "./uv.lock"
extra_wheels = ["./dist/my_custom_op-0.1.0-cp310-linux_x86_64.whl"]
[files]
upload = "."
ignore = ["./__pycache__/"]
workdir = "."
[run]
commands = ["python train.py --config configs/resnet50.yaml"]
logs = ["./logs"]
results = ["./output"]
"""

RUN = '[run]\ncommands = ["python train.py"]\n'
NAME = "task_config.toml"


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "dist").mkdir(parents=True)
    (root / "configs").mkdir()
    (root / "src").mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (root / "uv.lock").write_text("version = 1\n")
    (root / "dist" / "my_custom_op-0.1.0-cp310-linux_x86_64.whl").write_bytes(b"PK")
    (root / "train.py").write_text("print('hi')\n")
    return root


def write(proj: Path, text: str | bytes) -> Path:
    path = proj / NAME
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- valid


def test_example_parses_unchanged(proj: Path) -> None:
    cfg = load_task_config(write(proj, EXAMPLE))
    assert cfg.resources == Resources(gpus=1, cpus=4, memory_mb=32768, time_limit_s=4 * 3600)
    assert cfg.environment == Environment(
        pyproject_toml="pyproject.toml", uv_lock="uv.lock",
        extra_wheels=("dist/my_custom_op-0.1.0-cp310-linux_x86_64.whl",))
    assert cfg.files == Files(upload=".", ignore=("./__pycache__/",), workdir=".")
    assert cfg.run == Run(commands=("python train.py --config configs/resnet50.yaml",),
                          logs=("logs",), results=("output",))
    assert cfg.source == proj / NAME
    assert cfg.upload_root == proj.resolve()
    assert cfg.upload_root.is_absolute()


def test_defaults(proj: Path) -> None:
    cfg = load_task_config(write(proj, RUN))
    assert cfg.resources == Resources()
    assert cfg.resources.memory_mb == 8192 and cfg.resources.time_limit_s == 3600
    assert cfg.environment == Environment()
    assert cfg.files == Files()
    assert cfg.run == Run(commands=("python train.py",))


def test_warning_settings(proj: Path) -> None:
    cfg = load_task_config(write(proj, '[files]\nwarn = false\nno_warn = ["/data/", "*.pt"]\n' + RUN))
    assert cfg.files.warn is False
    assert cfg.files.no_warn == ("/data/", "*.pt")
    assert Files().warn is True and Files().no_warn == ()


@pytest.mark.parametrize(("value", "mb"), [
    ('"512M"', 512), ('"512m"', 512), ('"32g"', 32768), ('"1T"', 1024 * 1024), ('"64T"', 64 * 1024 * 1024),
    ('"2048K"', 2), ('"1K"', 1), ('"1025K"', 2), ('"100"', 100), ("100", 100),
])
def test_memory_forms(proj: Path, value: str, mb: int) -> None:
    cfg = load_task_config(write(proj, f"[resources]\nmemory = {value}\n{RUN}"))
    assert cfg.resources.memory_mb == mb


@pytest.mark.parametrize(("value", "seconds"), [
    ('"30"', 1800), ('"90"', 5400), ('"30:15"', 1815), ('"90:00"', 5400),
    ('"4:00:00"', 14400), ('"36:00:00"', 36 * 3600), ('"2-12"', 2 * 86400 + 12 * 3600),
    ('"1-00:30"', 86400 + 1800), ('"1-2:3:4"', 86400 + 7200 + 184), ('"365-00:00:00"', 365 * 86400),
    ("45", 2700),
])
def test_time_limit_forms(proj: Path, value: str, seconds: int) -> None:
    cfg = load_task_config(write(proj, f"[resources]\ntime_limit = {value}\n{RUN}"))
    assert cfg.resources.time_limit_s == seconds


def test_paths_are_normalised(proj: Path) -> None:
    (proj / "src" / "a").mkdir()
    text = ('[files]\nworkdir = "./src//a/."\n'
            '[run]\ncommands = ["x"]\nlogs = ["./l//x/./y"]\nresults = ["."]\n')
    cfg = load_task_config(write(proj, text))
    assert cfg.files.workdir == "src/a"
    assert cfg.run.logs == ("l/x/y",)
    assert cfg.run.results == (".",)


def test_upload_subdirectory(proj: Path) -> None:
    (proj / "src" / "main.py").write_text("")
    cfg = load_task_config(write(proj, f'[files]\nupload = "./src/"\n{RUN}'))
    assert cfg.files.upload == "src"
    assert cfg.upload_root == (proj / "src").resolve()


def test_internal_symlinks_are_fine(proj: Path) -> None:
    (proj / "data").symlink_to("src")
    (proj / "py.toml").symlink_to("pyproject.toml")
    text = ('[environment]\npyproject_toml = "py.toml"\nuv_lock = "uv.lock"\n'
            '[files]\nworkdir = "data"\n[run]\ncommands = ["x"]\nresults = ["out"]\n')
    cfg = load_task_config(write(proj, text))
    assert cfg.files.workdir == "data"
    assert cfg.environment.pyproject_toml == "py.toml"


def test_utf8_bom_is_accepted(proj: Path) -> None:
    cfg = load_task_config(write(proj, b"\xef\xbb\xbf" + RUN.encode()))
    assert cfg.run.commands == ("python train.py",)


def test_did_you_mean_text(proj: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_task_config(write(proj, f"[resources]\ngpu = 1\n{RUN}"))
    assert err.value.problems == [
        "task_config.toml: resources.gpu: unknown key 'gpu' (did you mean 'gpus'?)"]


def test_negative_gpus_message(proj: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_task_config(write(proj, f"[resources]\ngpus = -1\n{RUN}"))
    assert str(err.value) == "task_config.toml: resources.gpus: must be an integer >= 0, got -1"


# --------------------------------------------------------------------------- malformed


@dataclass
class Bad:
    id: str
    text: str | bytes
    fields: set[str]
    contains: str = ""
    setup: Callable[[Path], None] | None = None


def _link_out(name: str) -> Callable[[Path], None]:
    def setup(proj: Path) -> None:
        (proj / name).symlink_to(proj.parent)
    return setup


def _make_file(rel: str, content: str = "") -> Callable[[Path], None]:
    def setup(proj: Path) -> None:
        (proj / rel).parent.mkdir(parents=True, exist_ok=True)
        (proj / rel).write_text(content)
    return setup


def _remove(rel: str) -> Callable[[Path], None]:
    def setup(proj: Path) -> None:
        (proj / rel).unlink()
    return setup


ENV_OK = '[environment]\npyproject_toml = "pyproject.toml"\nuv_lock = "uv.lock"\n'

BAD = [
    # TOML itself
    Bad("syntax-unclosed-table", "[resources\ngpus = 1\n" + RUN, {"syntax"}, "line 1"),
    Bad("syntax-missing-value", "[resources]\ngpus =\n" + RUN, {"syntax"}, "line 2"),
    Bad("syntax-duplicate-key", '[run]\ncommands = ["a"]\ncommands = ["b"]\n', {"syntax"}),
    Bad("syntax-raw-control-char", '[run]\ncommands = ["a\x01"]\n', {"syntax"}),
    # file level
    Bad("not-utf8", b"[run]\ncommands = [\"caf\xe9\"]\n", {"file"}, "UTF-8"),
    Bad("oversized", "# " + "x" * (1024 * 1024) + "\n" + RUN, {"file"}, "1 MiB"),
    # resources
    Bad("gpus-string", '[resources]\ngpus = "1"\n' + RUN, {"resources.gpus"}, "string '1'"),
    Bad("gpus-bool", "[resources]\ngpus = true\n" + RUN, {"resources.gpus"}, "boolean true"),
    Bad("cpus-float", "[resources]\ncpus = 4.0\n" + RUN, {"resources.cpus"}, "float"),
    Bad("gpus-negative", "[resources]\ngpus = -1\n" + RUN, {"resources.gpus"}, ">= 0"),
    Bad("gpus-huge", "[resources]\ngpus = 65\n" + RUN, {"resources.gpus"}, "<= 64"),
    Bad("cpus-zero", "[resources]\ncpus = 0\n" + RUN, {"resources.cpus"}, ">= 1"),
    Bad("cpus-int64", "[resources]\ncpus = 9223372036854775807\n" + RUN, {"resources.cpus"}),
    Bad("memory-spaced-unit", '[resources]\nmemory = "32 GB"\n' + RUN, {"resources.memory"},
        "'32 GB'"),
    Bad("memory-zero", '[resources]\nmemory = "0G"\n' + RUN, {"resources.memory"}, "greater"),
    Bad("memory-negative", '[resources]\nmemory = "-1G"\n' + RUN, {"resources.memory"}),
    Bad("memory-huge", '[resources]\nmemory = "99999T"\n' + RUN, {"resources.memory"}, "64T"),
    Bad("memory-array", "[resources]\nmemory = [32]\n" + RUN, {"resources.memory"}),
    Bad("memory-bool", "[resources]\nmemory = false\n" + RUN, {"resources.memory"}),
    Bad("time-four-fields", '[resources]\ntime_limit = "25:00:00:00"\n' + RUN,
        {"resources.time_limit"}),
    Bad("time-day-hours", '[resources]\ntime_limit = "1-25"\n' + RUN, {"resources.time_limit"},
        "24"),
    Bad("time-words", '[resources]\ntime_limit = "abc"\n' + RUN, {"resources.time_limit"}),
    Bad("time-zero", '[resources]\ntime_limit = "0"\n' + RUN, {"resources.time_limit"}),
    Bad("time-seconds", '[resources]\ntime_limit = "61:61"\n' + RUN, {"resources.time_limit"}),
    Bad("time-minutes", '[resources]\ntime_limit = "1:60:00"\n' + RUN, {"resources.time_limit"}),
    Bad("time-too-long", '[resources]\ntime_limit = "366-00"\n' + RUN, {"resources.time_limit"},
        "365"),
    Bad("time-negative-int", "[resources]\ntime_limit = -5\n" + RUN, {"resources.time_limit"}),
    Bad("time-float", "[resources]\ntime_limit = 1.5\n" + RUN, {"resources.time_limit"}),
    # structure
    Bad("unknown-top-level", '[resource]\ngpus = 1\n' + RUN, {"resource"},
        "did you mean 'resources'?"),
    Bad("unknown-nested", "[resources]\ngpu = 1\n" + RUN, {"resources.gpu"},
        "did you mean 'gpus'?"),
    Bad("key-in-wrong-table", '[run]\ncommands = ["x"]\nworkdir = "."\n', {"run.workdir"},
        "[files]"),
    Bad("key-at-top-level", 'gpus = 1\n' + RUN, {"gpus"}, "[resources]"),
    Bad("key-with-newline", '[resources]\n"a\\nb" = 1\n' + RUN, {'resources."a\\nb"'}),
    Bad("table-as-int", "resources = 5\n" + RUN, {"resources"}, "must be a table"),
    Bad("array-of-tables", '[[run]]\ncommands = ["x"]\n', {"run"}),
    # run.commands
    Bad("commands-missing", "[resources]\ngpus = 1\n", {"run.commands"}, "required"),
    Bad("commands-empty", "[run]\ncommands = []\n", {"run.commands"}),
    Bad("commands-string", '[run]\ncommands = "python train.py"\n', {"run.commands"}),
    Bad("commands-table", '[run]\ncommands = {a = "b"}\n', {"run.commands"}),
    Bad("commands-empty-string", '[run]\ncommands = ["python a.py", "", "  "]\n',
        {"run.commands[1]", "run.commands[2]"}, "non-empty string"),
    Bad("commands-int", '[run]\ncommands = ["a", 3]\n', {"run.commands[1]"}),
    Bad("commands-nul", '[run]\ncommands = ["echo a\\u0000b"]\n', {"run.commands[0]"}, "NUL"),
    Bad("commands-too-many", "[run]\ncommands = [" + '"x",' * 101 + "]\n", {"run.commands"}),
    Bad("commands-too-long", '[run]\ncommands = ["' + "x" * 10_001 + '"]\n',
        {"run.commands[0]"}),
    # paths
    Bad("workdir-absolute", '[files]\nworkdir = "/tmp"\n' + RUN, {"files.workdir"}, "absolute"),
    Bad("logs-dotdot", '[run]\ncommands = ["x"]\nlogs = ["../x"]\n', {"run.logs[0]"}, "'..'"),
    Bad("results-dotdot-middle", '[run]\ncommands = ["x"]\nresults = ["a/../../x"]\n',
        {"run.results[0]"}),
    Bad("results-not-list", '[run]\ncommands = ["x"]\nresults = "out"\n', {"run.results"}),
    Bad("results-empty-path", '[run]\ncommands = ["x"]\nresults = [""]\n', {"run.results[0]"}),
    Bad("workdir-nul", '[files]\nworkdir = "a\\u0000"\n' + RUN, {"files.workdir"}),
    Bad("workdir-newline", '[files]\nworkdir = "a\\nb"\n' + RUN, {"files.workdir"}),
    Bad("workdir-too-long", '[files]\nworkdir = "' + "a" * 5000 + '"\n' + RUN,
        {"files.workdir"}),
    Bad("results-symlink-out", '[run]\ncommands = ["x"]\nresults = ["out/sub"]\n',
        {"run.results[0]"}, "symlink 'out'", _link_out("out")),
    Bad("pyproject-symlink-out", ENV_OK.replace('"pyproject.toml"', '"esc/pyproject.toml"') + RUN,
        {"environment.pyproject_toml"}, "outside", _link_out("esc")),
    Bad("workdir-missing", '[files]\nworkdir = "nope"\n' + RUN, {"files.workdir"},
        "does not exist"),
    Bad("workdir-is-file", '[files]\nworkdir = "train.py"\n' + RUN, {"files.workdir"}),
    Bad("workdir-ignored", '[files]\nignore = ["src/"]\nworkdir = "src"\n' + RUN,
        {"files.workdir"}, "excluded"),
    Bad("logs-through-workdir-symlink",
        '[files]\nworkdir = "src"\n[run]\ncommands = ["x"]\nlogs = ["o/l"]\n',
        {"run.logs[0]"}, "outside", _link_out("src/o")),
    Bad("uv-lock-without-pyproject", '[environment]\nuv_lock = "uv.lock"\n' + RUN,
        {"environment.pyproject_toml"}, "required"),
    Bad("pyproject-without-uv-lock", '[environment]\npyproject_toml = "pyproject.toml"\n' + RUN,
        {"environment.uv_lock"}, "required"),
    Bad("wheel-missing", ENV_OK + 'extra_wheels = ["dist/nope-1.0-py3-none-any.whl"]\n' + RUN,
        {"environment.extra_wheels[0]"}, "does not exist"),
    Bad("wheel-not-whl", ENV_OK + 'extra_wheels = ["dist/thing.tar.gz"]\n' + RUN,
        {"environment.extra_wheels[0]"}, ".whl"),
    Bad("wheel-without-env", '[environment]\nextra_wheels = ["dist/a.whl"]\n' + RUN,
        {"environment.extra_wheels"}, setup=_make_file("dist/a.whl")),
    Bad("pyproject-is-dir", ENV_OK.replace('"pyproject.toml"', '"src"') + RUN,
        {"environment.pyproject_toml"}, "regular file"),
    Bad("pyproject-ignored", ENV_OK + '[files]\nignore = ["pyproject.toml"]\n' + RUN,
        {"environment.pyproject_toml"}, "is excluded by files.ignore[0] ('pyproject.toml')"),
    Bad("uv-lock-ignored-by-file", ENV_OK + RUN, {"environment.uv_lock"},
        "is excluded by .ailabberignore:1 ('*.lock')", _make_file(".ailabberignore", "*.lock\n")),
    Bad("uv-lock-gitignored", ENV_OK + RUN, {"environment.uv_lock"},
        "is excluded by .gitignore:2 ('*.lock'); to upload it anyway, add '!/uv.lock' to files.ignore",
        _make_file(".gitignore", "# locks\n*.lock\n")),
    Bad("workdir-in-gitignored-dir", '[files]\nworkdir = "src/sub"\n' + RUN, {"files.workdir"},
        "is excluded by src/.gitignore:1 ('/sub/'); to upload it anyway, add '!/src/sub/'",
        lambda proj: (_make_file("src/.gitignore", "/sub/\n")(proj), _make_file("src/sub/a.py")(proj))),
    Bad("uv-lock-missing", ENV_OK + RUN, {"environment.uv_lock"}, "does not exist",
        _remove("uv.lock")),
    Bad("upload-dotdot", '[files]\nupload = "../"\n' + RUN, {"files.upload"}),
    Bad("upload-absolute", '[files]\nupload = "/"\n' + RUN, {"files.upload"}),
    Bad("upload-symlink-out", '[files]\nupload = "up"\n' + RUN, {"files.upload"}, "outside",
        _link_out("up")),
    Bad("upload-missing", '[files]\nupload = "nope"\n' + RUN, {"files.upload"}),
    Bad("upload-int", "[files]\nupload = 1\n" + RUN, {"files.upload"}),
    Bad("ignore-not-list", '[files]\nignore = "*.ckpt"\n' + RUN, {"files.ignore"}),
    Bad("ignore-int-element", '[files]\nignore = ["*.ckpt", 3]\n' + RUN, {"files.ignore[1]"}),
    Bad("ignore-multiline", '[files]\nignore = ["a\\nb"]\n' + RUN, {"files.ignore[0]"}),
    Bad("warn-not-bool", '[files]\nwarn = "no"\n' + RUN, {"files.warn"}, "must be true or false"),
    Bad("no-warn-element", '[files]\nno_warn = ["data/", 3]\n' + RUN, {"files.no_warn[1]"}),
    Bad("no-warn-multiline", '[files]\nno_warn = ["a\\nb"]\n' + RUN, {"files.no_warn[0]"}),
    # several at once: every one reported
    Bad("many-problems",
        '[resources]\ngpus = true\ncpus = -3\nmemory = "lots"\ntime_limit = "soon"\n'
        '[environment]\nuv_lock = "uv.lock"\n[files]\nworkdir = "/abs"\n'
        '[run]\ncommands = [""]\nlogs = ["../l"]\nbogus = 1\n',
        {"resources.gpus", "resources.cpus", "resources.memory", "resources.time_limit",
         "environment.pyproject_toml", "files.workdir", "run.commands[0]", "run.logs[0]",
         "run.bogus"}),
]


@pytest.mark.parametrize("case", BAD, ids=[c.id for c in BAD])
def test_malformed_config(proj: Path, case: Bad) -> None:
    if case.setup is not None:
        case.setup(proj)
    path = write(proj, case.text)
    with pytest.raises(ConfigError) as err:
        load_task_config(path)
    problems = err.value.problems
    assert problems
    assert str(err.value).split("\n") == problems  # one line per problem
    fields = set()
    for line in problems:
        assert "\n" not in line and "\r" not in line
        assert line.startswith(f"{NAME}: "), line
        fields.add(line.split(": ", 2)[1])
    assert fields == case.fields, problems
    if case.contains:
        assert any(case.contains in line for line in problems), problems


def test_all_problems_reported_once(proj: Path) -> None:
    text = '[resources]\ngpus = 100\ncpus = 2000\n[run]\ncommands = ["", ""]\n'
    with pytest.raises(ConfigError) as err:
        load_task_config(write(proj, text))
    assert len(err.value.problems) == 4


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_unusable_config_path(tmp_path: Path, kind: str) -> None:
    path = tmp_path / NAME
    if kind == "directory":
        path.mkdir()
    with pytest.raises(ConfigError) as err:
        load_task_config(path)
    assert len(err.value.problems) == 1
    # A directory is named as given (its last component may be any of the user's folders).
    assert err.value.problems[0].startswith(f"{path if kind == 'directory' else NAME}: file: ")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read anything")
def test_unreadable_config(proj: Path) -> None:
    path = write(proj, RUN)
    path.chmod(0)
    with pytest.raises(ConfigError, match=r"^task_config.toml: file: cannot be read"):
        load_task_config(path)


def test_syntax_error_is_one_line(proj: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_task_config(write(proj, '[run]\ncommands = ["a", b]\n'))
    (line,) = err.value.problems
    assert line.startswith("task_config.toml: syntax: ") and "line" in line
