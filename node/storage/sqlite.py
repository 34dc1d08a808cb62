"""Opening SQLite the way every p2p-chat store wants it: WAL, synced commits, a schema version."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..errors import StoreError


def open_db(path: Path) -> sqlite3.Connection:
    """Open a WAL database whose commits are synced (synchronous=FULL), in autocommit mode.

    The connection may be handed to the commit thread (check_same_thread off); each store keeps
    a second connection for reads, which in WAL mode never wait for a commit in progress.
    """
    try:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        # another process may hold the write lock (two apps of one user share a data dir): wait
        db.execute("PRAGMA busy_timeout=5000")
        return db
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the database {path}: {exc}") from None
