"""The glob syntax of run.logs/run.results (checked at submit) and what a pattern matches."""

from __future__ import annotations

from pathlib import Path

import pytest

from ailabber.model.config import ConfigError
from ailabber.model.globs import GlobSet, compile_glob, fixed_prefix, glob_problem, path_matches
from ailabber.workstation.project import load_task_config

# --------------------------------------------------------------------------- syntax

GOOD = ["out", "out/*.json", "**/*.ckpt", "a/**", "a/**/b/**/c", "m?.txt", "[abc].txt", "[!a-c]x", "[^0-9]x",
        "[]]", "[a-]", "w\\*x", "**", ".", "a/**/**/b", "*.[jJ][sS][oO][nN]"]
BAD = {
    "a**": "'**' must be a whole path component",
    "a/***/b": "'**' must be a whole path component",
    "x**y/z": "'**' must be a whole path component",
    "[abc": "is not closed by ']'",
    "out/[": "is not closed by ']'",
    "[]": "is not closed by ']'",
    "[z-a].txt": "the range 'z-a' in '[z-a].txt' is out of order",
    "a\\": "ends with a lone '\\'",
    "[[:digit:]]": "[:digit:] are not supported",
    "a/**/b/**/c/**/d/**/e/**/f": "at most 4 '**' components",
}


@pytest.mark.parametrize("pattern", GOOD)
def test_valid_patterns_are_accepted(pattern: str) -> None:
    assert glob_problem(pattern) is None


@pytest.mark.parametrize("pattern", sorted(BAD))
def test_invalid_patterns_are_refused_in_words(pattern: str) -> None:
    problem = glob_problem(pattern)
    assert problem is not None and BAD[pattern] in problem, problem
    assert "\n" not in problem


# --------------------------------------------------------------------------- matching

MATCHES = [
    ("out/*.json", "out/a.json", True),
    ("out/*.json", "out/.hidden.json", True),         # as in gitignore and pathlib
    ("out/*.json", "out/sub/a.json", False),          # * never spans a /
    ("out/*.json", "out/a.jsonl", False),
    ("*", "anything", True),
    ("m?.txt", "m1.txt", True),
    ("m?.txt", "m12.txt", False),
    ("[abc].txt", "b.txt", True),
    ("[abc].txt", "d.txt", False),
    ("[!a-c]x", "dx", True),
    ("[!a-c]x", "bx", False),
    ("[^0-9]x", "5x", False),
    ("[]]", "]", True),
    ("[a-]", "-", True),
    ("w\\*x", "w*x", True),
    ("w\\*x", "wax", False),
    ("**/*.ckpt", "top.ckpt", True),                  # ** spans no directory too
    ("**/*.ckpt", "a/b/c/deep.ckpt", True),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("a/**/b", "a/x/y/c", False),
    ("a/**", "a/x", True),                            # everything inside a...
    ("a/**", "a", False),                             # ...but not a itself
    ("a/**/**/b", "a/b", True),
    (".", ".", True),
    (".", "x", False),
    ("out", "out", True),
    ("out", "out2", False),
    ("new\nline", "new\nline", True),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), MATCHES)
def test_what_a_pattern_matches(pattern: str, path: str, expected: bool) -> None:
    assert path_matches(compile_glob(pattern), path) is expected


def _walk(globs: GlobSet, tree: dict[str, object]) -> list[list[str]]:
    """Feed a nested dict (a directory: dict, a file: None) through ``globs`` as a walker
    would: matched paths per pattern, and which directories were entered."""
    out: list[list[str]] = [[] for _ in globs.globs]
    stack = [("", tree, globs.start())]
    while stack:
        prefix, here, states = stack.pop()
        assert isinstance(here, dict)
        for name in sorted(here):
            matched, inside = globs.step(states, name, isinstance(here[name], dict))
            for g in matched:
                out[g].append(prefix + name)
            if inside and isinstance(here[name], dict):
                stack.append((f"{prefix}{name}/", here[name], inside))
    return [sorted(m) for m in out]


def test_a_matched_directory_is_taken_whole_and_not_entered_again() -> None:
    tree: dict[str, object] = {"out": {"a.json": None, "run": {"b.json": None}}, "x.json": None}
    globs = GlobSet([compile_glob("**/*.json"), compile_glob("out"), compile_glob("out/**")])
    assert _walk(globs, tree) == [["out/a.json", "out/run/b.json", "x.json"], ["out"], ["out/a.json", "out/run"]]


def test_literal_components_need_no_listing() -> None:
    globs = GlobSet([compile_glob("out/metrics.json"), compile_glob("logs")])
    assert globs.literal_names(globs.start()) == ["logs", "out"]
    _matched, inside = globs.step(globs.start(), "out", True)
    assert globs.literal_names(inside) == ["metrics.json"]
    star = GlobSet([compile_glob("out/*.json")])
    _matched, inside = star.step(star.start(), "out", True)
    assert star.literal_names(inside) is None


def test_fixed_prefix_is_where_every_match_lies() -> None:
    assert fixed_prefix("out/run/*.json") == "out/run"
    assert fixed_prefix("**/x") == "."
    assert fixed_prefix("out") == "out"


# --------------------------------------------------------------------------- at submit


def _config(tmp_path: Path, entries: str) -> Path:
    (tmp_path / "task_config.toml").write_text(f'[run]\ncommands = ["x"]\n{entries}\n')
    return tmp_path / "task_config.toml"


def test_globs_pass_submit_normalised(tmp_path: Path) -> None:
    cfg = load_task_config(_config(tmp_path, 'logs = ["./tb//**"]\nresults = ["out/*.json", "**/*.ckpt"]'))
    assert cfg.run.logs == ("tb/**",)
    assert cfg.run.results == ("out/*.json", "**/*.ckpt")


@pytest.mark.parametrize(("entries", "field", "words"), [
    ('results = ["out/[ab"]', "run.results[0]", "is not closed"),
    ('logs = ["tb/a**"]', "run.logs[0]", "whole path component"),
    ('results = ["/abs/*.json"]', "run.results[0]", "absolute"),
    ('results = ["out/../../*.json"]', "run.results[0]", "'..'"),
])
def test_bad_entries_are_refused_naming_the_field(tmp_path: Path, entries: str, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_task_config(_config(tmp_path, entries))
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith(f"task_config.toml: {field}: "), err.value.problems
    assert words in err.value.problems[0]


def test_a_glob_under_a_symlink_out_of_the_upload_is_refused(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "out").symlink_to(tmp_path / "outside")
    cfg = tmp_path / "proj" / "task_config.toml"
    cfg.write_text('[run]\ncommands = ["x"]\nresults = ["out/**/*.json"]\n')
    with pytest.raises(ConfigError) as err:
        load_task_config(cfg)
    assert "run.results[0]" in str(err.value) and "symlink 'out'" in str(err.value)
