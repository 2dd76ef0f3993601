"""Likely causes of missed targets, found by profiling the CLI and the daemons (pyinstrument,
``python -X importtime``) on the benchmark machine.  ``docs/benchmarks.md`` shows a cause
only for a figure that misses its target in the run that writes the file; the numbers
next to it are always that run's own."""

from __future__ import annotations

CAUSES: dict[str, str] = {
    "submit, small project (50 files, 1 MB)": (
        "Likely cause: Python's own start-up cost for a command of this kind, not the snapshot. The "
        "notes give, from this run, what importing the standard-library modules any Python command "
        "that parses arguments and reads TOML needs (argparse, json, pathlib, tomllib) costs on its "
        "own: about three times the floor already, so the target cannot be met by a CPython command "
        "that uses them. The rest is ailabber's own modules (about 10 ms), the snapshot, manifest "
        "and status writes, and one flush of the task before its rename. Since the previous run the "
        "command imports only the module of the verb being run, no command imports dataclasses (and "
        "with it inspect), secrets/hashlib, socket, shutil or difflib, and the task's writes are one "
        "group commit instead of a fsync per file (see the table of changes below). Without a "
        "bytecode cache (a bare `uv sync` checkout on a machine with PYTHONDONTWRITEBYTECODE=1) the "
        "command is several times slower again (in the notes)."),
    "submit, large project, fsync on (default)": (
        "Likely cause: durability. The floor, `cp -a`, flushes nothing; submit makes the whole task "
        "durable before the rename that commits it (one `syncfs`), which writes the project's bytes to "
        "the disk. The notes give `cp -a` followed by `sync` for comparison, and the row below gives "
        "the same submit without the flush. File creation on this machine's disk is slow and its "
        "timing varies a lot from run to run (and with other load: see the load average below), so "
        "this ratio moves between runs."),
    "submit, large project, AILABBER_FSYNC=0 (context)": (
        "Likely cause: per-file work in Python where `cp -a` does one pass in C: planning with the "
        "ignore rules, reopening each file with `O_NOFOLLOW`, re-checking its size and mtime after "
        "the copy, setting mode and times. The manifest is now built from the checked plan instead "
        "of a second walk of the copy. Shown for context: it has no durability."),
    "burst, tasks/s until all have a job id (local transport)": (
        "Likely cause: per-task bookkeeping in remoted around each `sbatch`, and `sbatch` itself not "
        "overlapping on two cores. The notes split the time: spoold's batched uploads finish early, "
        "remoted publishes the last job id well after. remoted now records a user's accept intents "
        "with one flush per scan, hands each student's new tasks to four `sbatch` worker threads "
        "while it accepts the next student's, reads no wrapper files for jobs still queued in Slurm, "
        "writes its records as compact JSON and one record per launch instead of three; in a "
        "profile the largest costs left are remoted's own Python work per task (one core) and "
        "replacing each task's private record and public status by rename (four records and three "
        "statuses per task: accept intent, launch intent, launched, Slurm's pending reason). On ext4 a rename over an existing file starts writeback of the new file "
        "(`auto_da_alloc`), which made each replacement cost 0.5 ms or more under the burst's load. "
        "The floor is bare `sbatch` with none of this (no upload, no record, no status)."),
    "burst, tasks/s until all have a job id (ssh)": (
        "Likely cause: the same per-task work in remoted as for the local transport, now sharing two "
        "cores with five students' ssh sessions: every upload batch and every status and log pull "
        "(two per pass per student while tasks are active) is an rsync over the multiplexed ssh "
        "connection that starts the rrsync forced command (a Python script) before the rsync server. "
        "The notes show the uploads finishing later than with the local transport and remoted's last "
        "job id later still."),
    "resubmission over ssh, one file changed: upload time": (
        "Likely cause: fixed costs per upload that do not shrink with the change. Each upload is two "
        "rsync runs over ssh (files, then the commit marker), each starting the rrsync Python wrapper "
        "on the server; rsync builds and exchanges the list of all 2,000 files and creates 2,000 hard "
        "links on the cluster side. `--checksum` (which read and hashed every file on both sides) is "
        "now used only when a file was edited within the same second as the previous upload's copy, "
        "so the second upload compares sizes and times; the first upload, the floor, no longer hashes "
        "either and became faster too. On loopback the first upload of the whole project takes only "
        "a few seconds, so the fixed costs are a large share of it; over a real network link the "
        "first upload takes far longer and the ratio is far smaller."),
    "`ailabber list`, 10,000 tasks in the spool": (
        "Likely cause: per-task work in Python on top of reading the files (which is what the floor "
        "does): a `TaskStatus` built from each status and two \"ago\" columns formatted per row, plus "
        "the CLI's start-up (see the small submit row). Paths are now plain strings, dates are parsed "
        "once per day and each status file is read with one `read`."),
    "`ailabber status ID`, 10,000 tasks in the spool": (
        "Likely cause: interpreter start-up plus the CLI's imports (see the small submit row), then "
        "resolving the id by listing the three stage directories and matching 10,000 names."),
    "dispatch latency, submit -> running (local transport, Slurm)": (
        "Likely cause: the `ailabber submit` run itself (see the small submit row) and the daemons' "
        "passes; the notes split submit -> job in squeue from Slurm's own start time."),
    "idle spoold: CPU": (
        "Likely cause: wake-ups rather than work. An idle pass lists three directories (tens of "
        "microseconds when passes run back to back), but on this virtual machine every wake-up of an "
        "idle process is charged several milliseconds (the floor, which does nothing but wake and "
        "list, shows how much); every 60 s spoold also runs rsync to pull the published upload "
        "limits. The watchers now ask inotify only for events that can mean new work, not the "
        "open/close events of the daemons' own scans. The figure grows with other load on the "
        "machine (see the load average below)."),
    "idle remoted: CPU": (
        "Likely cause: as for spoold, wake-ups rather than work: the pass every `rescan_interval` and "
        "`heartbeat.json` replaced (with an fsync) every 5 s. The figure grows with other load on "
        "the machine (see the load average below)."),
    "environment, same uv.lock again (warm cache)": (
        "Likely cause: a cache hit still runs `uv python find` (one uv process) to learn which "
        "interpreter the project would get, part of the key, before `ready.json` is read; the floor "
        "depends on how fast numpy downloads in that run."),
}


