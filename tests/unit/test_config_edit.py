"""``--edit TABLE.KEY=VALUE``: values read as a config file's, the result validated by the
config parse itself, and written back as TOML that reads the same."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ailabber.model.config import ConfigError, TaskConfig, parse_task_config
from ailabber.model.config_edit import EditError, dump_toml, edited_config, parse_edit

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BASE = '# a comment\n[resources]\ntime_limit = "10:00"\n\n[run]\ncommands = ["python train.py"]\n'


def _parse(text: str) -> TaskConfig:
    return parse_task_config(text, Path("--edit"))


def test_values_are_read_as_toml_or_else_as_strings() -> None:
    assert parse_edit("resources.gpus=2") == ("resources", "gpus", 2)
    assert parse_edit("resources.time_limit=2:00") == ("resources", "time_limit", "2:00")
    assert parse_edit('run.commands=["a", "b c"]') == ("run", "commands", ["a", "b c"])
    assert parse_edit("resources.memory=16G") == ("resources", "memory", "16G")
    cfg = _parse(edited_config(BASE, [parse_edit("resources.time_limit=2:00"), parse_edit("resources.gpus=2")]))
    assert (cfg.resources.time_limit_s, cfg.resources.gpus) == (120, 2)
    assert cfg.run.commands == ("python train.py",)
    cfg = _parse(edited_config(BASE, [parse_edit("resources.time_limit=90")]))     # whole minutes, as in the file
    assert cfg.resources.time_limit_s == 5400


@pytest.mark.parametrize("edit,expected", [
    ("resources.time_limit=soon", "--edit: resources.time_limit: must be a time like"),
    ("resources.gpus=1.5", "--edit: resources.gpus: must be an integer"),
    ("resources.gpu=1", "--edit: resources.gpu: unknown key 'gpu' (did you mean 'gpus'?)"),
    ("run.time_limit=2:00", "--edit: run.time_limit: unknown key 'time_limit' (it belongs in [resources])"),
])
def test_a_bad_value_is_refused_by_the_config_parse_naming_the_key(edit: str, expected: str) -> None:
    with pytest.raises(ConfigError) as exc:
        _parse(edited_config(BASE, [parse_edit(edit)]))
    assert exc.value.problems == [next(p for p in exc.value.problems if p.startswith(expected))], exc.value.problems


@pytest.mark.parametrize("edit,expected", [
    ("resources", "must be TABLE.KEY=VALUE"),
    ("=3", "must be TABLE.KEY=VALUE"),
    ("gpus=3", "must be TABLE.KEY"),
    ("resources.gpus.x=3", "must be TABLE.KEY"),
    ("files.upload=src", "files.upload: cannot be changed when resubmitting"),
    ("files.ignore=[]", "files.ignore: cannot be changed when resubmitting"),
])
def test_a_malformed_edit_is_one_line(edit: str, expected: str) -> None:
    with pytest.raises(EditError) as exc:
        parse_edit(edit)
    assert expected in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("value", ["plain", 'quo"te', "back\\slash", "tab\tnew\nline", "del\x7f", "é ☃ 😀",
                                   "\x01ctl", "'single'"])
def test_strings_survive_the_round_trip(value: str) -> None:
    doc = {"run": {"commands": [value], "odd key": value}, "resources": {"gpus": 0, "flag": True}}
    assert tomllib.loads(dump_toml(doc)) == doc
