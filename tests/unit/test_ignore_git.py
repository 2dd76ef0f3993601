"""The ignore rules against ``git check-ignore`` itself, on real trees with tricky patterns,
nested ``.gitignore`` files and ``.git/info/exclude``: same paths out, same deciding line."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ailabber.workstation import gitignore
from ailabber.workstation.ignore import IgnoreRules
from tests.conftest import require

#: Paths of the tree every scenario is checked on; a trailing "/" makes a directory.
TREE = (
    "keep.log", "a.log", "sub/b.log", "build/", "sub/build/", "doc/a.md", "doc/sub/a.md",
    "logs/x", "sub/logs", "a/b", "a/x/y/b", "c/a/b", "foo", "x/y/foo", "abc/keep", "abc/z",
    "z", "y", "5x", "ax", "ay", "dy", "-q", "eq", "dq", "bar/x", "tb", "tb\\", "trailing ",
    "spaces", "out/keep.txt", "out/other.txt", "x/y/z", "m.o", "m.a", "qaw", "q]w",
    "unclosed[", "1z", "#hash", "!bang", "data/f", "sub/data/g", "src/a.py", "src/a.txt",
    "src/deep/b.py", "README.md", "[y", "xy", "a b", "sub/doc/c.md", "sub/keep.md", "sub/x.o",
)

#: Each scenario: file -> content (in the repository); the tree above is added to it.
SCENARIOS: dict[str, dict[str, str]] = {
    "wildcards": {".gitignore": (
        "# comment\n\\#hash\n\\!bang\n*.log\n!keep.log\n/build\ndoc/*.md\na/**/b\n**/foo\n"
        "[z-a]\n[[:digit:]]x\n[!a-c]y\n[a-c-e]q\n*.[oa]\nq[!]]w\nunclosed[\n[[:foo:]]z\n"
        "tb\\\ntrailing\\ \nspaces   \n[[:x]y\na\\ b\n")},
    "directories": {".gitignore": (
        "logs/\nbar//\nabc/**\n!abc/keep\nout/*\n!out/keep.txt\nx/\n!x/y/\ndata\n!sub/data\n")},
    "whitelist": {".gitignore": "*\n!*/\n!*.py\n"},
    "nested": {
        ".gitignore": "*.log\n*.md\n/build/\ndata/\n",
        "sub/.gitignore": "!b.log\n/build/\n!keep.md\ndoc/\n",
        "src/.gitignore": "*.txt\n!/deep/\ndeep/*.py\n",
        "doc/.gitignore": "!a.md\n",
        ".git/info/exclude": "*.o\n!m.o\n*.a\n",
    },
    "crlf-and-bom": {".gitignore": "\ufeff*.log\r\nfoo\r\n/src/*.txt\r\n"},
}


def _git(repo: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], input=stdin, capture_output=True,
                          text=True, check=True, errors="surrogateescape").stdout


def _make(repo: Path, files: dict[str, str]) -> list[tuple[str, bool]]:
    _git(repo.parent, "init", "-q", str(repo))
    paths: set[tuple[str, bool]] = set()
    for rel in TREE:
        is_dir = rel.endswith("/")
        rel = rel.rstrip("/")
        target = repo / rel
        if is_dir:
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("x")
        parts = rel.split("/")
        paths.update(("/".join(parts[:k]), True) for k in range(1, len(parts)))
        paths.add((rel, is_dir))
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_bytes(text.encode())
        if not rel.startswith(".git/"):
            paths.add((rel, False))
    return sorted(paths)


def _git_says(repo: Path, rels: list[str]) -> dict[str, str]:
    """path -> "source:line" of the ignore line that decides it, for every path a line
    matches (a "!" line: kept)."""
    out = _git(repo, "check-ignore", "--no-index", "--stdin", "-z", "-v",
               stdin="".join(f"{r}\0" for r in rels))
    fields = out.split("\0")
    got = {}
    for i in range(0, len(fields) - 3, 4):
        source, line, pattern, path = fields[i:i + 4]
        got[path] = f"{'!' if pattern.startswith('!') else ''}{source}:{line}"
    return got


def _we_say(rules: IgnoreRules, paths: list[tuple[str, bool]]) -> dict[str, str]:
    """The same, from our rules."""
    got = {}
    for rel, is_dir in paths:
        why = rules.excluded_by(rel, is_dir)
        rule = why.rule if why is not None else rules.decide(rel, is_dir)
        if rule is not None:
            got[rel] = f"{'!' if rule.negated else ''}{rule.where()}"
    return got


@pytest.fixture(autouse=True)
def _need_git(request: pytest.FixtureRequest) -> None:
    require(request.config, shutil.which("git") is not None, "git")


@pytest.mark.parametrize("name", SCENARIOS)
def test_same_paths_out_and_same_deciding_line_as_git(tmp_path: Path, name: str) -> None:
    repo = tmp_path / "repo"
    paths = _make(repo, SCENARIOS[name])
    git = _git_says(repo, [rel for rel, _ in paths])
    rules = IgnoreRules.from_upload_root(repo, [])
    assert _we_say(rules, paths) == git
    assert rules.problems == []


def test_upload_directory_below_the_top_of_the_work_tree(tmp_path: Path) -> None:
    """Files above the upload directory count, each relative to its own directory."""
    repo = tmp_path / "repo"
    paths = _make(repo, {".gitignore": "/sub/build/\ndata/\n*.md\n!/sub/keep.md\n",
                         ".git/info/exclude": "/sub/x.o\n", "sub/.gitignore": "!data/\n"})
    git = {p for p, where in _git_says(repo, [rel for rel, _ in paths]).items() if not where.startswith("!")}
    rules = IgnoreRules.from_upload_root(repo / "sub", [])
    below = [(rel[len("sub/"):], is_dir) for rel, is_dir in paths if rel.startswith("sub/")]
    ours = {f"sub/{rel}" for rel, is_dir in below if rules.is_ignored(rel, is_dir)}
    assert ours == {p for p in git if p.startswith("sub/")}
    assert ours >= {"sub/build", "sub/x.o", "sub/doc/c.md"}
    assert rules.excluded_by("build", True).rule.where() == "../.gitignore:1"   # type: ignore[union-attr]
    assert rules.excluded_by("x.o", False).rule.where() == "../.git/info/exclude:1"   # type: ignore[union-attr]


def test_linked_work_tree_reads_the_common_exclude_file(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    _git(tmp_path, "init", "-q", str(repo))
    (repo / "f").write_text("x")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", "f")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "f")
    (repo / ".git" / "info").mkdir(exist_ok=True)
    (repo / ".git" / "info" / "exclude").write_text("*.tmp\n")
    _git(repo, "worktree", "add", "-q", str(tmp_path / "wt"))
    (tmp_path / "wt" / "a.tmp").write_text("x")
    assert _git_says(tmp_path / "wt", ["a.tmp"]) != {}
    assert IgnoreRules.from_upload_root(tmp_path / "wt", []).is_ignored("a.tmp", False)


def test_config_and_ailabberignore_sit_on_top_of_gitignore(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("data/\n*.ckpt\n")
    (tmp_path / ".ailabberignore").write_text("!best.ckpt\n")
    rules = IgnoreRules.from_upload_root(tmp_path, ["!data/", "!data/**"])
    assert not rules.is_ignored("data", True)
    assert not rules.is_ignored("data/raw/x.csv", False)
    assert rules.is_ignored("last.ckpt", False)
    assert not rules.is_ignored("best.ckpt", False)
    assert not IgnoreRules.from_upload_root(tmp_path, ["!data/"]).is_ignored("data/x", False)
    assert IgnoreRules.from_upload_root(tmp_path, []).is_ignored("data/x", False)


def test_symlinked_gitignore_is_skipped_as_git_skips_it(tmp_path: Path) -> None:
    (tmp_path / "rules").write_text("*.log\n")
    (tmp_path / ".gitignore").symlink_to("rules")
    assert not IgnoreRules.from_upload_root(tmp_path, []).is_ignored("a.log", False)


def test_unreadable_gitignore_is_a_problem_not_silence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".gitignore").write_text("*.log\n")
    real_open = os.open

    def deny(path: str, flags: int, *args: int, **kwargs: int) -> int:
        if str(path).endswith("sub/.gitignore"):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(gitignore.os, "open", deny)
    rules = IgnoreRules.from_upload_root(tmp_path, [])
    rules.is_ignored("sub/a.log", False)
    assert rules.problems == ["cannot read 'sub/.gitignore': Permission denied"]
