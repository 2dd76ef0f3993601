"""``ailabber completion``: the scripts, loaded into the real shells, complete verbs,
options, option values and the task ids of a real spool (the daemons need not run)."""

from __future__ import annotations

import os
import pty
import select
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from testbed.pipeline import Pipeline
from tests.conftest import require


@dataclass
class Shells:
    p: Pipeline
    task_id: str
    env: dict[str, str]                 # with an `ailabber` command first on PATH
    base: Path

    def script(self, shell: str) -> Path:
        path = self.base / f"ailabber.{shell}"
        path.write_text(self.p.cli("completion", shell, check=True).stdout)
        return path


@pytest.fixture
def shells(tmp_path: Path) -> Iterator[Shells]:
    p = Pipeline(tmp_path)
    task_id = p.submit(p.project(["true"]))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "ailabber"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(p.client_python)} -m ailabber "$@"\n')
    shim.chmod(0o755)
    env = p.env(PATH=f"{bin_dir}:{os.environ['PATH']}", HOME=str(tmp_path))
    yield Shells(p, task_id, env, tmp_path)


def _bash(s: Shells, script: Path, *words: str) -> list[str]:
    """COMPREPLY after ``_ailabber`` with ``words`` as the command line, the last one being
    completed, as bash's programmable completion calls it."""
    code = (f"source {shlex.quote(str(script))}; complete -p ailabber >/dev/null || exit 9; "
            f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)}); COMP_CWORD={len(words) - 1}; "
            'COMPREPLY=(); _ailabber; printf "%s\\n" "${COMPREPLY[@]}"')
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", code], env=s.env, capture_output=True, text=True,
                       timeout=120, cwd=s.base)
    assert r.returncode == 0 and r.stderr == "", r
    return [w for w in r.stdout.split("\n") if w]


def test_bash_completes_verbs_options_values_and_task_ids(shells: Shells) -> None:
    script = shells.script("bash")
    verbs = _bash(shells, script, "ailabber", "")
    assert {"submit", "status", "list", "metrics", "completion", "help"} <= set(verbs)
    assert "_complete" not in verbs
    assert _bash(shells, script, "ailabber", "st") == ["status"]
    assert _bash(shells, script, "ailabber", "--v") == ["--version"]
    assert set(_bash(shells, script, "ailabber", "metrics", "--")) == {"--help", "--series", "--json", "--height"}
    assert _bash(shells, script, "ailabber", "logs", "-f", "--stream", "s") == ["stdout", "stderr", "setup"]
    assert _bash(shells, script, "ailabber", "completion", "") == ["bash", "zsh", "fish"]
    assert _bash(shells, script, "ailabber", "help", "me") == ["metrics"]
    t = shells.task_id
    assert _bash(shells, script, "ailabber", "status", t[:8]) == [t]
    assert _bash(shells, script, "ailabber", "metrics", "--json", "") == [t]
    assert _bash(shells, script, "ailabber", "cancel", t, t[:3]) == [t]
    assert _bash(shells, script, "ailabber", "status", "zzz") == []
    assert _bash(shells, script, "ailabber", "submit", "proj") == ["project1"]       # a path: files
    assert _bash(shells, script, "ailabber", "wait", "--timeout", "") == []          # a number: nothing to offer


def test_the_hidden_call_lists_the_spool_s_ids_and_is_not_in_the_help(shells: Shells) -> None:
    r = shells.p.cli("_complete", "ids", check=True)
    assert r.stdout == shells.task_id + "\n"
    assert "_complete" not in shells.p.cli("--help", check=True).stdout
    assert "_complete" not in shells.p.cli("nosuchverb").stderr           # nor in argparse's list of choices


def _zsh_line(s: Shells, script: Path, typed: bytes, expect: bytes) -> bytes:
    """Type ``typed`` (with its Tabs) into an interactive zsh with the script loaded, and
    return the terminal's output once ``expect`` has appeared in it."""
    pid, fd = pty.fork()
    if pid == 0:                                           # the child: an interactive zsh
        try:
            os.chdir(s.base)
            os.execvpe("zsh", ["zsh", "-f", "-i"], {**s.env, "TERM": "dumb"})
        finally:
            os._exit(127)
    out = b""
    try:
        def read_until(token: bytes, timeout: float = 120) -> None:
            nonlocal out
            deadline = time.monotonic() + timeout
            while token not in out:
                assert time.monotonic() < deadline, f"zsh never printed {token!r}; output so far: {out!r}"
                if select.select([fd], [], [], 0.5)[0]:
                    try:
                        out += os.read(fd, 65536)
                    except OSError:            # the shell is gone
                        raise AssertionError(f"zsh ended; output: {out!r}") from None

        os.write(fd, f"bindkey -e; autoload -Uz compinit && compinit -u -D; source {shlex.quote(str(script))}; "
                     "print ${_comps[ailabber]}-READ''Y\n".encode())
        read_until(b"_ailabber-READY")
        os.write(fd, typed)
        read_until(expect)
        return out
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)


def test_zsh_completes_a_verb_and_a_task_id(shells: Shells, pytestconfig: pytest.Config) -> None:
    require(pytestconfig, shutil.which("zsh") is not None, "zsh")
    script = shells.script("zsh")
    r = subprocess.run(["zsh", "-f", "-c", f"source {shlex.quote(str(script))}"], env=shells.env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "compinit" in r.stderr, r         # without compinit: says what to do
    # Tab, then Ctrl-A and `print` before the line: what Tab made of the line is printed
    # as it stands (running it would resolve a prefix of an id by itself).
    _zsh_line(shells, script, b"ailabber metr\t\x01print -r -- LINE:\n", b"LINE:ailabber metrics\r\n")
    t = shells.task_id
    _zsh_line(shells, script, f"ailabber status --json {t[:8]}\t\x01print -r -- LINE:\n".encode(),
              f"LINE:ailabber status --json {t}\r\n".encode())


def test_fish_completes_a_verb_an_option_and_a_task_id(shells: Shells, pytestconfig: pytest.Config) -> None:
    require(pytestconfig, shutil.which("fish") is not None, "fish")
    script = shells.script("fish")

    def fish(line: str) -> list[str]:
        code = f"source {shlex.quote(str(script))}; complete --do-complete={shlex.quote(line)}"
        r = subprocess.run(["fish", "--no-config", "-c", code], env=shells.env, capture_output=True, text=True,
                           timeout=120, cwd=shells.base)
        assert r.returncode == 0 and r.stderr == "", r
        return [w.split("\t")[0] for w in r.stdout.splitlines()]

    assert fish("ailabber metr") == ["metrics"]
    assert "--series" in fish("ailabber metrics --")
    assert sorted(fish("ailabber logs --stream st")) == ["stderr", "stdout"]
    t = shells.task_id
    assert fish(f"ailabber status {t[:8]}") == [t]
