"""gitignore semantics of IgnoreRules, case by case."""

from __future__ import annotations

from pathlib import Path

import pytest

from ailabber.workstation.ignore import IgnoreRules

F, D = False, True

CASES: list[tuple[list[str], str, bool, bool]] = [
    # plain names match at any depth
    (["*.ckpt"], "model.ckpt", F, True),
    (["*.ckpt"], "runs/a/model.ckpt", F, True),
    (["*.ckpt"], "model.ckpt.txt", F, False),
    (["data"], "data", D, True),
    (["data"], "data", F, True),
    (["data"], "a/data", D, True),
    (["data"], "data/x.csv", F, True),          # inside an ignored directory
    (["data"], "database", F, False),
    # comments, blanks, trailing spaces, escapes
    (["# data", "", "   "], "# data", F, False),
    (["\\#notes"], "#notes", F, True),
    (["data   "], "data", F, True),
    (["data\\ "], "data ", F, True),
    (["data\\ "], "data", F, False),
    (["\\!important"], "!important", F, True),
    # negation: last match wins
    (["*.log", "!keep.log"], "keep.log", F, False),
    (["*.log", "!keep.log"], "other.log", F, True),
    (["!keep.log", "*.log"], "keep.log", F, True),
    # ...but nothing comes back from inside an excluded directory
    (["out/", "!out/keep.txt"], "out/keep.txt", F, True),
    (["out/*", "!out/keep.txt"], "out/keep.txt", F, False),
    (["out/*", "!out/keep.txt"], "out/other.txt", F, True),
    # anchoring
    (["/build"], "build", D, True),
    (["/build"], "src/build", D, False),
    (["./build"], "build", D, True),
    (["./build"], "src/build", D, False),
    (["src/build"], "src/build", D, True),
    (["src/build"], "x/src/build", D, False),
    (["doc/*.md"], "doc/a.md", F, True),
    (["doc/*.md"], "doc/sub/a.md", F, False),
    # directory-only
    (["logs/"], "logs", D, True),
    (["logs/"], "logs", F, False),
    (["logs/"], "a/logs/x.txt", F, True),
    (["/logs/"], "a/logs", D, False),
    # wildcards
    (["?.txt"], "a.txt", F, True),
    (["?.txt"], "ab.txt", F, False),
    (["[abc].py"], "b.py", F, True),
    (["[abc].py"], "d.py", F, False),
    (["[!abc].py"], "d.py", F, True),
    (["[a-c]x"], "bx", F, True),
    (["[z-a]"], "z", F, True),                  # as git: the first character, then an empty range
    (["[z-a]"], "y", F, False),
    (["a*b"], "a/b", F, False),                  # * does not cross /
    (["a/*"], "a/b/c", F, True),                 # through the ignored a/b
    # ** forms
    (["**/foo"], "foo", F, True),
    (["**/foo"], "x/y/foo", F, True),
    (["**/foo/bar"], "x/foo/bar", F, True),
    (["abc/**"], "abc/x/y", F, True),
    (["abc/**"], "abc", D, False),
    (["a/**/b"], "a/b", F, True),
    (["a/**/b"], "a/x/y/b", F, True),
    (["a/**/b"], "c/a/b", F, False),
    (["**"], "anything/at/all", F, True),
    (["abc/**", "!abc/keep"], "abc/keep", F, False),
    # built-ins, and they cannot be re-included
    ([], ".git", D, True),
    ([], ".git/config", F, True),
    ([], "sub/.git/HEAD", F, True),
    ([], ".venv/bin/python", F, True),
    ([], "pkg/__pycache__/m.cpython-311.pyc", F, True),
    ([], "m.pyc", F, True),
    ([], "ailabber-results/t1/out.txt", F, True),
    ([], ".ailabber/state", F, True),
    ([], ".gitignore", F, False),
    ([], ".venv", F, False),                     # dir-only built-in
    (["!.git/", "!*.pyc"], ".git/config", F, True),
    (["!*.pyc"], "m.pyc", F, True),
    # the root and trivial paths
    (["*"], ".", D, False),
    (["*"], "", D, False),
    (["*"], "./a", F, True),
]


@pytest.mark.parametrize(("patterns", "path", "is_dir", "expected"), CASES)
def test_gitignore_semantics(patterns: list[str], path: str, is_dir: bool, expected: bool) -> None:
    assert IgnoreRules(patterns).is_ignored(path, is_dir) is expected


def test_ailabberignore_is_read_after_config(tmp_path: Path) -> None:
    (tmp_path / ".ailabberignore").write_text("# big stuff\n*.ckpt\n!best.ckpt\ncache/\n")
    rules = IgnoreRules.from_upload_root(tmp_path, ["data/", "best.ckpt"])
    assert rules.is_ignored("a.ckpt", False)
    assert not rules.is_ignored("best.ckpt", False)     # the file has the last word
    assert rules.is_ignored("data", True)
    assert rules.is_ignored("x/cache/y", False)
    assert not rules.is_ignored(".ailabberignore", False)


def test_without_ailabberignore(tmp_path: Path) -> None:
    rules = IgnoreRules.from_upload_root(tmp_path, ["*.tmp"])
    assert rules.is_ignored("a.tmp", False)
    assert not rules.is_ignored("a.txt", False)


def test_is_builtin_tells_whose_rule_it_was() -> None:
    rules = IgnoreRules(["secret.txt"])
    assert rules.is_builtin(".venv/lib/x.py", False)
    assert not rules.is_builtin("secret.txt", False)
    assert rules.is_ignored("secret.txt", False)


def test_ignores_entry_skips_parent_checks() -> None:
    rules = IgnoreRules(["out/"])
    assert not rules.ignores_entry("out/file.txt", False)
    assert rules.is_ignored("out/file.txt", False)
