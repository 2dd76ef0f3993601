"""The command line: every verb is reachable, and running one imports no other verb."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ailabber.cli.main import VERBS, build_parser, verbs_named


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_verb_parses_its_help(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser(verbs_named([verb, "--help"])).parse_args([verb, "--help"])
    assert exc.value.code == 0
    assert f"usage: ailabber {verb}" in capsys.readouterr().out


def test_full_parser_configures_every_verb() -> None:
    ap = build_parser()
    args = ap.parse_args(["list", "--limit", "3"])
    assert args.limit == 3 and callable(args.func)
    args = ap.parse_args(["status", "abc123", "--json"])
    assert args.id == "abc123" and args.json


def test_verbs_named_picks_the_verb_and_the_help_topic() -> None:
    assert verbs_named(["submit", "--json", "cfg.toml"]) == {"submit"}
    assert verbs_named(["--version"]) == set()
    assert verbs_named(["help", "logs"]) == {"logs"}
    assert verbs_named([]) == set()


def test_submit_imports_no_other_verb(tmp_path) -> None:  # type: ignore[no-untyped-def]
    code = ("import sys\n"
            "from ailabber.cli.main import build_parser, verbs_named\n"
            "build_parser(verbs_named(['submit'])).parse_args(['submit', '--json'])\n"
            "print(sorted(m for m in sys.modules if m.startswith('ailabber.cli.')))\n"
            "print('dataclasses' in sys.modules, 'shutil' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    modules, heavy = out.splitlines()
    assert modules == "['ailabber.cli.common', 'ailabber.cli.main', 'ailabber.cli.submit']"
    assert heavy == "False False"


def test_help_for_an_unknown_command_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from ailabber.cli.main import main

    assert main(["help", "nope"]) == 2
    assert capsys.readouterr().err.strip() == "ailabber: no command 'nope'"
