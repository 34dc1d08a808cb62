"""Private files and folders: a user's key and history are nobody else's business on a shared machine."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import platformdirs

from ..errors import StoreError

log = logging.getLogger("p2p.storage")


def default_data_dir(kind: str, name: str) -> Path:
    """A per-user data folder, one per seed or user name."""
    return Path(platformdirs.user_data_dir("p2p-chat", appauthor=False)) / kind / name


def secure_dir(path: Path) -> None:
    """Create a private data dir (0700), or tighten one that others can read, with a warning.

    StoreError, naming the dir and the reason, when it cannot be made or written.
    """
    try:
        if not path.exists():
            path.mkdir(parents=True, mode=0o700)
            path.chmod(0o700)  # mkdir's mode is masked by the umask
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("data dir %s was readable by others (mode %o); set to 0700", path, mode)
            path.chmod(0o700)
        if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(13, "not a writable folder")
    except OSError as exc:
        raise StoreError(f"cannot use the data dir {path}: {exc.strerror or exc}") from None


def tighten_file(path: Path) -> None:
    """A secret file others can read is set to 0600, with a warning."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("key file %s was readable by others (mode %o); set to 0600", path, mode)
        path.chmod(0o600)


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only, atomically and synced (a crash leaves old or new)."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
