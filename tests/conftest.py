"""Shared test plumbing.

``--require-infra`` (or ``AILABBER_REQUIRE_INFRA=1``) turns every "cannot run here" skip
for Slurm, sshd or root into a failure, so CI cannot pass by skipping.
"""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--require-infra", action="store_true",
                     help="fail (instead of skip) tests whose Slurm, sshd or root is missing")


def require(config: pytest.Config, ok: bool, what: str) -> None:
    if ok:
        return
    if config.getoption("--require-infra") or os.environ.get("AILABBER_REQUIRE_INFRA") == "1":
        pytest.fail(f"required infrastructure missing: {what}")
    pytest.skip(f"needs {what}")
