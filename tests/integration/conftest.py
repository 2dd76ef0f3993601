from __future__ import annotations

from collections.abc import Iterator
import shutil
from pathlib import Path

import pytest

from tests.conftest import require
from tests.integration.harness import Pipeline
from tests.unix_users import can_make_users, ensure_user, shared_python

STUDENTS = ("ailabber-alice", "ailabber-bob")


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    p = Pipeline(tmp_path)
    p.start_all()
    yield p
    p.stop_all()


@pytest.fixture(scope="session")
def student_python(pytestconfig: pytest.Config) -> Iterator[Path]:
    ok, why = can_make_users()
    require(pytestconfig, ok, why)
    for name in STUDENTS:
        ensure_user(name)
    py = shared_python()
    yield py
    shutil.rmtree(py.parent.parent.parent, ignore_errors=True)


