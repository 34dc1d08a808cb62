"""The NAT lab really is NAT: homes get out masqueraded, nobody gets in, and it leaves no trace."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from . import netlab
from .netlab import Host, NatLab, unavailable

nat_lab = netlab.nat_lab  # the fixture, made visible to this module's tests (a conftest may later)

# Echo server: prints its port once listening, then the address of each peer it accepts.
SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 0))
s.listen()
print("listening", s.getsockname()[1], flush=True)
while True:
    c, addr = s.accept()
    print("peer", addr[0], flush=True)
    c.sendall(c.recv(64))
    c.close()
"""

# Client: one echo round trip; prints "ok", or "fail <error>" when it cannot connect in time.
CLIENT = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    c.sendall(b"ping")
    assert c.recv(64) == b"ping"
    print("ok")
except OSError as e:
    print("fail", type(e).__name__, e)
"""


def serve(lab: NatLab, host: Host) -> tuple[subprocess.Popen[str], int]:
    """Start the echo server on host's address and wait for its listening line."""
    server = lab.popen(
        host, [sys.executable, "-c", SERVER, host.ip], stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None
    line = server.stdout.readline().split()
    assert line[:1] == ["listening"], f"server in {host.name} did not start: {line}"
    return server, int(line[1])


def connect(lab: NatLab, client: Host, server: Host, port: int, timeout: float = 1.0) -> str:
    """Echo once from client to server.ip:port; returns the client's "ok" or "fail ..." line."""
    done = lab.run(client, [sys.executable, "-c", CLIENT, server.ip, str(port), str(timeout)])
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_homes_reach_seeds_masqueraded_as_their_router(nat_lab: NatLab) -> None:
    for seed, home, router in zip(nat_lab.seeds, nat_lab.homes, nat_lab.routers, strict=True):
        server, port = serve(nat_lab, seed)
        assert connect(nat_lab, home, seed, port) == "ok"
        assert server.stdout is not None
        seen = server.stdout.readline().split()
        assert seen == ["peer", router.ip], f"{seed.name} saw {seen}, not {home.name}'s router"
        assert home.ip != router.ip


def test_public_side_cannot_open_into_a_home(nat_lab: NatLab) -> None:
    seed, home, router = nat_lab.seeds[0], nat_lab.homes[0], nat_lab.routers[0]
    _, port = serve(nat_lab, home)
    assert connect(nat_lab, router, home, port) == "ok"  # listening and reachable from its LAN
    # The strongest outsider: on the router's own segment, routing the home's address via it.
    route = ["ip", "route", "add", f"{home.ip}/32", "via", router.ip]
    assert nat_lab.run(seed, route).returncode == 0
    assert connect(nat_lab, seed, home, port).startswith("fail")


def test_homes_cannot_reach_each_other(nat_lab: NatLab) -> None:
    home_a, home_b = nat_lab.homes
    _, port = serve(nat_lab, home_b)
    assert connect(nat_lab, nat_lab.routers[1], home_b, port) == "ok"
    assert connect(nat_lab, home_a, home_b, port).startswith("fail")


def test_teardown_leaves_no_namespace_process_or_root_change() -> None:
    if reason := unavailable():
        pytest.skip(f"NAT lab unavailable: {reason}")
    root_before = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    with NatLab() as lab:
        names = list(lab.namespaces)
        assert len(names) == 7
        sleeper = lab.popen(lab.homes[0], ["sleep", "60"])
        root_during = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    assert sleeper.returncode is not None  # killed, not left running
    assert not set(names) & set(netlab.list_namespaces())
    for net in ("198.51.100.", "203.0.113."):
        assert net not in root_during
    assert root_before == root_during


def test_unavailable_explains_when_not_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert unavailable() == "the NAT lab needs root (network namespaces, iptables)"