#: Changes made after profiling, with the figure they were made for as the run of
#: 2026-11-28 13:06 UTC (full mode, same machine) measured it.  The report prints this
#: run's figure beside each, so "after" is always a fresh measurement.
BEFORE_AFTER: tuple[tuple[str, str, str], ...] = (
    ("submit, small project (50 files, 1 MB)", "106 ms (9.01x)",
     "only the verb's module is imported; TaskStatus and the config/settings records without "
     "dataclasses; no secrets, socket, shutil or difflib at start-up; the task's writes flushed "
     "once before the commit rename"),
    ("submit, large project, AILABBER_FSYNC=0 (context)", "1.21 s (1.35x)",
     "the manifest comes from the checked snapshot plan, not a second walk of the copy"),
    ("environment, same uv.lock again (warm cache)", "34 ms (0.072x)",
     "what uv says about the interpreter is kept in the environment cache while the interpreter "
     "file is unchanged: one uv process per reuse instead of two"),
    ("`ailabber list`, 10,000 tasks in the spool", "577 ms",
     "string paths per task, dates parsed once per day, one read per status file, faster start-up"),
    ("`ailabber status ID`, 10,000 tasks in the spool", "102 ms", "faster start-up (as submit)"),
    ("burst, tasks/s until all have a job id (local transport)", "48.9 tasks/s (0.296x)",
     "one flush per scan for a user's accept intents; four sbatch worker threads overlapping the "
     "next student's intake; no wrapper-file reads for jobs queued in Slurm; compact JSON records, "
     "fewer of them per task; the manifest check without realpath; no --checksum for batched "
     "uploads; the figure is now the median of three bursts"),
    ("burst, tasks/s until all have a job id (ssh)", "27.3 tasks/s (0.169x)", "as above"),
    ("resubmission over ssh, one file changed: upload time", "575 ms (0.148x)",
     "--checksum only when an edit within one second could fool rsync's quick check"),
    ("idle spoold: CPU", "0.933 %",
     "inotify asked only for events that can mean new work (the before run shared the machine with other load)"),
    ("idle remoted: CPU", "0.583 %", "as above"),
)


