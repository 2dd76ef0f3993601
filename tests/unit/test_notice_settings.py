"""spoold.yaml's notice keys: checked at load, one line naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from ailabber.daemonkit.spoold_settings import NoticeSettings, load_spoold_settings
from ailabber.daemonkit.yamlfile import SettingsError


def _load(tmp_path: Path, text: str) -> NoticeSettings:
    p = tmp_path / "spoold.yaml"
    p.write_text(text)
    return load_spoold_settings(p).notices


def test_the_defaults_send_desktop_notices_only_where_there_is_a_session_bus(tmp_path: Path) -> None:
    n = _load(tmp_path, "remote: r\n")
    assert n.on_finish == () and n.on_finish_timeout == 60.0
    assert n.desktop_on({"DBUS_SESSION_BUS_ADDRESS": "unix:path=/run/user/1/bus"})
    assert not n.desktop_on({}) and not n.enabled({})
    assert not _load(tmp_path, "desktop_notifications: false\n").desktop_on({"DBUS_SESSION_BUS_ADDRESS": "x"})
    assert _load(tmp_path, "desktop_notifications: true\n").desktop_on({})


def test_on_finish_is_split_into_words_and_a_relative_path_taken_from_the_config(tmp_path: Path) -> None:
    n = _load(tmp_path, "on_finish: \"sh -c 'echo $AILABBER_STATE done'\"\non_finish_timeout: 5\n")
    assert n.on_finish == ("sh", "-c", "echo $AILABBER_STATE done") and n.on_finish_timeout == 5.0
    assert _load(tmp_path, "on_finish: [bin/hook, --quiet]\n").on_finish == (str(tmp_path / "bin" / "hook"), "--quiet")
    assert n.enabled({})


def test_a_hook_program_not_installed_yet_does_not_break_the_configuration(tmp_path: Path) -> None:
    """The CLI reads the same file with another PATH than spoold's: a missing program is
    spoold's to report when the hook runs, never a reason for every command to fail."""
    assert _load(tmp_path, "on_finish: no-such-program-anywhere\n").on_finish == ("no-such-program-anywhere",)
    assert _load(tmp_path, "on_finish: ./missing.sh\n").on_finish == (str(tmp_path / "missing.sh"),)


@pytest.mark.parametrize("text,expected", [
    ("on_finish: \"notify 'unclosed\"\n", "on_finish: cannot be split into words"),
    ("on_finish: ''\n", "on_finish: must name a program"),
    ("on_finish: []\n", "on_finish: must name a program"),
    ("on_finish: 3\n", "on_finish: must be a command line"),
    ("on_finish_timeout: 0\n", "on_finish_timeout: must be a number of seconds"),
    ("on_finish_timeout: true\n", "on_finish_timeout: must be a number of seconds"),
    ("desktop_notifications: sometimes\n", "desktop_notifications: must be auto, true or false"),
    ("on_finsh: x\n", "on_finsh: unknown key (did you mean 'on_finish'?)"),
])
def test_a_bad_notice_setting_is_one_line_naming_the_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(SettingsError) as exc:
        _load(tmp_path, text)
    msg = str(exc.value)
    assert expected in msg and str(tmp_path) in msg and "\n" not in msg, msg
