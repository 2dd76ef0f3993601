"""A real browser for the dashboards' tests: Debian's Chromium, driven by Playwright for
Python (a dev dependency), never a browser Playwright downloads; and a dashboard command
running as a process, with the URL it printed.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
URL = re.compile(r"^open (http://127\.0\.0\.1:\d+/\?token=[A-Za-z0-9_-]+)$")


def browser_missing() -> str | None:
    """What the browser tests lack on this machine, or None."""
    if not os.access(CHROMIUM, os.X_OK):
        return f"Debian's chromium ({CHROMIUM}: apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python (uv sync --group dev)"
    return None


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (``playwright.sync_api.Browser``).  Chromium refuses to run as
    root with its sandbox; the tests run as root, so as root it goes without."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox"] if os.geteuid() == 0 else [])
        try:
            yield browser
        finally:
            browser.close()


class Served:
    """A dashboard command (``ailabber web`` or ``ailabber admin web``) as a process."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], log: Path, user: int | None = None):
        self.log = log
        self.err = open(log, "wb")
        as_user: dict[str, Any] = {"user": user, "group": user, "extra_groups": []} if user is not None else {}
        self.proc = subprocess.Popen(list(argv), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.err, **as_user)
        self.lines: list[str] = []
        self.url = ""

    def wait_url(self, timeout: float = 60) -> str:
        """The URL the command printed (``open http://...``); AssertionError if it ended
        or printed none in time."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        buf = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                buf += chunk
                self.lines = buf.decode(errors="replace").splitlines()
                for line in self.lines:
                    m = URL.match(line)
                    if m:
                        self.url = m[1]
                        return self.url
            elif self.proc.poll() is not None:
                break
        raise AssertionError(f"no URL from {self.proc.args}: {buf.decode(errors='replace')}"
                             f"{self.log.read_text(errors='replace')}")

    @property
    def base(self) -> str:
        return self.url.split("/?", 1)[0]

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not ended 10 s later (named in the failure)."""
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"{self.proc.args} did not stop on SIGTERM") from None
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.err.close()
