"""A real NAT lab built from Linux network namespaces, for tests that need seeds and users apart.

Loopback tests cannot show what happens when users sit behind NAT routers, so this module builds
a small internet inside namespaces it creates (and always removes), using only documentation
address ranges::

    seed0 198.51.100.10 ─┬─ br0 in "wan" ns ┬─ 198.51.100.2 rtrA 203.0.113.1/25 ─ homeA 203.0.113.10
    seed1 198.51.100.11 ─┘  198.51.100.1/24 └─ 198.51.100.3 rtrB 203.0.113.129/25 ─ homeB .130

192.0.2.0/24 is left alone on purpose: this VM's own uplink (root eth0) uses it.

Each router masquerades its LAN behind its public address and forwards only LAN->WAN traffic and
the replies to it (no port forwards), like a home router.  The "wan" namespace is the internet's
router: it forwards, but has no routes to the home LANs, as private ranges are not routed there.

The host's root namespace is never touched: every link is created inside a lab namespace (veth
pairs are created with both ends placed in lab namespaces), and every address, route, sysctl and
iptables rule is set inside one.  Namespace names carry the owner's pid, so parallel runs never
collide and leftovers from a killed run can be recognised and removed.

Only the standard library is used, plus pytest for the ``nat_lab`` fixture.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

PREFIX = "p2pnl"
"""Every lab namespace is named ``p2pnl-<owner pid>-<n>-<role>``; nothing else uses this prefix."""

_STALE = re.compile(rf"^{PREFIX}-(\d+)-")
_counter = itertools.count()

WAN_GATEWAY = "198.51.100.1"
SEED_IPS = ("198.51.100.10", "198.51.100.11")
# (role suffix, router's public ip, router's LAN ip, home host ip) for each home; LANs are /25s
HOMES = (
    ("A", "198.51.100.2", "203.0.113.1", "203.0.113.10"),
    ("B", "198.51.100.3", "203.0.113.129", "203.0.113.130"),
)


@dataclass(frozen=True)
class Host:
    """One machine of the lab: a namespace and its address (public for seeds and routers)."""

    name: str
    ns: str
    ip: str


def _sh(argv: list[str], input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a setup command, raising with its stderr so a failed build says what went wrong."""
    done = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def list_namespaces() -> list[str]:
    """Names of all network namespaces `ip netns` knows (the lab's and anyone else's)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_ns(ns: str) -> None:
    """Kill whatever still runs in ``ns`` (a process keeps a namespace alive), then delete it."""
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
    for pid in pids.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def remove_stale() -> list[str]:
    """Delete lab namespaces whose owner process is dead (a run killed before its teardown).

    A reused pid only makes us keep a stale namespace a while longer; it never makes us remove
    a live run's namespaces.
    """
    removed = []
    for ns in list_namespaces():
        m = _STALE.match(ns)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            _remove_ns(ns)
            removed.append(ns)
    return removed


@functools.cache
def _probe() -> tuple[str | None, str]:
    """Try namespaces and NAT once: (reason it cannot work or None, the iptables binary to use).

    ``iptables`` comes first (the system's choice, nft on Debian 12); legacy is the fallback for
    kernels without nf_tables.
    """
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (apt-get install -y iproute2 iptables)", ""
    remove_stale()
    ns = f"{PREFIX}-{os.getpid()}-probe"
    try:
        _sh(["ip", "netns", "add", ns])
    except RuntimeError as e:
        return f"cannot create a network namespace: {e}", ""
    try:
        errors = []
        for iptables in ("iptables", "iptables-legacy"):
            if shutil.which(iptables) is None:
                continue
            rule = ["-t", "nat", "-A", "POSTROUTING", "-o", "lo", "-j", "MASQUERADE"]
            state = ["-A", "FORWARD", "-m", "conntrack", "--ctstate", "ESTABLISHED", "-j", "ACCEPT"]
            try:
                _sh(["ip", "netns", "exec", ns, iptables, *rule])
                _sh(["ip", "netns", "exec", ns, iptables, *state])
                return None, iptables
            except RuntimeError as e:
                errors.append(str(e))
        return f"iptables NAT does not work in a namespace: {'; '.join(errors)}", ""
    finally:
        _remove_ns(ns)


def unavailable() -> str | None:
    """None when a NatLab can be built here, else why not (so tests skip with a reason)."""
    if os.geteuid() != 0:
        return "the NAT lab needs root (network namespaces, iptables)"
    return _probe()[0]


class NatLab:
    """Two seeds on a public segment and two homes behind separate masquerading routers.

    Use as a context manager: ``__enter__`` builds everything, ``__exit__`` kills every process
    still running in the lab and deletes its namespaces, also when the build itself failed.
    """

    def __init__(self) -> None:
        self.prefix = f"{PREFIX}-{os.getpid()}-{next(_counter)}"
        self.namespaces: list[str] = []
        self.seeds: list[Host] = []
        self.routers: list[Host] = []  # .ip is the public address the homes are masqueraded as
        self.homes: list[Host] = []  # .ip is the private LAN address; homes[i] is behind routers[i]
        self.procs: list[subprocess.Popen[Any]] = []

    def __enter__(self) -> NatLab:
        reason = unavailable()
        if reason is not None:
            raise RuntimeError(reason)
        remove_stale()
        try:
            self._build()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for ns in reversed(self.namespaces):
            _remove_ns(ns)
        for p in self.procs:
            p.wait()
            for stream in (p.stdin, p.stdout, p.stderr):
                if stream is not None:
                    stream.close()
        self.namespaces.clear()

    def popen(self, host: Host, argv: list[str], **kw: Any) -> subprocess.Popen[Any]:
        """Start argv inside host's namespace; it is killed at teardown if still running."""
        p = subprocess.Popen(["ip", "netns", "exec", host.ns, *argv], **kw)
        self.procs.append(p)
        return p

    def run(
        self, host: Host, argv: list[str], timeout: float = 10, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run argv inside host's namespace to completion; output is captured as text."""
        if "stdout" not in kw and "stderr" not in kw:
            kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(["ip", "netns", "exec", host.ns, *argv], timeout=timeout, **kw)

    # -- building --------------------------------------------------------------------------------

    def _ns(self, role: str, forward: bool) -> str:
        ns = f"{self.prefix}-{role}"
        _sh(["ip", "netns", "add", ns])
        self.namespaces.append(ns)
        _sh(["ip", "-n", ns, "link", "set", "lo", "up"])
        value = "1" if forward else "0"
        _sh(
            ["ip", "netns", "exec", ns, "sh", "-c", f"echo {value} > /proc/sys/net/ipv4/ip_forward"]
        )
        return ns

    def _link(self, ns: str, ifname: str, peer_ns: str, peer_if: str) -> None:
        """A veth pair created in ns with its peer moved straight into peer_ns, both up."""
        _sh(
            [
                "ip",
                "-n",
                ns,
                "link",
                "add",
                ifname,
                "type",
                "veth",
                "peer",
                "name",
                peer_if,
                "netns",
                peer_ns,
            ]
        )
        _sh(["ip", "-n", ns, "link", "set", ifname, "up"])
        _sh(["ip", "-n", peer_ns, "link", "set", peer_if, "up"])

    def _addr(self, ns: str, ifname: str, ip: str, bits: int, gateway: str | None) -> None:
        _sh(["ip", "-n", ns, "addr", "add", f"{ip}/{bits}", "dev", ifname])
        if gateway is not None:
            _sh(["ip", "-n", ns, "route", "add", "default", "via", gateway])

    def _plug(self, wan: str, ns: str, port: str) -> None:
        """Connect ns's wan0 to the public switch (bridge br0 in the wan namespace)."""
        self._link(ns, "wan0", wan, port)
        _sh(["ip", "-n", wan, "link", "set", port, "master", "br0"])

    def _build(self) -> None:
        iptables = _probe()[1]
        wan = self._ns("wan", forward=True)
        _sh(["ip", "-n", wan, "link", "add", "br0", "type", "bridge"])
        _sh(["ip", "-n", wan, "link", "set", "br0", "up"])
        self._addr(wan, "br0", WAN_GATEWAY, 24, None)
        for i, ip in enumerate(SEED_IPS):
            ns = self._ns(f"seed{i}", forward=False)
            self._plug(wan, ns, f"seed{i}")
            self._addr(ns, "wan0", ip, 24, WAN_GATEWAY)
            self.seeds.append(Host(f"seed{i}", ns, ip))
        for tag, public_ip, lan_ip, home_ip in HOMES:
            rtr = self._ns(f"rtr{tag}", forward=True)
            self._plug(wan, rtr, f"rtr{tag}")
            self._addr(rtr, "wan0", public_ip, 24, WAN_GATEWAY)
            home = self._ns(f"home{tag}", forward=False)
            self._link(rtr, "lan0", home, "eth0")
            self._addr(rtr, "lan0", lan_ip, 25, None)
            self._addr(home, "eth0", home_ip, 25, lan_ip)
            for rule in (
                ["-t", "nat", "-A", "POSTROUTING", "-o", "wan0", "-j", "MASQUERADE"],
                ["-P", "FORWARD", "DROP"],
                [
                    "-A",
                    "FORWARD",
                    "-m",
                    "conntrack",
                    "--ctstate",
                    "ESTABLISHED,RELATED",
                    "-j",
                    "ACCEPT",
                ],
                ["-A", "FORWARD", "-i", "lan0", "-o", "wan0", "-j", "ACCEPT"],
            ):
                _sh(["ip", "netns", "exec", rtr, iptables, *rule])
            self.routers.append(Host(f"rtr{tag}", rtr, public_ip))
            self.homes.append(Host(f"home{tag}", home, home_ip))


@pytest.fixture
def nat_lab() -> Iterator[NatLab]:
    """A freshly built NatLab, torn down after the test; skips, with the reason, where it cannot."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(f"NAT lab unavailable: {reason}")
    with NatLab() as lab:
        yield lab
