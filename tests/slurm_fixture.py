"""Session-wide real Slurm for tests that must see genuine scheduler behaviour.

Starting the cluster costs about three seconds (mostly slurmctld's first scheduling
pass), so it is started once per session and shared; tests keep their jobs apart by job id
and cancel what they leave running. Import it into a test module with::

    from tests.slurm_fixture import slurm_cluster  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testbed.slurm_cluster import SlurmCluster, available
from tests.conftest import require


@pytest.fixture(scope="session")
def slurm_cluster(pytestconfig: pytest.Config) -> Iterator[SlurmCluster]:
    ok, why = available()
    require(pytestconfig, ok, f"a real single-node Slurm: {why}")
    cluster = SlurmCluster()
    # A start failure on a machine that has everything is a bug to see, not a skip.
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
