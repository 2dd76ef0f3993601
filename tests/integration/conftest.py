from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.pipeline import Pipeline
from testbed.unix_users import can_make_users, ensure_user, shared_python
from tests.conftest import require

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




@pytest.fixture(params=["rrsync", "gate"])
def pin(request: pytest.FixtureRequest, student_python: Path) -> Path | None:
    """What the students' keys are pinned to: rrsync itself (spoold then polls), or
    ailabber's gate, the ``ailabber-gate`` of the students' interpreter (rrsync plus the
    ``watch`` verb: spoold pulls on notice).  The same confinement tests hold for both."""
    return None if request.param == "rrsync" else student_python.parent / "ailabber-gate"
