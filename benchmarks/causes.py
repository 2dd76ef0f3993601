"""Likely causes of missed targets, found by profiling the CLI and the daemons (pyinstrument,
``python -X importtime``) on the benchmark machine.  ``docs/benchmarks.md`` shows a cause
only for a figure that misses its target in the run that writes the file; the numbers
next to it are always that run's own."""

from __future__ import annotations

CAUSES: dict[str, str] = {
    "submit, small project (50 files, 1 MB)": (
        "Likely cause: start-up, not the snapshot. In a profile the submit itself (validate, copy, "
        "manifest, commit) takes about 20 ms; the rest is the interpreter and the import graph of "
        "`ailabber.cli.main` (the notes give what importing it alone costs in this run, and its "
        "heaviest packages). `ailabber/cli/main.py` imports every verb's module up front, and with "
        "them standard-library modules such as argparse, subprocess, pathlib, enum, re and "
        "dataclasses (which imports inspect) for `TaskStatus`. Three times an empty interpreter "
        "leaves about 20 ms beyond its own start, less than those imports alone; importing only what "
        "`submit` needs (and nothing for the other verbs) is the way towards it. Without a bytecode "
        "cache (as a bare `uv sync` checkout runs on a machine with PYTHONDONTWRITEBYTECODE=1) the "
        "command is several times slower again (in the notes)."),
    "submit, large project, fsync on (default)": (
        "Likely cause: the copy itself, file by file in Python, plus the final flush. In a profile "
        "nearly all the time is in `snapshot._Copier.file`: opening the source and creating the copy "
        "of each of the 2,000 files (which `cp -a` has to do as well), then `fstat` twice, `fchmod` "
        "and `utime` per file; then `Spool.commit` flushes the filesystem once (`syncfs`). The notes "
        "give `cp -a` followed by `sync` for comparison. File creation on this machine's disk is slow "
        "and its timing varies a lot from run to run (and with other load: see the load average "
        "below), so this ratio moves between runs."),
    "submit, large project, AILABBER_FSYNC=0 (context)": (
        "Likely cause: as for the row above without the flush: per-file work in Python (planning "
        "with the ignore rules, reopening each file with `O_NOFOLLOW`, re-checking size and mtime, "
        "setting mode and times, then `build_manifest` walking the copy again), where `cp -a` does "
        "one pass in C. Shown for context: it has no durability."),
    "burst, tasks/s until all have a job id (local transport)": (
        "Likely cause: remoted handles the tasks of a burst one at a time, in one thread. The notes "
        "split the time: the uploads (batched by spoold) finish early, and remoted publishes the last "
        "job id well after. In a profile of remoted during the burst, the largest single cost was one "
        "`sbatch` process per task, run serially (as the student); the rest was per-task bookkeeping: "
        "the job spec and record written before each launch, the record and the `launching` status "
        "after it, each task's change to Slurm's pending reason saved and published on the next "
        "poll, and at intake an fsync of every uploaded file (`fsutil.fsync_tree`). The floor is "
        "the same number of bare `sbatch` runs, so ailabber's rate is bounded by the floor's rate "
        "minus this per-task work done in the same thread."),
    "burst, tasks/s until all have a job id (ssh)": (
        "Likely cause: the same serial launch loop in remoted as for the local transport, now "
        "sharing two cores with five students' ssh sessions: each rsync run over ssh starts a session "
        "on the multiplexed connection and the rrsync forced command (a Python script) before the "
        "rsync server, for every upload batch and for every status and log pull (two per pass per "
        "student while tasks are active). The notes show the uploads finishing later than with the "
        "local transport and remoted's last job id later still; slowing the students' polling from "
        "0.2 s to 1 s changed the rate only a little in a trial, so remoted's per-task work remains "
        "the main cost."),
    "resubmission over ssh, one file changed: upload time": (
        "Likely cause: fixed costs per upload that do not shrink with the change. Each upload is two "
        "rsync runs over ssh (files, then the commit marker), each a new session running the rrsync "
        "Python wrapper on the server; rsync builds and exchanges the list of all 2,000 files, and "
        "with `--checksum` both sides read and hash every file (the sender's copy and the previous "
        "task's files it links against). On loopback the first upload of the whole project takes "
        "only a second or two, so these fixed costs are a large share of it; over a real network "
        "link the first upload takes far longer and the ratio is far smaller (the full-size run, "
        "500 MB, comes closer to the target than the 200 MB of `--quick`)."),
    "`ailabber list`, 10,000 tasks in the spool": (
        "Likely cause: per-task work in Python on top of reading the files (which is what the floor "
        "does): a `TaskStatus` built from each status, two \"ago\" columns formatted per row, and the "
        "CLI's start-up imports (see the small submit row)."),
    "`ailabber status ID`, 10,000 tasks in the spool": (
        "Likely cause: interpreter start-up plus the CLI's imports (see the small submit row), then "
        "resolving the id by listing the three stage directories and matching 10,000 names."),
    "dispatch latency, submit -> running (local transport, Slurm)": (
        "Likely cause: the `ailabber submit` run itself (see the small submit row) and the daemons' "
        "passes; the notes split submit -> job in squeue from Slurm's own start time."),
    "idle spoold: CPU": (
        "Likely cause: wake-ups rather than work. An idle pass lists three directories (tens of "
        "microseconds when passes run back to back), but on this virtual machine every wake-up of an idle process is charged "
        "several milliseconds (the floor, which does nothing but wake and list, shows how much). "
        "spoold wakes more than once per pass: its own directory scans open the watched directories, "
        "and watchdog's thread wakes to read and dispatch those open/close inotify events, which the "
        "handler then ignores (`watch._Hint`); every 60 s it also runs rsync to pull the published "
        "upload limits. Watching only for changes (no open/close events) would remove the extra "
        "wake-ups."),
    "idle remoted: CPU": (
        "Likely cause: as for spoold, wake-ups rather than work: the pass every `rescan_interval`, "
        "watchdog's thread woken by the open/close events of remoted's own scans of `users/` and each "
        "user's `incoming/commit` and `requests`, and `heartbeat.json` replaced (with an fsync) every "
        "5 s."),
    "environment, same uv.lock again (warm cache)": (
        "Likely cause: a cache hit still runs `uv python find` and `uv python list` (two uv "
        "processes) to compute the interpreter identity that is part of the key, before "
        "`ready.json` is read."),
}
