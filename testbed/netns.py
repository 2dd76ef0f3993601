"""Two hosts on one machine: network namespaces joined by a veth pair, made and removed by
the test itself.  Addresses exist only inside those namespaces."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess


def available() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "root (to create network namespaces)"
    if not shutil.which("ip") or not shutil.which("tc"):
        return False, "iproute2 (ip, tc)"
    probe = f"ailp{secrets.token_hex(3)}"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        return False, f"network namespaces ({r.stderr.strip()})"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return True, ""


class TwoHosts:
    """``local`` (the workstation) and ``cluster``, linked by veth; ``cut()``/``restore()``."""

    def __init__(self, rate: str | None = "160mbit"):
        tag = secrets.token_hex(3)
        self.local, self.cluster = f"ail-l-{tag}", f"ail-c-{tag}"
        self.veth_l, self.veth_c = f"vl{tag}", f"vc{tag}"
        self.local_addr, self.cluster_addr = "10.200.0.1", "10.200.0.2"
        self.rate = rate

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    def up(self) -> None:
        self._ip("netns", "add", self.local)
        self._ip("netns", "add", self.cluster)
        self._ip("-n", self.local, "link", "add", self.veth_l, "type", "veth", "peer", "name", self.veth_c,
                 "netns", self.cluster)
        self._ip("-n", self.local, "addr", "add", f"{self.local_addr}/24", "dev", self.veth_l)
        self._ip("-n", self.cluster, "addr", "add", f"{self.cluster_addr}/24", "dev", self.veth_c)
        for ns, dev in ((self.local, self.veth_l), (self.cluster, self.veth_c)):
            self._ip("-n", ns, "link", "set", "lo", "up")
            self._ip("-n", ns, "link", "set", dev, "up")
        if self.rate:   # slow the link so that a cut lands in the middle of a transfer
            subprocess.run(["ip", "netns", "exec", self.local, "tc", "qdisc", "add", "dev", self.veth_l, "root",
                            "tbf", "rate", self.rate, "burst", "64kb", "latency", "50ms"],
                           check=True, capture_output=True)

    def cut(self) -> None:
        self._ip("-n", self.local, "link", "set", self.veth_l, "down")

    def restore(self) -> None:
        self._ip("-n", self.local, "link", "set", self.veth_l, "up")

    def set_rate(self, rate: str) -> None:
        """Change the link's speed (set with ``rate`` at ``up``) while it carries traffic."""
        subprocess.run(["ip", "netns", "exec", self.local, "tc", "qdisc", "change", "dev", self.veth_l, "root",
                        "tbf", "rate", rate, "burst", "64kb", "latency", "50ms"], check=True, capture_output=True)

    def exec_prefix(self, ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]

    def down(self) -> None:
        for ns in (self.local, self.cluster):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


class Gateway:
    """Three hosts in a line, ``workstation`` - ``bastion`` - ``cluster``, as when a
    cluster is reached through a jump host or a forwarded port.  A new namespace does not
    forward packets, so the workstation reaches the cluster only through a program on the
    bastion (ssh's ``ProxyJump``, a port forward)."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.workstation, self.bastion, self.cluster = f"ail-w-{tag}", f"ail-b-{tag}", f"ail-c-{tag}"
        self._links = ((self.workstation, f"vw{tag}", "10.201.0.1", self.bastion, f"vb{tag}", "10.201.0.2"),
                       (self.bastion, f"vx{tag}", "10.202.0.1", self.cluster, f"vc{tag}", "10.202.0.2"))
        self.bastion_addr = "10.201.0.2"     # as the workstation sees it
        self.cluster_addr = "10.202.0.2"     # only the bastion can reach this

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    def up(self) -> None:
        for ns in (self.workstation, self.bastion, self.cluster):
            self._ip("netns", "add", ns)
            self._ip("-n", ns, "link", "set", "lo", "up")
        for ns_a, dev_a, addr_a, ns_b, dev_b, addr_b in self._links:
            self._ip("-n", ns_a, "link", "add", dev_a, "type", "veth", "peer", "name", dev_b, "netns", ns_b)
            for ns, dev, addr in ((ns_a, dev_a, addr_a), (ns_b, dev_b, addr_b)):
                self._ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
                self._ip("-n", ns, "link", "set", dev, "up")

    def exec_prefix(self, ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]

    def down(self) -> None:
        for ns in (self.workstation, self.bastion, self.cluster):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
