"""Fixtures of the dashboards' browser tests: one headless Chromium per module, and per
test a fresh browser context (no cookie) whose page records every dialog (an ``alert``
that escaped escaping would open one) and every Content-Security-Policy violation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.browser import browser_missing, chromium
from tests.conftest import require

REPO = Path(__file__).resolve().parents[2]
#: Where the test run leaves the screenshots the guides show.
IMAGES = REPO / "docs" / "images"


@pytest.fixture(scope="module")
def browser(pytestconfig: pytest.Config) -> Iterator[Any]:
    """Per module: each test module imports this fixture, and Playwright's synchronous
    API allows one driver at a time, so one module's browser ends before the next's."""
    missing = browser_missing()
    require(pytestconfig, missing is None, missing or "")
    with chromium() as b:
        yield b


class Watched:
    """A page and what it reported: dialogs opened, console errors."""

    def __init__(self, browser: Any):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", self._dialog)
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def csp_violations(self) -> list[str]:
        return [e for e in self.errors if "Content Security Policy" in e]


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    w = Watched(browser)
    yield w
    w.context.close()


def shoot(page: Any, name: str) -> None:
    """A screenshot of the whole page into docs/images/ (what the guides show)."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / name), full_page=True)
