"""The command line: every verb is reachable, and running one imports no other verb."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ailabber.cli.main import VERBS, build_parser, verbs_named


@pytest.mark.parametrize("verb", [*sorted(VERBS), "help"])
def test_every_verb_parses_its_help_with_a_description_and_examples(
        verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser(verbs_named([verb, "--help"])).parse_args([verb, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: ailabber {verb}")
    description = out.split("\n\n")[1]
    assert description[:1].isupper() and not description.startswith(("positional arguments", "options")), out
    assert "\nexamples:\n  ailabber " in out, out


def test_the_main_help_has_examples_lists_no_hidden_verb_and_configures_no_verb() -> None:
    code = ("import sys, contextlib, io\n"
            "from ailabber.cli.main import build_parser, verbs_named\n"
            "out = io.StringIO()\n"
            "with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
            "    build_parser(verbs_named(['--help'])).parse_args(['--help'])\n"
            "print(sorted(m for m in sys.modules if m.startswith('ailabber.cli.')))\n"
            "print(out.getvalue())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    modules, help_text = out.split("\n", 1)
    assert modules == "['ailabber.cli.main']"
    assert "\nexamples:\n  ailabber " in help_text
    assert "metrics" in help_text and "completion" in help_text and "_complete" not in help_text


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
    assert modules == "['ailabber.cli.common', 'ailabber.cli.helptext', 'ailabber.cli.main', 'ailabber.cli.submit']"
    assert heavy == "False False"


def test_help_for_an_unknown_command_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from ailabber.cli.main import main

    assert main(["help", "nope"]) == 2
    assert capsys.readouterr().err.strip() == "ailabber: no command 'nope'"
