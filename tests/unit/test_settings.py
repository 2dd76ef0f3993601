"""Daemon settings files: strict, one line per problem, naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from ailabber.daemonkit.remoted_settings import load_remoted_settings
from ailabber.daemonkit.spoold_settings import load_spoold_settings
from ailabber.daemonkit.yamlfile import SettingsError
from ailabber.model.remote_url import SshRemote


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(text)
    return p


def test_remoted_settings_defaults_and_values(tmp_path: Path) -> None:
    s = load_remoted_settings(_write(tmp_path, "root: spoolroot\ngpus: 2\n"))
    assert s.root == tmp_path / "spoolroot" and s.gpus == 2 and s.scheduler == "local"
    assert s.env_cache_dir == tmp_path / "spoolroot" / "envs"
    assert load_remoted_settings(_write(tmp_path, "root: /x\ngpus: auto\n")).gpus is None


@pytest.mark.parametrize("text,field", [
    ("root: /x\nschedular: local\n", "schedular: unknown key (did you mean 'scheduler'?)"),
    ("scheduler: local\n", "root: required"),
    ("root: /x\nscheduler: pbs\n", "scheduler: must be one of"),
    ("root: /x\ngpus: -1\n", "gpus: must be"),
    ("root: /x\ngpus: true\n", "gpus: must be"),
    ("root: /x\npoll_interval: 0\n", "poll_interval: must be a number"),
    ("root: [1\n", "syntax:"),
    ("- a\n- b\n", "must be a mapping"),
])
def test_remoted_settings_errors(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(SettingsError) as exc:
        load_remoted_settings(_write(tmp_path, text))
    msg = str(exc.value)
    assert field in msg and str(tmp_path) in msg and "\n" not in msg


def test_spoold_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AILABBER_HOME", str(tmp_path / "home"))
    d = load_spoold_settings(None)
    assert d.spool == tmp_path / "home" / "spool" and str(d.remote) == str(tmp_path / "home" / "remote")
    s = load_spoold_settings(_write(tmp_path, "remote: r\npoll_interval: 2\n"))
    assert str(s.remote) == str(tmp_path / "r") and s.poll_interval == 2.0
    ssh = load_spoold_settings(_write(tmp_path, "remote: ssh://alice@cluster.example:2222/\n"
                                              "identity_file: key\nssh_options: [StrictHostKeyChecking=yes]\n"))
    assert isinstance(ssh.remote, SshRemote) and str(ssh.remote) == "ssh://alice@cluster.example:2222/"
    assert ssh.identity_file == str(tmp_path / "key") and ssh.ssh_options == ("StrictHostKeyChecking=yes",)
    for text in ("remote: 5\n", "remotes: /x\n", "ssh_options: x\n", "remote: ssh://u@h/p/../q\n",
                 "remote: ssh://u:pw@h/p\n", "remote: ssh://u@h:99999/p\n", "remote: http://h/p\n",
                 "remote: ssh://u@/p\n", "ssh_options: ['-oProxyCommand=x']\n", "max_upload_bytes: 0\n"):
        with pytest.raises(SettingsError):
            load_spoold_settings(_write(tmp_path, text))
    with pytest.raises(SettingsError, match="not found"):
        load_spoold_settings(tmp_path / "missing.yaml")
