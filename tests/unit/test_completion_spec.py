"""What the completion scripts are made of: the parser's verbs and options, and the words
offered for a task (ids, and names where tasks have them)."""

from __future__ import annotations

import json
from pathlib import Path

from ailabber.cli.completion import task_words
from ailabber.cli.completion_spec import FILES, IDS, NOTHING, VERBS, describe_cli
from ailabber.cli.main import build_parser
from ailabber.storage import names


def test_the_description_follows_the_parser() -> None:
    cli = describe_cli(build_parser())
    verbs = {v.name: v for v in cli.verbs}
    assert "_complete" not in verbs and {"metrics", "completion", "help"} <= set(verbs)
    assert [s for o in cli.options for s in o.strings] == ["-h", "--help", "--version"]
    assert (verbs["status"].args, verbs["cancel"].args, verbs["metrics"].args) == (IDS, IDS, IDS)
    assert (verbs["submit"].args, verbs["init"].args, verbs["help"].args) == (FILES, FILES, VERBS)
    assert verbs["completion"].args == ("bash", "zsh", "fish")
    assert verbs["list"].args == NOTHING
    logs = {s: o for o in verbs["logs"].options for s in o.strings}
    assert logs["--stream"].value == ("output", "stdout", "stderr", "setup")
    assert logs["-f"] is logs["--follow"] and logs["-f"].value is None
    assert "--interval" not in logs                      # hidden options stay hidden
    fetch = {s: o for o in verbs["fetch"].options for s in o.strings}
    assert (fetch["--dest"].value, fetch["--timeout"].value) == (FILES, NOTHING)


def _task(spool: Path, stage: str, task_id: str, name: str | None = None) -> None:
    d = spool / stage / task_id
    d.mkdir(parents=True)
    (d / "meta.json").write_text(json.dumps({"id": task_id, "name": name}))
    if name is not None:
        names.add(spool, name, task_id)      # as submit records a name


def test_task_words_are_the_ids_then_the_plain_names(tmp_path: Path) -> None:
    a, b = "261128-103406123-k3f9qz", "261128-103407001-m2x8aa"
    c, gone = "261129-000000000-aaaaaa", "261129-000000001-bbbbbb"
    _task(tmp_path, "done", a, "baseline")
    _task(tmp_path, "synced", b, "two words")      # the shell would split it: left out
    _task(tmp_path, "new", c)
    names.add(tmp_path, "cleaned", gone)          # its task has left the spool
    (tmp_path / "new" / "not-a-task").mkdir()
    assert task_words(tmp_path) == [a, b, c, "baseline"]
    assert task_words(tmp_path / "missing") == []
