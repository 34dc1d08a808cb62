"""Numbered schema migrations: a database knows its version (`PRAGMA user_version`) and moves up step by step.

Step N (1-based) takes a database from version N-1 to N in one transaction, so a crash mid-way
leaves the old version intact. A database from before versioning reads as version 0, which is why
step 1 of each store creates its tables only if they do not exist yet.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from ..errors import StoreError
from .sqlite import open_db


def schema_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection, steps: Sequence[str], path: Path) -> int:
    """Apply the steps the database has not had yet; the version it is at now."""
    version = schema_version(db)
    if version > len(steps):
        raise StoreError(
            f"{path} was written by a newer p2p-chat (schema {version}; this one knows up to "
            f"{len(steps)}): upgrade p2p-chat, or use another data dir"
        )
    for number, script in enumerate(steps[version:], version + 1):
        try:
            db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StoreError(f"cannot migrate {path} to schema {number}: {exc}") from None
    return len(steps)


def open_versioned(
    path: Path, steps: Sequence[str]
) -> tuple[sqlite3.Connection, sqlite3.Connection]:
    """A store's two connections: the writer, migrated to the newest version, and a reader."""
    db = open_db(path)
    migrate(db, steps, path)
    return db, open_db(path)
