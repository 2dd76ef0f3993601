"""What remoted lists of a finished task's run.logs/run.results, how the listing is checked
again where it is read, and how spoold brings the paths back (real rsync, local paths)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from ailabber.model.outputs import OUTPUTS_FILE, Outputs, listing, parse_outputs
from ailabber.model.task import COMPLETED, TaskStatus
from ailabber.storage.safedir import SafeDir
from remoted import outputs as remoted_outputs
from remoted.jobspec import JobSpec
from remoted.outputs import list_outputs
from remoted.publish import ActiveTasks
from remoted.records import LAUNCHED, RecordStore, TaskRecord
from spoold.transport import RsyncTransport

TASK = "240101-000000000-abcdef"

# --------------------------------------------------------------------------- parse_outputs


def _data(results: list[str], matches: list[list[str]], **extra: object) -> dict[str, object]:
    return {**listing([], results, matches).to_dict(), **extra}


def test_a_listing_round_trips_with_any_name_a_file_can_have() -> None:
    names = ["out/new\nline.json", "out/-rf.json", "out/\udcff.json", "out/ spaced .json"]
    out = parse_outputs(_data(["out/*.json", "missing"], [names, []]), [], ["out/*.json", "missing"])
    assert out is not None and out.complete
    assert out.paths() == names
    assert [e.name for e in out.unmatched()] == ["run.results[1]"]


@pytest.mark.parametrize("path", ["../etc/passwd", "out/../../x.json", "/etc/x.json", "out//a.json", "out/./a.json",
                                  "out/a.json/", "", "out/a\0.json", "other/a.json", "out/sub/a.json", "."])
def test_a_path_that_leaves_the_workdir_or_is_not_its_entrys_is_refused(path: str) -> None:
    assert parse_outputs(_data(["out/*.json"], [[path]]), [], ["out/*.json"]) is None


@pytest.mark.parametrize("path", ["../etc", "./x", "a/..", "/etc", "a/", "//"])
def test_a_path_out_of_the_workdir_is_refused_even_where_its_pattern_would_match_it(path: str) -> None:
    """``*`` matches any name, ``..`` and the empty one included: the path check stands alone."""
    assert parse_outputs(_data(["*/*"], [[path]]), [], ["*/*"]) is None


@pytest.mark.parametrize("data", [
    {"version": 2, "logs": [], "results": [{"pattern": "x", "matches": []}]},
    {"version": 1, "logs": [], "results": [{"pattern": "y", "matches": []}]},    # another task's entries
    {"version": 1, "logs": [], "results": []},
    {"version": 1, "logs": [], "results": [{"pattern": "x", "matches": "x"}]},
    {"version": 1, "logs": [], "results": ["x"]},
    [],
    None,
])
def test_what_is_not_a_listing_of_the_tasks_entries_is_none(data: object) -> None:
    assert parse_outputs(data, [], ["x"]) is None


def test_an_incomplete_listing_says_nothing_matched_nothing() -> None:
    out = parse_outputs(_data(["x", "y"], [[], ["y"]], complete=False, note="listing stopped"), [], ["x", "y"])
    assert out is not None and not out.complete and out.note == "listing stopped"
    assert out.unmatched() == []


# --------------------------------------------------------------------------- list_outputs


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    w = tmp_path / "root" / "users" / "u" / "tasks" / TASK / "files"
    (w / "out" / "sub").mkdir(parents=True)
    (w / "out" / "a.json").write_text("a")
    (w / "out" / "sub" / "b.json").write_text("b")
    (w / "out" / "new\nline.json").write_text("n")
    (w / "out" / "-rf.json").write_text("d")
    (w / "out" / "link.json").symlink_to("/etc/passwd")
    (tmp_path / "elsewhere" / "deep").mkdir(parents=True)
    (tmp_path / "elsewhere" / "deep" / "c.json").write_text("c")
    (w / "out" / "linkdir").symlink_to(tmp_path / "elsewhere")
    (w / "top.ckpt").write_text("t")
    return w


def _spec(workdir: Path, results: list[str], logs: list[str] | None = None) -> JobSpec:
    return JobSpec(task_id=TASK, user="u", workdir=str(workdir), run_dir="", log_dir="", commands=["x"],
                   logs=logs or [], results=results)


def _root(workdir: Path) -> Path:
    return workdir.parents[4]


def test_the_listing_follows_no_symlink_and_keeps_every_name(workdir: Path) -> None:
    out = list_outputs(_root(workdir), _spec(workdir, ["out/*.json", "**/*.json", "out/linkdir", "*.ckpt", "nope"],
                                            logs=["out/**/c.json"]))
    assert out.complete, out.note
    assert {e.name: list(e.matches) for e in out.entries} == {
        "run.logs[0]": [],                                           # not through out/linkdir
        "run.results[0]": ["out/-rf.json", "out/a.json", "out/link.json", "out/new\nline.json"],
        "run.results[1]": ["out/-rf.json", "out/a.json", "out/link.json", "out/new\nline.json", "out/sub/b.json"],
        "run.results[2]": ["out/linkdir"],
        "run.results[3]": ["top.ckpt"],
        "run.results[4]": [],
    }
    assert parse_outputs(out.to_dict(), ["out/**/c.json"], [e.pattern for e in out.entries[1:]]) == out


def test_past_a_bound_the_listing_says_it_is_incomplete(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remoted_outputs, "MAX_SEEN", 3)
    out = list_outputs(_root(workdir), _spec(workdir, ["**/*.json"]))
    assert not out.complete and "more than 3 entries" in str(out.note)


def test_a_workdir_swapped_for_a_symlink_is_not_listed(workdir: Path, tmp_path: Path) -> None:
    os.rename(workdir, workdir.with_name("moved"))
    workdir.symlink_to(tmp_path / "elsewhere")
    out = list_outputs(_root(workdir), _spec(workdir, ["**/*.json"]))
    assert not out.complete and "could not be listed" in str(out.note)
    assert out.paths() == []


def test_a_workdir_outside_the_root_is_not_listed(tmp_path: Path) -> None:
    out = list_outputs(tmp_path / "root", _spec(tmp_path / "elsewhere", ["**"]))
    assert not out.complete and out.paths() == []


# --------------------------------------------------------------------------- bringing back


def _pulled(dest: Path) -> set[str]:
    return {str(p.relative_to(dest)) for p in dest.rglob("*") if not p.is_dir() or p.is_symlink()}


PATTERNS = [["out/*.json"], ["**/*.json"], ["out/**/b.json"], ["out/**"], ["*.ckpt", "out/sub"], ["."], ["nope/*"]]


@pytest.mark.parametrize("patterns", PATTERNS, ids=[",".join(p) for p in PATTERNS])
def test_rsync_filters_bring_back_what_the_listing_does(workdir: Path, tmp_path: Path, patterns: list[str]) -> None:
    """A running task is brought back by patterns (rsync's filter rules), a finished one by
    its listing: both give the same files, and neither a symlink out of the workdir."""
    area = workdir.parents[2]
    t = RsyncTransport(str(area))
    out: Outputs = list_outputs(_root(workdir), _spec(workdir, patterns))
    t.pull_paths(TASK, ".", out.paths(), tmp_path / "by-listing")
    t.pull_results(TASK, ".", patterns, tmp_path / "by-pattern")
    by_listing, by_pattern = _pulled(tmp_path / "by-listing"), _pulled(tmp_path / "by-pattern")
    assert by_listing == by_pattern
    assert bool(by_listing) == (patterns != ["nope/*"])
    assert "out/link.json" not in by_listing and not any("c.json" in p for p in by_listing)


# --------------------------------------------------------------------------- published with the final state


def test_the_listing_is_published_before_the_final_status_and_owed_with_it(workdir: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A full outbox does not hold the final record back: the listing is owed with the
    status, and written before it once there is space, so spoold never sees the final
    status without the listing."""
    root = _root(workdir)
    store = RecordStore(root)
    store.ensure()
    rec = TaskRecord(id=TASK, user="u", status=TaskStatus(id=TASK, owner="u"), spec=_spec(workdir, ["out/*.json"]),
                     phase=LAUNCHED)
    written: list[str] = []
    real = SafeDir.write_atomic
    full = True

    def write_atomic(self: SafeDir, name: str, data: bytes, mode: int = 0o644) -> None:
        if full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written.append(name)
        real(self, name, data, mode)

    monkeypatch.setattr(SafeDir, "write_atomic", write_atomic)
    assert ActiveTasks(store).change(rec, COMPLETED, None, exit_code=0)
    kept = store.get("u", TASK)
    assert kept is not None and kept.status.state == COMPLETED          # recorded although the outbox is full
    outbox = root / "users" / "u" / "outbox" / TASK
    assert not (outbox / "status.json").exists() and not (outbox / OUTPUTS_FILE).exists()
    full = False
    store.outbox.retry()
    assert written == [OUTPUTS_FILE, "status.json"]
    out = parse_outputs(json.loads((outbox / OUTPUTS_FILE).read_text()), [], ["out/*.json"])
    assert out is not None and out.paths() == ["out/-rf.json", "out/a.json", "out/link.json", "out/new\nline.json"]
