"""Task ids and user names become directory names on both sides: a trailing newline (which
``$`` in a regex accepts) must be refused like any other stray character."""

from __future__ import annotations

from pathlib import Path

import pytest

from ailabber.model import ids
from ailabber.model.remote_layout import UserArea, valid_user
from ailabber.model.remote_url import RemoteUrlError, parse_ssh_url

GOOD_ID = "240101-000000000-abcdef"


def test_a_well_formed_task_id_is_accepted() -> None:
    assert ids.is_task_id(GOOD_ID)
    assert ids.is_task_id(ids.new_task_id())


@pytest.mark.parametrize("suffix", ["\n", "\r\n", "\r", "\x00", " ", "/", "\n.."])
def test_task_id_with_anything_after_it_is_refused(suffix: str) -> None:
    assert not ids.is_task_id(GOOD_ID + suffix)


@pytest.mark.parametrize("prefix", ["\n", " ", "x"])
def test_task_id_with_anything_before_it_is_refused(prefix: str) -> None:
    assert not ids.is_task_id(prefix + GOOD_ID)


@pytest.mark.parametrize("name", ["alice", "_svc", "bob.smith", "a-b_c", "machine$", "a" * 32])
def test_plausible_user_names_are_valid(name: str) -> None:
    assert valid_user(name)


@pytest.mark.parametrize("name", ["alice\n", "machine$\n", "\nalice", "alice/..", "Alice", "", ".", "..",
                                  "a" * 33, "al ice"])
def test_user_names_with_stray_characters_are_refused(name: str) -> None:
    assert not valid_user(name)
    with pytest.raises(ValueError):
        UserArea(Path("/srv/root"), name)


def test_ssh_url_accepts_a_plain_user_and_host() -> None:
    remote = parse_ssh_url("ssh://alice@cluster.example:2222/srv/ailabber/users/alice")
    assert (remote.user, remote.host, remote.port) == ("alice", "cluster.example", 2222)


@pytest.mark.parametrize("url", ["ssh://alice%0A@cluster/", "ssh://alice%0D%0A@cluster/",
                                 "ssh://%0Aalice@cluster/"])
def test_ssh_url_with_a_newline_in_the_user_is_refused(url: str) -> None:
    with pytest.raises(RemoteUrlError, match="bad user name"):
        parse_ssh_url(url)
