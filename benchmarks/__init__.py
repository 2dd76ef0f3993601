"""ailabber's benchmarks: every figure measured against a floor in the same run.

Run ``uv run python -m benchmarks [--quick] [--json FILE]``.  Each module measures one
group of figures and returns ``Row`` objects (``benchmarks.common``); ``__main__`` starts
the shared infrastructure (a real Slurm, an sshd on loopback, Unix accounts), runs the
groups, prints the table and rewrites ``docs/benchmarks.md``.
"""
