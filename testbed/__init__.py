"""The real things tests and benchmarks run against, started and torn down by the caller:
a single-node Slurm (``slurm_cluster``, with its configuration in ``slurm_conf`` and its
processes in ``slurm_processes``), an sshd on loopback (``sshd``), real Unix users
(``unix_users``), two hosts in network namespaces (``netns``), stray processes a job leaves
behind (``strays``), and a whole workstation-plus-cluster pipeline in one directory
(``pipeline``). Nothing here is a fake: each module drives the real program."""