#: Rows that got worse with the work that makes remoted safe to run as root beside
#: students, and why.  Shown in every run's report next to this run's own figures.
SECURITY_COSTS = """\
## What running safely as root costs

Before: the full run of 2026-11-28 15:15 UTC (same machine). These rows got worse with the
changes that make remoted safe beside hostile students (see the trust model in
docs/trust-model.md), for these reasons:

| figure | before | first run after (2026-11-29 17:08 UTC) | why |
|---|---|---|---|
| burst, tasks/s until all have a job id (local transport) | 0.588x | 0.481x (a burst-only run after the intake was trimmed: 0.447x; the figure moves by about 0.05 between runs) | Every access to a student's directory is now a walk of directory handles from the root that follows no symlink (`open_beneath`, `SafeDir.sub`), with an owner check on what it opened: about 45 opens per task where a path was opened once, at roughly 75 µs per open on this machine's disk. Each upload's disk use is measured through its handle before it is taken (the per-student quota), its identity is checked again after the accepting rename (a swap in between is refused), `task.toml` and `meta.json` are read through handles and owner-checked, and the job spec travels inside the batch script. The intake now checks an upload through one open handle and reuses the task directory's handle for its files. |
| burst, tasks/s until all have a job id (ssh) | 0.277x | 0.304x (burst-only run: 0.242x) | The same per-task costs; the ssh figure moves more between runs than it changed. |
| submit, large project, fsync on (default) | 1.52x | 1.94x | The snapshot copies only the data of each file (holes of a sparse file stay holes, `SEEK_DATA`/`SEEK_HOLE` per file), which is what keeps a 1 GiB sparse file from taking 1 GiB twice; without the flush the same submit improved (1.17x to 1.08x), so most of the change is the flush's cost on this disk, which varies between runs. |
| dispatch latency, submit -> running (local transport, Slurm) | 1.21x | 1.38x | The accept's extra checks (above) and the handle-based reads of the job's records; still well within its target. |
"""


#: The reshaping into packages by concern (ailabber/model, storage, daemonkit, workstation;
#: remoted by act; the test bed), measured A/B against the commit before it.
RESHAPE_AB = """\
## The package layout's cost: A/B against the flat layout

The rows most likely to move with the reshaping into packages by concern, measured four
times on 2026-11-29 between 20:02 and 20:14 UTC, in alternation (flat layout, packaged, flat, packaged; same
machine, nothing else running), ratios to each run's own floor:

| figure | flat layout | packaged | why |
|---|---|---|---|
| submit, small project (50 files, 1 MB) | 5.79x, 5.93x | 6.41x, 6.21x | Worse by about 0.4x of `python -c pass` (4 to 6 ms): the submit path imports 28 of ailabber's modules instead of 22 (four package `__init__` files, each a directory the import system lists once, and the config split into the pure parse and the workstation's file checks). Kept: the layout is what a reader follows; the target was already missed for start-up reasons (see above). |
| submit, large project, AILABBER_FSYNC=0 (context) | 1.00x, 1.14x | 1.24x, 1.18x | Within the spread of file creation on this disk (the fsync-on row moved the other way: 1.71x, 1.58x before; 1.52x, 1.41x after). |
| burst, tasks/s until all have a job id (local transport) | 0.400x, 0.514x | 0.492x, 0.434x | Noise. |
| burst, tasks/s until all have a job id (ssh) | 0.256x, 0.277x | 0.300x, 0.256x | Noise. |
| resubmission over ssh, one file changed: upload time | 0.121x, 0.136x | 0.138x, 0.124x | Noise. |

`ailabber list` with 10,000 tasks, timed the same way (median of 9, twice each): 351 and
446 ms flat, 348 and 329 ms packaged. The full run above was made on a slower day for
this machine (every floor is 20 to 40 % above the run of 2026-11-28).
"""


STUDENT_FEATURES = """\
## What the students' features cost

Before: the full run of 2026-11-29 19:58 UTC. After: the full run of 23:51 UTC, same
machine, after names, `last`, globs in `run.logs`/`run.results`, `.gitignore` rules and
warnings at submit, `--dry-run`, shared snapshot files, retention, notifications, job
limits checked at submit, upload progress and queue places. Rows that got worse:

| figure | before | after | why |
|---|---|---|---|
| submit, small project (50 files, 1 MB) | 99 ms (5.99x) | 115 ms (6.77x) | Taken back since (see the next section): the full run of 2026-11-30 03:34 UTC gave 74 ms (5.77x). The submit path no longer imports remoted's settings, the retention planning, the job limits (unless limits.json exists) or the glob compiler (unless the config names logs or results), and the CLI's garbage collector runs after 100,000 allocations instead of 700 (start-up creates tens of thousands of objects that live as long as the command, and about 5 ms of a small submit went to scanning them). An A/B in alternation with the code before the students' features (200 pairs, bytecode cached, AILABBER_FSYNC=0) gave a median difference of +0.6 ms (quartiles -3.2 and +6.8 ms): none. |
| submit, large project, fsync on (default) | 1.31 s (1.54x) | 964 ms (1.75x) | Faster in time; the ratio grew because this run's floor (`cp -a`) was faster (849 to 552 ms). Each submit now also records where each file came from (`sources.json`: one `stat` per file, which lets the next submit share unchanged files) and looks at the plan for likely mistakes (about 4 ms for 5,000 entries). |
| `ailabber status ID`, 10,000 tasks in the spool | 123 ms | 140 ms | The same start-up growth as submit, and `status` now reads `outbox/queue.json` and the notice record; within its 0.15 s target. |
| spoold start-up + first pass, 10,000 tasks | 168 ms | 320 ms | spoold's retention runs at start-up: it lists `done/` and reads the status of every task old enough to go (here: all 10,000 are finished); within its 3 s target. |
| idle spoold: CPU | 0.017 % | 0.050 % | One more `listdir` per pass (the notice queue); at this level the figure is noise. |
| status freshness, Slurm change -> `ailabber status` (local) | 264 ms (4.99x) | 280 ms (5.34x) | `outbox/queue.json` travels in the same rsync run as the statuses; within the spread of this row. |
"""


