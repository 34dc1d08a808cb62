"""Real processes for tests: seeds and headless users through the CLI, started, killed and stopped by hand."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from node.seed.server import listening_url


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Proc:
    """A child process whose stderr (and stdout lines, for users) are collected by reader threads."""

    def __init__(self, args: list[str], stdin: bool = False, netns: str | None = None) -> None:
        self.args = args
        inside = ["ip", "netns", "exec", netns] if netns else []  # a host of the NAT lab
        self.p = subprocess.Popen(
            [*inside, sys.executable, "-m", "node", *args],
            stdin=subprocess.PIPE if stdin else None,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.err: list[str] = []
        self.lines: list[dict] = []
        self.cond = threading.Condition()
        self.readers = [
            threading.Thread(target=self._read_err, daemon=True),
            threading.Thread(target=self._read_out, daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    def _read_err(self) -> None:
        for line in self.p.stderr:
            with self.cond:
                self.err.append(line)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def _read_out(self) -> None:
        for line in self.p.stdout:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            with self.cond:
                self.lines.append(obj)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, predicate, timeout: float = 20.0, what: str = "output"):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = predicate(self)
                if found:
                    return found
                left = deadline - time.monotonic()
                ended = not any(
                    r.is_alive() for r in self.readers
                )  # exited and all its output read
                if left <= 0 or ended:
                    raise AssertionError(f"{what} not seen; stderr tail: {''.join(self.err[-5:])}")
                self.cond.wait(min(left, 0.5))

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGKILL)
        self.p.wait(10)

    def stop(self) -> int:
        if self.p.poll() is None:
            self.p.terminate()
        try:
            return self.p.wait(15)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return self.p.wait(5)

    @property
    def alive(self) -> bool:
        return self.p.poll() is None


# every test client comes from 127.0.0.1: seeds started here lift the per-address caps, unless
# the test's own config sets them
LOOPBACK_CAPS = "max_connections_per_address = 100000\nnew_names_per_minute = 1000000000.0\n"


class SeedProc(Proc):
    def __init__(
        self,
        data_dir: Path,
        name: str,
        port: int = 0,
        peers: tuple[str, ...] = (),
        config: Path | None = None,
        host: str | None = None,
        netns: str | None = None,
    ):
        args = [
            "seed",
            "--port",
            str(port),
            "--name",
            name,
            "--data-dir",
            str(data_dir),
            "--log-level",
            "info",
        ]
        for p in peers:
            args += ["--peer", p]
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        text = config.read_text() if config is not None else "[seed]\n"
        if "max_connections_per_address" not in text and "new_names_per_minute" not in text:
            text += LOOPBACK_CAPS
        merged = data_dir.parent / f"{data_dir.name}-seed.toml"
        merged.write_text(text)
        args += ["--config", str(merged)]
        if host is not None:
            args += ["--host", host]
        super().__init__(args, netns=netns)
        self.name = name
        self.url = self.wait_for(
            lambda s: next(filter(None, map(listening_url, s.err)), None),
            what=f"seed {name} listening",
        )
        self.port = int(self.url.rsplit(":", 1)[1])


class UserProc(Proc):
    def __init__(self, data_dir: Path, name: str, seeds: list[str], netns: str | None = None):
        args = ["user", "--name", name, "--data-dir", str(data_dir)]
        for s in seeds:
            args += ["--seed", s]
        super().__init__(args, stdin=True, netns=netns)
        self.name = name

    def registered(self, after: int = 0, timeout: float = 20.0) -> dict:
        return self.wait_for(
            lambda s: next((x for x in s.lines[after:] if x["event"] == "registered"), None),
            timeout,
            f"{self.name} registered",
        )

    def say(self, line: str) -> None:
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def events(self, kind: str) -> list[dict]:
        with self.cond:
            return [x for x in self.lines if x["event"] == kind]

    def seen(self, predicate, timeout: float = 20.0, what: str = "a line") -> dict:
        """The first stdout line that satisfies `predicate` (waiting for it)."""
        return self.wait_for(
            lambda s: next((x for x in s.lines if predicate(x)), None), timeout, what
        )


async def run_cli(*args: str, timeout: float = 30) -> tuple[int, str, str]:
    """`p2p-node ARGS` to completion: its exit code, stdout and stderr."""
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "node",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode, out.decode(), err.decode()
