"""A hostile student races remoted (as root) on her own tasks, with atomic swaps.

Two real accounts share one cluster root: the attacker ``ailabber-mal`` and the victim
``ailabber-vic``, whose finished task carries a unique secret in its command, output and
result message.  While remoted accepts, launches, polls and finishes the attacker's
tasks, her swap loop (``swaploop.py``, running as her uid, never as root) flips paths in
her own area between the real directory or file and a symlink, hundreds of times in a
few seconds, with ``renameat2(RENAME_EXCHANGE)``.

Every test asserts only that an effect *never* happened (whatever the interleaving):
nothing created in a root-owned directory, nothing in the victim's tree changed, no byte
of the victim's secret anywhere the attacker can read, no victim command run as the
attacker.  Timing decides only how likely an unsafe remoted is caught, never whether a
safe one passes.  Each docstring says which unsafe step the test catches.

One remoted serves the whole module; each test uses fresh task ids, and the top of the
attacker's area is repaired after a test that swaps it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import student_python  # noqa: F401
from tests.security.hostile_site import (
    ATTACKER,
    VICTIM,
    Site,
    SwapLoop,
    VictimTask,
    changes,
    entries,
    files_containing,
    listing,
    pw,
    root_only_dir,
    swap,
)


@pytest.fixture(scope="module")
def site(student_python: Path) -> Iterator[Site]:  # noqa: F811
    s = Site(student_python, "ailabber-sec-races-")
    s.start()
    try:
        s.victim = VictimTask(s)  # type: ignore[attr-defined]
        yield s
    finally:
        s.stop()


class Watch:
    """What the test compares before and after one attack."""

    def __init__(self, site: Site):
        self.site = site
        self.victim: VictimTask = site.victim  # type: ignore[attr-defined]
        self.rootdir = root_only_dir(site.base, f"root-only-{uuid.uuid4().hex[:8]}")
        self.victim_before = listing(site.area(VICTIM))
        self.stop_file = site.base / f"stop-{uuid.uuid4().hex[:8]}"
        self.leaked_before = set(files_containing(site.area(ATTACKER), self.victim.secret))
        self.mark = site.markers / f"ran-by-uid-{pw(ATTACKER).pw_uid}"
        self.mark.unlink(missing_ok=True)     # left by an earlier test of the module
        self.statuses: dict[str, dict[str, Any] | None] = {}

    def run_attack(self, loop: SwapLoop, push: Any, ids: list[str], seconds: float) -> dict[str, Any]:
        """Let the loop race while the tasks are pushed and worked on; stop it once they
        are all final (or its time is up), then let the rest settle."""
        push()
        self.site.settle(ATTACKER, ids, timeout=seconds)
        self.stop_file.touch()
        counts = loop.result()
        self.statuses = self.site.settle(ATTACKER, ids, timeout=20)
        return counts

    def assert_nothing_happened(self) -> None:
        """Collect every effect that happened during this test (things already there
        from an earlier test of the module do not count), then fail naming all of them."""
        site, victim = self.site, self.victim
        found = []
        made = entries(self.rootdir)
        if made:
            found.append(f"remoted (as root) created {made} in the root-owned directory {self.rootdir}")
        diff = changes(self.victim_before, listing(site.area(VICTIM)))
        if diff:
            found.append("the victim's tree changed:\n  " + "\n  ".join(diff))
        now = files_containing(site.area(ATTACKER), victim.secret)
        leaked = sorted(path for key, path in now.items() if key not in self.leaked_before)
        if leaked:
            found.append(f"the victim's secret reached {len(leaked)} file(s) the attacker can read: "
                         + ", ".join(str(Path(f).relative_to(site.area(ATTACKER))) for f in leaked[:12]))
            messages = {st.get("message") for st in self.statuses.values() if st and victim.secret in str(st)}
            if messages:
                found.append(f"her published status says: {sorted(map(str, messages))[:2]}")
        if self.mark.exists():
            found.append("the victim's command ran as the attacker (the marker names her uid)")
        if not site.alive():
            found.append("remoted died")
        assert not found, "\n".join(found)

    def launched(self) -> int:
        return sum(1 for st in self.statuses.values() if st and st.get("job_id"))


@pytest.fixture
def watch(site: Site) -> Iterator[Watch]:
    w = Watch(site)
    yield w
    w.stop_file.touch()
    site.repair_area(ATTACKER)


def _build(site: Site, n: int, cmd: str) -> list[tuple[str, Path]]:
    return [site.build([cmd]) for _ in range(n)]


def _pusher(site: Site, built: list[tuple[str, Path]], gap: float = 0.05) -> Any:
    def push() -> None:
        for task_id, task_dir in built:
            site.upload(ATTACKER, task_id, task_dir)
            time.sleep(gap)
    return push


# --------------------------------------------------------------------------- 1. paths root follows


def test_swapped_run_and_outbox_dirs_of_a_task_redirect_nothing(site: Site, watch: Watch) -> None:
    """``tasks/<id>/run`` (hers), ``outbox/<id>`` and ``outbox/<id>/logs`` swapped for
    symlinks to a root-owned directory (even tasks) or to the victim's task (odd tasks)
    while the task is launched, polled and finished; every fourth task's run directory
    instead becomes a symlink to the victim's for good once her job wrote its result.

    Catches: the local scheduler creating ``run/job.lock`` or ``logs/wrapper.log`` by path
    as root (a root-owned file in the root-only directory, or in the victim's tree), and
    reading ``run/result.json``/``started.json``/``job.lock`` by path (the victim's
    result, with its secret, published as the attacker's status).  ``outbox/<id>`` is
    root's, so those two swaps are refused by the kernel today; they stay in to catch a
    regression that hands it to the student."""
    v = watch.victim
    built = _build(site, 12, "sleep 0.3")
    swaps = []
    setup: list[list[str]] = []
    for i, (task_id, _) in enumerate(built):
        to_root = i % 2 == 0
        run = site.task_dir(ATTACKER, task_id) / "run"
        out = site.outbox(ATTACKER, task_id)
        if i % 4 == 3:
            # Once her job has written its result, her run directory becomes, for good,
            # a symlink to the victim's: the read of the result follows it or not.
            swaps.append(swap(run, v.run, sticky=True, after=run / "result.json"))
        else:
            swaps.append(swap(run, watch.rootdir if to_root else v.run, plant=True))
        swaps.append(swap(out, watch.rootdir if to_root else v.outbox, plant=True))
        swaps.append(swap(out / "logs", watch.rootdir if to_root else v.logs, plant=True))
    loop = SwapLoop(ATTACKER, swaps, seconds=10, hold=0.002, setup=setup, stop_file=watch.stop_file)
    counts = watch.run_attack(loop, _pusher(site, built), [t for t, _ in built], seconds=10)
    watch.assert_nothing_happened()
    run_swaps = sum(c["ok"] for a, c in counts["per_swap"].items() if a.endswith("/run"))
    assert run_swaps >= 20, f"the attack hardly raced: {counts}"
    assert watch.launched() >= 1, f"no task of the attacker's was launched: {watch.statuses}"


@pytest.mark.parametrize("which,phase", [("tasks", "launch"), ("tasks", "poll"), ("outbox", "launch")])
def test_swapped_tasks_or_outbox_dir_redirects_nothing(site: Site, watch: Watch, which: str, phase: str) -> None:
    """``users/<her>/tasks`` or ``users/<her>/outbox`` (root's directories, but in her
    area, so she may rename them) flipped with a symlink to a directory of hers in which
    each task id leads on: for even tasks to a root-owned directory
    (``<id>/run`` or ``<id>/logs``), for odd tasks to the victim's task directory or
    outbox.  ``launch``: from the first upload on, through accept and launch (remoted
    replaces a symlinked ``tasks``/``outbox`` with a fresh directory, she swaps her own
    back); ``poll``: only once all her tasks are accepted and launched, while they run
    and end.

    Catches any path remoted builds from ``<root>/users/<her>/tasks|outbox/...`` and uses
    as root without directory handles: ``job.lock``/``wrapper.log`` created in the
    root-only directory or the victim's logs (the attacker's wrapper then appends to the
    victim's ``wrapper.log``), the victim's ``result.json`` read as hers, the victim's
    ``task.toml`` read as hers at accept, her status published into the victim's outbox."""
    v = watch.victim
    area = site.area(ATTACKER)
    lair = area / f".lair-{which}"
    built = _build(site, 12, "sleep 0.5" if phase == "launch" else "sleep 1.5")
    setup: list[list[str]] = [["mkdir", str(lair)]]
    for i, (task_id, _) in enumerate(built):
        if i % 2 == 0:
            setup += [["mkdir", str(lair / task_id)],
                      ["symlink", str(watch.rootdir), str(lair / task_id / ("run" if which == "tasks" else "logs"))]]
        else:
            setup += [["symlink", str(v.dir if which == "tasks" else v.outbox), str(lair / task_id)]]
    last = built[-1][0]
    after = site.outbox(ATTACKER, last) / "status.json" if phase == "poll" else None
    loop = SwapLoop(ATTACKER, [swap(area / which, lair, after=after)], seconds=12, hold=0.003, setup=setup,
                    stop_file=watch.stop_file)
    counts = watch.run_attack(loop, _pusher(site, built), [t for t, _ in built], seconds=12)
    watch.assert_nothing_happened()
    assert counts["exchanges"] >= 20, f"the attack hardly raced: {counts}"


# --------------------------------------------------------------------------- 2. task.toml check-then-use


def test_task_toml_swapped_for_the_victims_never_runs_the_victims_commands(site: Site, watch: Watch) -> None:
    """The attacker's uploaded ``task.toml`` flips, as fast as she can, with a symlink to
    the victim's ``task.toml``: for even tasks from the moment the upload lands in
    ``incoming/tmp/<id>/`` and on after the accept in ``tasks/<id>/``, for odd tasks only
    after the accept (so the upload's check sees her real file).  Her own ``task.toml``
    asks for a GPU this cluster does not have, so her task fails at once unless remoted
    read the victim's (no GPU) instead.

    Catches remoted checking ``task.toml`` (lstat: a regular file) and then reading it
    again by path (``load_task_config``): the read follows the symlink, and the victim's
    command runs in the attacker's task as the attacker (its marker names her uid, its
    output with the secret lands in her logs, its command line in her status).  The
    window is a few microseconds per task, so this is a numbers game: against a remoted
    that reads by path, roughly one task in twenty is caught on a loaded two-core
    machine, and 96 cheap tasks make a miss unlikely; a remoted that reads the file once,
    from a handle opened without following symlinks, passes whatever the interleaving."""
    v = watch.victim
    built = [site.build(["echo attacker-own-command"], gpus=1) for _ in range(96)]
    swaps = []
    for i, (task_id, _) in enumerate(built):
        read = site.outbox(ATTACKER, task_id) / "status.json"     # remoted has read task.toml by then
        accepted = site.task_dir(ATTACKER, task_id) / "task.toml"
        uploaded = site.area(ATTACKER) / "incoming" / "tmp" / task_id / "task.toml"
        # One swap follows the file from incoming/ into tasks/; its partner lives outside
        # the task directory, from which remoted removes strangers at the accept.
        swaps.append(swap([uploaded, accepted] if i % 2 == 0 else [accepted], v.toml,
                          tmp=site.area(ATTACKER) / f".toml-{task_id}", until=read, when=uploaded.parent))
    loop = SwapLoop(ATTACKER, swaps, seconds=12, hold=0.0, stop_file=watch.stop_file)
    counts = watch.run_attack(loop, _pusher(site, built, gap=0.02), [t for t, _ in built], seconds=12)
    watch.assert_nothing_happened()
    assert counts["exchanges"] >= 100, f"the attack hardly raced: {counts}"


# --------------------------------------------------------------------------- 3. forged job records


def test_result_and_started_swapped_for_the_victims_never_publish_her_secret(site: Site, watch: Watch) -> None:
    """While the attacker's job runs and after it ends, ``run/result.json`` is kept a
    symlink to the victim's ``result.json`` (re-planted whenever the wrapper writes a
    real one), and ``run/started.json`` and ``run/job.lock`` flip with symlinks to the
    victim's.

    Catches the local scheduler reading ``result.json``/``started.json`` by a path that
    follows a symlink (as root): the victim's result message, with her secret, is
    published as the attacker's status; and a ``job.lock`` check that a symlink fools
    into "the wrapper has exited" while it still runs."""
    v = watch.victim
    built = _build(site, 6, "sleep 0.5")
    swaps = []
    for task_id, _ in built:
        run = site.task_dir(ATTACKER, task_id) / "run"
        swaps.append(swap(run / "result.json", v.run / "result.json", plant=True, sticky=True))
        swaps.append(swap(run / "started.json", v.run / "started.json", plant=True))
        swaps.append(swap(run / "job.lock", v.run / "job.lock"))
    loop = SwapLoop(ATTACKER, swaps, seconds=10, hold=0.002, stop_file=watch.stop_file)
    counts = watch.run_attack(loop, _pusher(site, built), [t for t, _ in built], seconds=10)
    watch.assert_nothing_happened()
    assert counts["exchanges"] >= 20, f"the attack hardly raced: {counts}"
    assert watch.launched() >= 1, f"no task of the attacker's was launched: {watch.statuses}"
