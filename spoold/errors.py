"""Transfer failures in plain words, and whether trying again can help.

A student reading ``ailabber status`` should learn "the cluster did not accept your key",
not "rsync exit 255"; and spoold should stop retrying only what can never succeed.
"""

from __future__ import annotations

#: (substring of rsync/ssh's stderr, plain words, permanent?)
KNOWN: tuple[tuple[str, str, bool], ...] = (
    ("permission denied (publickey", "the cluster did not accept your ssh key", False),
    ("host key verification failed", "the cluster's host key is not the expected one", False),
    ("could not resolve hostname", "the cluster's host name cannot be resolved", False),
    ("connection refused", "the cluster refused the connection (is its sshd running on that port?)", False),
    ("connection timed out", "the cluster did not answer (network down?)", False),
    ("operation timed out", "the cluster did not answer (network down?)", False),
    ("no route to host", "no network route to the cluster", False),
    ("network is unreachable", "the network is unreachable", False),
    ("timeout in data send/receive", "the transfer stalled (network down?)", False),
    ("io timeout", "the transfer stalled (network down?)", False),
    ("broken pipe", "the connection broke during the transfer", False),
    ("connection reset", "the connection broke during the transfer", False),
    ("connection closed", "the connection broke during the transfer", False),
    ("has been disabled on this server", "the cluster does not allow this transfer (rrsync option)", True),
    ("unsafe arg", "the cluster refused a path outside your directory", True),
    ("do not use ..", "the cluster refused a path outside your directory", True),
    ("no space left on device", "the cluster's disk is full", False),
    ("disk quota exceeded", "your disk quota on the cluster is exceeded", False),
    ("overflows max-path len", "a path in the task is too long for rsync", True),
    ("file name too long", "a path in the task is too long for rsync", True),
)

#: rsync repeats whole paths in its messages; a status line keeps this much of one.
MAX_DETAIL = 200

#: rsync exit codes that no retry can fix: syntax/usage, protocol incompatibility,
#: unsupported action.
PERMANENT_CODES = {1, 2, 4}


class TransportError(RuntimeError):
    """A transfer failed; ``str()`` is one plain line, ``permanent`` says whether to stop."""

    def __init__(self, message: str, *, permanent: bool = False, code: int | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.code = code


def classify(what: str, code: int, stderr: str) -> TransportError:
    low = stderr.lower()
    for needle, words, permanent in KNOWN:
        if needle in low:
            return TransportError(f"{what}: {words}", permanent=permanent, code=code)
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    detail = lines[0] if lines else "no message"
    if len(detail) > MAX_DETAIL:
        detail = detail[:MAX_DETAIL - 1] + "…"
    return TransportError(f"{what}: rsync exit {code}: {detail}", permanent=code in PERMANENT_CODES, code=code)