#: The scale group before the gate: the full run of 2026-11-30 02:11 UTC (same machine),
#: keys pinned with rrsync and spoold pulling every poll_interval (1 s).  Shown next to
#: this run's figures, with keys pinned by ailabber-gate.
SCALE_BEFORE: tuple[tuple[str, str], ...] = (
    ("scale, 1 student: login-node CPU per active student", "116.0 ms/s (1.77 sessions/s, 65 ms each)"),
    ("scale, 1 student: freshness, job end -> local spool (ssh)", "897 ms (p95 1.24 s)"),
    ("scale, 1 student: workstation CPU per active student", "29.6 ms/s"),
    ("scale, 10 students: login-node CPU per active student", "84.9 ms/s (1.59 sessions/s, 53 ms each)"),
    ("scale, 10 students: freshness, job end -> local spool (ssh)", "985 ms (p95 1.48 s)"),
    ("scale, 10 students: workstation CPU per active student", "21.0 ms/s"),
    ("scale, 50 students: login-node CPU per active student",
     "25.9 ms/s (0.50 sessions/s: the machine was saturated, load average 57.7)"),
    ("scale, 50 students: freshness, job end -> local spool (ssh)", "11.47 s (p95 16.45 s)"),
    ("scale, 50 students: workstation CPU per active student", "6.4 ms/s (saturated, as above)"),
)

SCALE_INTRO = """\
## A course on one login node: before and after the gate

Before: the full run of 2026-11-30 02:11 UTC, same machine, every student's key pinned
with rrsync and spoold pulling status and logs every `poll_interval` (1 s): about 1.6
ssh sessions per second per student with a task running, each costing the login node
50 to 65 ms of CPU (sshd's session, rrsync's Python start, rsync). At 50 students that is
more than the machine's two cores: every process slowed down, sessions came three times
less often, and freshness fell to 11 s. After: this run, keys pinned with
`ailabber-gate`, spoold pulling on notice (`docs/scaling.md` has the cost model). The
same machine carries the workstation side too (the spoolds), so the "before" rows at 50
students show the saturation of both."""


STAFF_AND_SCALE = """\
## What the staff's features and the change notices cost

Before: the full run of 2026-11-29 23:51 UTC. After: the full run of 2026-11-30 03:34
UTC, same machine, after `ailabber admin` (staff requests remoted reads every pass, holds,
per-student limits, records that keep their history and are shared with the staff's
group, cluster retention), the dashboards, and the change notices (`ailabber-gate`,
spoold's pull clock). Rows that got worse:

| figure | before | after | why |
|---|---|---|---|
| submit, large project, fsync on (default) | 964 ms (1.75x) | 715 ms (2.26x) | Faster in time; the floor (`cp -a`) was faster still in this run (552 to 316 ms). Nothing on this path changed. |
| remoted start-up + first pass, 10,000 done records | 182 ms | 232 ms | At start remoted hands `state/` and every student's record directories to the staff's group (one `chmod`/`chown` each) and lists `done/` for the cluster's retention (ids only: a record is read only when its id dates it before the cutoff; before that change the row was 589 ms). Within its 3 s target. |
| idle remoted: CPU | 0.033 % | 0.100 % | One more directory watched and listed per pass (`admin/requests/`); at this level the figure is noise. |
| burst, tasks/s until all have a job id (local transport) | 0.463x | 0.293x (0.400x in a burst-only run right after) | Not profiled yet. Likely: spoold pulls before every push pass again (a restarted spoold must learn the cluster's limits before it sends), so during a burst uploads wait behind the statuses of every task already sent; and remoted now reads the staff's requests and looks up each student's limits every pass. To profile next. |
| burst, tasks/s until all have a job id (ssh) | 0.257x | 0.175x (0.196x in a burst-only run) | The same, and this group still pins the students' keys with plain rrsync, so spoold runs its polling fallback: each pull is an rsync session, and rrsync lets one session at a time into a student's directory, so pulls and uploads wait for each other. The recommended pinning is the gate (see the section on a course on one login node); this group is to measure it next. |
| resubmission over ssh, one file changed: upload time | 0.102x | 0.108x | Within the spread of this row (0.121x to 0.138x in earlier runs). |
"""
