"""The daemons' wake-up: safe to poke from a signal handler while the loop waits.

SIGTERM and SIGHUP handlers poke the waker in the main thread, at any point of the loop,
including while it is inside the waker's own ``wait``.  A waker that takes a lock there
(``threading.Event``) deadlocks on the first signal that lands while the lock is held:
the daemon then ignores every later signal.  The child below is hit by a timer signal
thousands of times while it waits; it must finish, or the hang is bounded by the timeout."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from ailabber.daemonkit.watch import Waker

CHILD = textwrap.dedent("""
    import signal, time
    from ailabber.daemonkit.watch import Waker
    w = Waker()
    signal.signal(signal.SIGALRM, lambda *_: w.poke())
    signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
    end, rounds = time.monotonic() + 3, 0
    while time.monotonic() < end:
        w.wait(0.001)
        rounds += 1
    signal.setitimer(signal.ITIMER_REAL, 0)
    print(rounds)
""")


def test_signals_poking_a_waiting_waker_never_hang_it() -> None:
    r = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60,
                       cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0 and int(r.stdout) > 0, (r.returncode, r.stderr[-2000:])


def test_many_pokes_make_one_wake_up_and_none_is_lost(tmp_path: Path) -> None:
    w = Waker()
    assert not w.wait(0)
    for _ in range(100_000):        # more than a pipe holds: the extra ones are dropped
        w.poke()
    assert w.wait(0)
    assert not w.wait(0)            # all consumed by the one wake-up
    w.poke()
    assert w.wait(5)
