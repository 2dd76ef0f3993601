"""Task names: which names are valid, where ``name`` may stand in task_config.toml, and how
a name, ``last``, an id, a prefix or a suffix resolve to one task."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ailabber.model import ids
from ailabber.model.config import ConfigError, parse_task_config
from ailabber.model.names import name_problem
from ailabber.storage import names

A, B, C = "261128-104809943-mng63d", "261128-104810001-abcdef", "261129-090000000-zzzz12"
RUN = '[run]\ncommands = ["python train.py"]\n'


@pytest.mark.parametrize("name", ["baseline", "lr 0.1", "exp-2_b.3", "a", "7", "A" * 64, "Run 3"])
def test_plain_names_are_valid(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize(("name", "words"), [
    ("", "empty"), ("x" * 65, "at most 64"), (" x", "start with a letter"), ("-x", "start with a letter"),
    (".", "start with a letter"), ("..", "start with a letter"), ("x ", "end with a space"),
    ("a/b", "only letters"), ("a\nb", "only letters"), ("caf\u00e9", "only letters"),
    ("\u00e9t\u00e9", "start with"),
    ("a\x1b[2Jb", "only letters"), ("last", "reserved"), (A, "task id"), (3, "integer 3"), (True, "boolean"),
])
def test_names_that_could_not_be_typed_or_shown_safely_are_refused(name: object, words: str) -> None:
    problem = name_problem(name)
    assert problem is not None and words in problem, problem
    assert "\n" not in problem and "\x1b" not in problem


def _parse(text: str) -> list[str]:
    try:
        parse_task_config(text, Path("task_config.toml"))
    except ConfigError as exc:
        return exc.problems
    return []


def test_name_is_a_top_level_key_of_the_config() -> None:
    cfg = parse_task_config('name = "lr 0.1"\n' + RUN, Path("task_config.toml"))
    assert cfg.name == "lr 0.1"
    assert parse_task_config(RUN, Path("task_config.toml")).name is None


def test_an_invalid_name_is_one_line_naming_the_field() -> None:
    assert _parse('name = "a/b"\n' + RUN) == [
        "task_config.toml: name: may contain only letters, digits, spaces and - _ . (got 'a/b')"]
    assert _parse('name = 7\n' + RUN) == ["task_config.toml: name: must be a string, got integer 7"]


def test_a_name_written_below_a_table_says_where_it_goes() -> None:
    problems = _parse(RUN + 'name = "x"\n')
    assert len(problems) == 1 and problems[0].startswith("task_config.toml: run.name: unknown key 'name'")
    assert "top of the file" in problems[0]


def test_a_misspelt_name_key_gets_a_suggestion() -> None:
    assert _parse('nmae = "x"\n' + RUN) == [
        "task_config.toml: nmae: unknown key 'nmae' (did you mean 'name'?)"]


# --------------------------------------------------------------------------- resolution


def _named(table: dict[str, list[str]]) -> Callable[[str], list[str]]:
    return lambda q: table.get(q, [])


def test_last_is_the_newest_task() -> None:
    assert ids.resolve("last", [B, A, C]) == C
    with pytest.raises(ids.TaskLookupError, match="there are none"):
        ids.resolve("last", [])


def test_a_unique_name_resolves_and_an_exact_id_still_wins() -> None:
    named = _named({"baseline": [B], A: [C]})
    assert ids.resolve("baseline", [A, B, C], named) == B
    assert ids.resolve(A, [A, B, C], named) == A


def test_an_ambiguous_name_lists_every_id() -> None:
    with pytest.raises(ids.TaskLookupError) as exc:
        ids.resolve("baseline", [A, B, C], _named({"baseline": [C, A]}))
    assert str(exc.value) == (f"'baseline' is ambiguous: 2 tasks have that name ({A}, {C}); "
                              "give one of the ids instead")


def test_a_name_wins_over_a_suffix_it_happens_to_match() -> None:
    # "abcdef" is B's suffix, and also the name the student gave C.
    assert ids.resolve("abcdef", [A, B, C], _named({"abcdef": [C]})) == C
    assert ids.resolve("abcdef", [A, B, C], _named({})) == B


def test_names_of_tasks_no_longer_in_the_spool_do_not_count() -> None:
    gone = "261127-000000000-gone00"
    assert ids.resolve("baseline", [A, B], _named({"baseline": [gone, B]})) == B
    with pytest.raises(ids.TaskLookupError, match="no task matches 'baseline'"):
        ids.resolve("baseline", [A], _named({"baseline": [gone]}))


def test_the_name_index_finds_ids_by_name(tmp_path: Path) -> None:
    names.add(tmp_path, "lr 0.1", A)
    entry = names.add(tmp_path, "lr 0.1", B)
    assert sorted(names.ids_named(tmp_path, "lr 0.1")) == [A, B]
    names.discard(entry)
    assert names.ids_named(tmp_path, "lr 0.1") == [A]
    assert names.ids_named(tmp_path, "other") == []


@pytest.mark.parametrize("query", ["../names", "lr 0.1/..", ".", "", "/etc"])
def test_a_query_that_is_no_name_never_reaches_the_file_system(tmp_path: Path, query: str) -> None:
    (tmp_path / "names" / "lr 0.1").mkdir(parents=True)
    (tmp_path / "names" / "lr 0.1" / A).touch()
    assert names.ids_named(tmp_path / "x", query) == []
