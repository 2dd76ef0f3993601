"""The snapshot copy against a project tree that changes between planning and copying."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from ailabber.model.config import ConfigError
from ailabber.workstation.project import load_task_config
from ailabber.workstation.snapshot import copy_snapshot, plan_snapshot


def _plan(tmp_path: Path):  # type: ignore[no-untyped-def]
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "task_config.toml").write_text('[run]\ncommands = ["true"]\n')
    (proj / "data.bin").write_bytes(b"x" * 100)
    cfg = load_task_config(proj / "task_config.toml")
    return proj, plan_snapshot(cfg)


def _copy_in_thread(plan, dest: Path) -> tuple[threading.Thread, list[BaseException | None]]:  # type: ignore[no-untyped-def]
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            copy_snapshot(plan, dest)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            outcome.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, outcome


def test_file_replaced_by_fifo_during_submit_is_refused_not_hung(tmp_path: Path) -> None:
    proj, plan = _plan(tmp_path)
    (proj / "data.bin").unlink()
    os.mkfifo(proj / "data.bin")
    dest = tmp_path / "dest"
    dest.mkdir()
    t, outcome = _copy_in_thread(plan, dest)
    t.join(5)
    hung = t.is_alive()
    if hung:  # let the blocked open() return so the thread can end
        fd = os.open(proj / "data.bin", os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        t.join(5)
    assert not hung, "copy_snapshot blocked on a FIFO"
    assert outcome and isinstance(outcome[0], ConfigError), outcome


def test_file_replaced_by_symlink_during_submit_is_refused(tmp_path: Path) -> None:
    proj, plan = _plan(tmp_path)
    (proj / "data.bin").unlink()
    (proj / "data.bin").symlink_to("/etc/passwd")
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ConfigError) as ei:
        copy_snapshot(plan, dest)
    assert all(line.startswith("task_config.toml: files.upload: ") for line in ei.value.problems)
    assert not (dest / "data.bin").exists()


def test_file_growing_during_submit_is_refused(tmp_path: Path) -> None:
    proj, plan = _plan(tmp_path)
    with open(proj / "data.bin", "ab") as fh:
        fh.write(b"more")
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ConfigError):
        copy_snapshot(plan, dest)


def test_directory_replaced_by_symlink_during_submit_is_not_followed(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    (proj / "sub").mkdir(parents=True)
    (proj / "task_config.toml").write_text('[run]\ncommands = ["true"]\n')
    (proj / "sub" / "passwd").write_text("mine\n")
    plan = plan_snapshot(load_task_config(proj / "task_config.toml"))
    (proj / "sub" / "passwd").unlink()
    (proj / "sub").rmdir()
    (proj / "sub").symlink_to("/etc")
    dest = tmp_path / "dest"
    dest.mkdir()
    try:
        copy_snapshot(plan, dest)
    except ConfigError:
        return
    # If it did not refuse, it must at least not have copied a file from outside the project.
    assert (dest / "sub" / "passwd").read_text() == "mine\n"
