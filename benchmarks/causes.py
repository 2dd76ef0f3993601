"""Likely causes of missed targets, found by profiling the daemons and the CLI with
pyinstrument and ``python -X importtime`` on the benchmark machine.  ``docs/benchmarks.md``
shows a cause only for a figure that misses its target in the run that writes the file;
the numbers next to it are always that run's own."""

from __future__ import annotations

CAUSES: dict[str, str] = {
    "submit, small project (50 files, 1 MB)": (
        "Likely cause: interpreter start-up plus imports, not the snapshot. The notes above show "
        "what `import ailabber.cli.main` alone costs and which packages weigh most: `ailabber/cli/main.py` "
        "imports every verb's module up front, `ailabber/cli/common.py` imports `ailabber.settings`, "
        "which imports PyYAML (the largest single import; the CLI needs it only to read `spool` from "
        "spoold.yaml), and a verb module pulls in psutil. Importing verbs lazily and reading "
        "spoold.yaml without PyYAML when the CLI only needs one key would remove most of it. The "
        "remaining gap to `python -c pass` is one fsync per copied file, per directory and for the "
        "commit (compare the AILABBER_FSYNC=0 figure in the notes)."),
    "submit, large project, fsync on (default)": (
        "Likely cause: the fsyncs are issued one file at a time. `snapshot._Copier.file` fsyncs each "
        "file right after copying it, so 2,000 synchronous flushes run back to back, and "
        "`Spool.commit` then walks the whole tree again with `fsutil.fsync_tree` (another open and "
        "fsync per file and per directory). `cp -a` followed by one `sync` (in the notes) writes the "
        "same bytes durably in a fraction of the time: copying everything first and flushing once "
        "(`syncfs` on the spool's filesystem, or fsyncs issued after all writes) would keep the "
        "durability and most of the speed."),
    "submit, large project, AILABBER_FSYNC=0 (context)": (
        "Likely cause: per-file work in Python. `plan_snapshot` stats every file and applies the "
        "ignore rules, `_Copier.file` reopens each file, copies it, re-checks size and mtime, sets "
        "mode and times, and `build_manifest` walks the copy again to list sizes; `cp -a` does one "
        "pass in C. This row has no fsync and is shown for context."),
    "burst, tasks/s until all have a job id (local transport)": (
        "Likely cause: everything per task is serial and durable. In remoted (profiled), each launch "
        "writes the record, `job.json`, the batch script, the record again and the published "
        "status and events, each an fsynced atomic write with a directory fsync, and runs one `sbatch`, "
        "one task after another in one thread; each intake fsyncs the upload tree and writes two more "
        "durable files. In spoold each task is one rsync for the files and one for the commit marker "
        "(two processes each with the local transport), and while tasks are active every pass (every "
        "0.2 s here) also runs two rsyncs pulling the status and logs of all of them and rewrites each "
        "changed status durably; in the profile these pulls took as much of spoold's time as the "
        "pushes. The notes give the split: when the last upload "
        "finished and when remoted published the last job id. Batching (one rsync for several tasks, "
        "one fsync of the state directory per pass, launching while the next intake runs) is where "
        "the time is."),
    "burst, tasks/s until all have a job id (ssh)": (
        "Likely cause: as for the local transport, plus the cost of each rsync over ssh. Every rsync "
        "run opens a new session on the multiplexed connection, and the rrsync forced command is a "
        "Python script that starts before the rsync server does; each task needs two such runs, and "
        "each pass two more for status and logs. With five students' spoolds, five sshd sessions and "
        "remoted on two cores, remoted's serial launches (see the local row) fall further behind; "
        "the notes give when the last upload finished and when the last job id was published."),
    "resubmission over ssh, one file changed: upload time": (
        "Likely cause: fixed costs per upload that do not shrink with the change. Each upload is two "
        "rsync runs over ssh (files, then the commit marker), each a new session running the rrsync "
        "Python wrapper on the server; rsync builds and sends the list of all 2,000 files, and with "
        "`--checksum` both sides read and hash every file. On loopback the first upload of the whole "
        "project takes only seconds, so these fixed costs are a large share of it; over a real "
        "network link the first upload would take far longer and the ratio would be far smaller."),
    "`ailabber list`, 10,000 tasks in the spool": (
        "Likely cause: the table's two \"ago\" columns. For every row `render.ago` calls "
        "`task.parse_iso`, which parses the timestamp with `time.strptime`; 20,000 strptime calls were "
        "the largest single cost in a profile of this command, more than reading and parsing the "
        "10,000 status files (which is what the floor does). Building a `TaskStatus` per task and the "
        "CLI's start-up imports (see the small submit row) add the rest. Parsing the fixed ISO format "
        "by slicing (or `datetime.fromisoformat`) would bring it under the limit."),
    "`ailabber status ID`, 10,000 tasks in the spool": (
        "Likely cause: interpreter start-up plus the CLI's imports (see the small submit row) and "
        "resolving the id by listing all three stage directories and matching 10,000 names."),
    "dispatch latency, submit -> running (local transport, Slurm)": (
        "Likely cause: the `ailabber submit` run itself and the daemons' serial durable writes (see "
        "the burst rows); the notes split submit -> job in squeue from Slurm's own start time."),
    "environment, same uv.lock again (warm cache)": (
        "Likely cause: a cache hit still runs `uv python find` and `uv python list` (two uv "
        "processes) to compute the interpreter identity that is part of the key, before "
        "`ready.json` is read."),
}
