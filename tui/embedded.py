"""The seed an app hosts when no seed answers, so people on one machine can chat with nothing else running.

Its directory and mail belong to the machine's user, not to the app that happens to host it:
they live in one folder shared by every app (`embedded_seed_dir`), so whichever app hosts next
opens the same store and hands over what the last host held. One process hosts at a time: a lock
file is taken before the port is bound and the store opened, and released after the store closed.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

from node.config import SeedConfig
from node.seed.server import Seed
from node.storage.files import secure_dir

DIR_ENV = "P2P_CHAT_EMBEDDED_SEED_DIR"  # overrides the folder (tests, several setups on one login)
DEFAULT_PORT = 5001
LOCK_WAIT = 3.0  # seconds to wait for the last host to finish closing the store
# An embedded seed starts because its peers did not answer: it waits this long (not a public
# seed's 10 s) for a first sync before it takes a name it does not hold, so the app that hosts it
# for the first time is not left connecting; a name taken meanwhile still yields to the mesh's.
FIRST_SYNC_WAIT = 3.0


def embedded_seed_dir() -> Path:
    """`embedded-seed` in the per-user data folder, beside `users` and `seeds`; or $P2P_CHAT_EMBEDDED_SEED_DIR."""
    override = os.environ.get(DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir("p2p-chat", appauthor=False)) / "embedded-seed"


def embedded_address(seeds: list[str]) -> tuple[int, str | None]:
    """Where to host: the first configured `ws://` seed on this machine (its port, its URL), so
    every app given that seed finds the one hosted there; else port 5001 with the URL bound."""
    for url in seeds:
        parts = urlsplit(url)
        if parts.scheme != "ws" or parts.path not in ("", "/") or not _loopback(parts.hostname):
            continue
        try:
            port = parts.port
        except ValueError:
            continue
        if port:
            return port, url.rstrip("/")
    return DEFAULT_PORT, None


def _loopback(host: str | None) -> bool:
    return host in ("127.0.0.1", "localhost")


class HostedSeed:
    """A running embedded seed and the lock that makes its store this process's alone."""

    def __init__(self, seed: Seed, lock: int) -> None:
        self.seed = seed
        self.lock = lock

    @property
    def url(self) -> str:
        return self.seed.url

    async def stop(self) -> None:
        try:
            await self.seed.stop()
        finally:
            os.close(self.lock)  # the store is closed: the next host may open it


async def host_seed(
    user: str,
    port: int,
    peers: list[str],
    url: str | None = None,
    data_dir: Path | None = None,
) -> HostedSeed:
    """Start a seed named after the user on 127.0.0.1:`port`, linked to `peers`, over the shared
    store; OSError when the port is taken or another app hosts the embedded seed."""
    folder = data_dir or embedded_seed_dir()
    secure_dir(folder)
    lock = await _take_lock(folder / "host.lock")
    own = {u.rstrip("/") for u in (url, f"ws://127.0.0.1:{port}") if u}
    cfg = SeedConfig(
        host="127.0.0.1",
        port=port,
        name=f"embedded-{user}",
        url=url,
        peers=[p for p in dict.fromkeys(u.rstrip("/") for u in peers) if p not in own],
        data_dir=folder,
        log_level="warning",
        first_sync_wait=FIRST_SYNC_WAIT,
    )
    seed = Seed(cfg)
    try:
        await seed.start()
    except BaseException:
        if seed.server is not None:
            seed.server.close()
            await seed.server.wait_closed()
        os.close(lock)
        raise
    return HostedSeed(seed, lock)


async def _take_lock(path: Path) -> int:
    """An exclusive lock on `path`, waiting a moment for a host that is closing; OSError (EBUSY)
    when another app still hosts."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = asyncio.get_running_loop().time() + LOCK_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if asyncio.get_running_loop().time() > deadline:
                os.close(fd)
                raise OSError(
                    errno.EBUSY, "another app on this machine hosts the embedded seed"
                ) from None
            await asyncio.sleep(0.05)
