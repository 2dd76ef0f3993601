"""When spoold pulls (spoold/pullclock.py), fed the time: with the gate's notices only on
news and on the slow rescan; without them, fast after a change or while someone follows,
backing off to tens of seconds for quiet tasks; locally, every poll_interval."""

from __future__ import annotations

from ailabber.model.watch_lines import Changed
from spoold.pullclock import ADAPTIVE, POLL, QUIET_MAX, WATCH, PullClock, backoff

A, B = "261130-015449853-13qgg6", "261130-015554286-rn1yjn"
NONE = Changed(False, False, False, frozenset(), frozenset())
BEAT = 30.0


def _pulls(clock: PullClock, mode: str, start: float, end: float, step: float = 0.1,
           followed: bool = False) -> list[tuple[float, bool, bool]]:
    """The pulls a pass every ``step`` seconds makes from ``start`` to ``end``."""
    out = []
    t = start
    while t < end:
        due = clock.due(mode, t, followed, BEAT)
        if due:
            clock.pulled(due, t)
            out.append((round(t, 1), due.small, due.logs))
        t += step
    return out


def test_backoff_is_fast_at_first_then_grows_to_tens_of_seconds() -> None:
    assert backoff(0, 1.0) == backoff(29, 1.0) == 1.0
    assert 1.0 < backoff(60, 1.0) < backoff(100, 1.0) <= QUIET_MAX
    assert backoff(10_000, 1.0) == QUIET_MAX


def test_watching_pulls_only_on_news_and_on_the_slow_rescan() -> None:
    clock = PullClock(poll_interval=1.0, rescan=300.0)
    clock.observe([A], 0.0)
    clock.everything()                                # the channel just said "ready"
    assert _pulls(clock, WATCH, 0.0, 1.0) == [(0.0, True, True)]
    assert _pulls(clock, WATCH, 1.0, 100.0) == []     # a quiet task costs nothing
    clock.heard(Changed(False, False, False, frozenset({A}), frozenset()))
    assert _pulls(clock, WATCH, 100.0, 101.0) == [(100.0, True, False)]
    assert _pulls(clock, WATCH, 101.0, 300.0) == []
    # The rescans: each kind of pull again ``rescan`` seconds after its last one.
    assert _pulls(clock, WATCH, 300.0, 400.1) == [(300.0, False, True), (400.0, True, False)]
    assert clock.wait(WATCH, 401.0, False, BEAT) > 190


def test_log_news_waits_for_the_back_off_unless_someone_follows() -> None:
    clock = PullClock(poll_interval=1.0, rescan=300.0)
    clock.observe([A], 0.0)
    clock.everything()
    _pulls(clock, WATCH, 0.0, 0.1)
    logs_news = Changed(False, False, False, frozenset(), frozenset({A}))
    # Quiet for long: a busy log is pulled every QUIET_MAX seconds, not at each notice.
    pulls = []
    for t in range(200, 320):
        clock.heard(logs_news)
        pulls += _pulls(clock, WATCH, float(t), t + 1.0, step=1.0)
    log_pulls = [t for t, _small, logs in pulls if logs]
    assert 3 <= len(log_pulls) <= 5 and all(b - a >= QUIET_MAX - 1 for a, b in zip(log_pulls, log_pulls[1:]))
    # Someone follows it: every notice is pulled.
    clock.heard(logs_news)
    assert _pulls(clock, WATCH, 320.0, 320.1, followed=True) == [(320.0, False, True)]


def test_a_failed_pull_keeps_the_news_and_tries_again_soon() -> None:
    clock = PullClock(poll_interval=1.0, rescan=300.0)
    clock.observe([A], 0.0)
    clock.heard(Changed(False, False, False, frozenset({A}), frozenset()))
    due = clock.due(WATCH, 10.0, False, BEAT)
    assert due.small
    clock.pulled(due, 10.0, ok=False)
    assert not clock.due(WATCH, 11.0, False, BEAT)
    assert clock.due(WATCH, 15.5, False, BEAT).small


def test_polling_without_the_gate_backs_off_for_quiet_tasks() -> None:
    clock = PullClock(poll_interval=1.0, rescan=300.0)
    clock.observe([A], 0.0)
    early = _pulls(clock, ADAPTIVE, 0.0, 30.0)
    assert 25 <= len(early) <= 31                     # fast right after the task was seen
    late = _pulls(clock, ADAPTIVE, 300.0, 600.0)
    assert len(late) <= 300 / QUIET_MAX + 1           # tens of seconds apart when quiet
    assert all(small and logs for _, small, logs in late)
    # A change makes it fast again; so does someone following it.
    clock.changed([A], 600.0)
    assert len(_pulls(clock, ADAPTIVE, 600.0, 610.0)) >= 9
    assert len(_pulls(clock, ADAPTIVE, 1000.0, 1010.0, followed=True)) >= 9
    assert len(_pulls(clock, ADAPTIVE, 1500.0, 1510.0)) <= 1


def test_polling_brings_the_heartbeat_along_with_a_pull_that_is_due_anyway() -> None:
    clock = PullClock(poll_interval=1.0, rescan=300.0)
    clock.observe([A], 0.0)
    _pulls(clock, ADAPTIVE, 0.0, 400.0)
    beats = []
    t = 400.0
    while t < 700.0:
        due = clock.due(ADAPTIVE, t, False, BEAT)
        if due:
            clock.pulled(due, t)
            beats.append((t, due.beat))
        t += 0.5
    # Every pull is a quiet task's pull: the beat rides along, it costs no session of its own.
    assert all(t2 - t1 >= QUIET_MAX / 2 for (t1, _), (t2, _) in zip(beats, beats[1:]))
    assert sum(b for _, b in beats) >= 300 / (BEAT + QUIET_MAX)


def test_the_local_transport_polls_every_interval() -> None:
    clock = PullClock(poll_interval=0.5, rescan=300.0)
    clock.observe([A, B], 0.0)
    assert len(_pulls(clock, POLL, 1000.0, 1010.0)) >= 19
    clock.observe([], 1010.0)
    assert len(_pulls(clock, POLL, 1010.0, 1130.0)) <= 7     # limits and heartbeat only
