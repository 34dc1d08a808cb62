"""SQLite stores: group commit, numbered migrations, and databases written by earlier versions."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from node.crypto.keys import Identity
from node.crypto.signing import sign_record
from node.errors import InternalError, StoreError
from node.seed.revs import Revs
from node.seed.storage.base import Underway
from node.seed.store import STEPS as SEED_STEPS
from node.seed.store import SeedStore
from node.storage.committer import GroupCommitter
from node.storage.migrations import migrate, schema_version
from node.storage.sqlite import open_db
from node.user.store import STEPS as USER_STEPS
from node.user.store import StoredMessage, UserStore
from node.wire.protocol import dump

# the schemas as p2p-chat wrote them before databases carried a version (user_version 0)
SEED_V0 = """
CREATE TABLE records (nkey TEXT PRIMARY KEY, name TEXT NOT NULL, key TEXT NOT NULL,
    endpoint TEXT NOT NULL, seq INTEGER NOT NULL, sig TEXT NOT NULL, renewed INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE seeds (url TEXT PRIMARY KEY) WITHOUT ROWID;
"""
USER_V0 = """
CREATE TABLE meta (k TEXT PRIMARY KEY, v) WITHOUT ROWID;
CREATE TABLE contacts (nkey TEXT PRIMARY KEY, name TEXT NOT NULL, key TEXT, changed_key TEXT,
    new INTEGER NOT NULL DEFAULT 0, added INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE messages (n INTEGER PRIMARY KEY AUTOINCREMENT, peer TEXT NOT NULL, id TEXT NOT NULL,
    outgoing INTEGER NOT NULL, sender TEXT NOT NULL, recipient TEXT NOT NULL, ts INTEGER NOT NULL,
    text TEXT NOT NULL, state TEXT NOT NULL, reason TEXT);
CREATE UNIQUE INDEX messages_id ON messages(peer, outgoing, id);
"""


async def test_rows_arriving_together_commit_together_and_in_order(tmp_path):
    db = open_db(tmp_path / "t.sqlite3")
    db.execute("CREATE TABLE t (n INTEGER)")

    def write(conn: sqlite3.Connection, rows: list[int]) -> list[int]:
        conn.executemany("INSERT INTO t VALUES (?)", [(r,) for r in rows])
        return [r * 10 for r in rows]

    committer = GroupCommitter(db, write)
    futures = [committer.submit(i) for i in range(100)]
    assert await asyncio.gather(*futures) == [i * 10 for i in range(100)]
    assert committer.commits == 1
    await committer.close()
    assert [n for (n,) in db.execute("SELECT n FROM t")] == list(range(100))


async def test_a_failed_commit_reaches_every_waiter(tmp_path):
    db = open_db(tmp_path / "t.sqlite3")

    def write(conn: sqlite3.Connection, rows: list[str]) -> list[None]:
        conn.execute("INSERT INTO missing VALUES (1)")
        return [None] * len(rows)

    committer = GroupCommitter(db, write)
    results = await asyncio.gather(
        committer.submit("a"), committer.submit("b"), return_exceptions=True
    )
    assert all(isinstance(r, StoreError) for r in results)
    await committer.close()


async def test_a_bad_write_fails_alone_and_the_batch_commits_the_rest(tmp_path):
    db = open_db(tmp_path / "t.sqlite3")
    db.execute("CREATE TABLE t (n INTEGER)")

    def write(conn: sqlite3.Connection, rows: list[int]) -> list[int]:
        for r in rows:
            conn.execute(
                "INSERT INTO missing VALUES (1)" if r == 3 else "INSERT INTO t VALUES (?)",
                (r,) if r != 3 else (),
            )
        return rows

    committer = GroupCommitter(db, write)
    results = await asyncio.gather(*(committer.submit(i) for i in range(6)), return_exceptions=True)
    await committer.close()
    assert isinstance(results[3], StoreError) and "commit failed" in str(results[3])
    assert [r for i, r in enumerate(results) if i != 3] == [0, 1, 2, 4, 5]
    assert [n for (n,) in db.execute("SELECT n FROM t")] == [0, 1, 2, 4, 5]


async def test_a_bug_in_a_write_is_reported_as_one_and_costs_only_its_row(tmp_path, caplog):
    db = open_db(tmp_path / "t.sqlite3")
    db.execute("CREATE TABLE t (n INTEGER)")

    def write(conn: sqlite3.Connection, rows: list[int]) -> list[int]:
        for r in rows:
            conn.execute("INSERT INTO t VALUES (?)", ({}[r] if r == 2 else r,))
        return rows

    committer = GroupCommitter(db, write)
    results = await asyncio.gather(*(committer.submit(i) for i in range(4)), return_exceptions=True)
    await committer.close()
    assert isinstance(results[2], InternalError) and not isinstance(results[2], StoreError)
    assert "commit failed" not in str(results[2])
    assert [results[0], results[1], results[3]] == [0, 1, 3]
    bug = [r for r in caplog.records if r.name == "p2p.storage" and r.exc_info]
    assert bug and isinstance(bug[0].exc_info[1], KeyError), "no traceback logged for the bug"


async def test_a_write_that_miscounts_its_results_leaves_no_waiter_hanging(tmp_path):
    db = open_db(tmp_path / "t.sqlite3")

    committer = GroupCommitter(db, lambda conn, rows: rows[1:])
    futures = [committer.submit(i) for i in range(3)]
    await committer.close()
    assert all(f.done() for f in futures)
    assert all(isinstance(f.exception(), InternalError) for f in futures)


async def test_a_bug_in_one_user_store_write_loses_none_of_the_others(tmp_path):
    """Contacts, read markers and messages queued with a failing write still reach the disk."""
    store = UserStore(tmp_path / "user.sqlite3")
    store.start()
    store.add_contact("bob", now=1)
    bad = store._submit("contact_set", "no such column", 1, "bob")
    saved = store.add_message(StoredMessage.new_incoming("m1", "bob", "me", 5, "hi"))
    store.pin("bob", "K1")
    assert await saved == 1
    with pytest.raises(InternalError):
        await bad
    await store.close()
    again = UserStore(tmp_path / "user.sqlite3")
    assert [(c.name, c.key) for c in again.contacts()] == [("bob", "K1")]
    assert [m.text for m in again.history("bob")] == ["hi"]
    again.db.close()
    again.reader.close()


async def test_storage_failures_are_p2p_errors_not_standard_ones(tmp_path):
    """One exception tree: a change counter the disk has not caught up with, and a write the
    store does not know, are P2PErrors (a StoreError, and an InternalError for the bug)."""
    revs = Revs("epoch", reserved=0, block=4)
    revs.first_reservation()
    assert [revs.next() for _ in range(4)] == [1, 2, 3, 4]
    with pytest.raises(StoreError):
        revs.next()
    store = SeedStore(tmp_path / "seed.sqlite3")
    with pytest.raises(InternalError):
        store.queue("meta", "k", "v")  # not started
    store.start()
    with pytest.raises(InternalError):
        await store.submit("no such kind")
    from node.seed.mailbox import Mailbox, MailLimits

    mailbox = Mailbox(store, MailLimits())
    store.db.execute("ALTER TABLE mail RENAME TO damaged")
    with pytest.raises(StoreError):
        await mailbox.items_for("bob")
    await store.close()


def test_migrations_run_once_each_and_refuse_a_newer_database(tmp_path):
    path = tmp_path / "m.sqlite3"
    db = open_db(path)
    steps = ["CREATE TABLE a (x);", "ALTER TABLE a ADD COLUMN y;"]
    assert migrate(db, steps[:1], path) == 1
    assert migrate(db, steps, path) == 2 and schema_version(db) == 2
    assert migrate(db, steps, path) == 2  # nothing left to do
    with pytest.raises(StoreError, match="newer p2p-chat"):
        migrate(db, steps[:1], path)


def test_a_failed_step_leaves_the_previous_version(tmp_path):
    path = tmp_path / "m.sqlite3"
    db = open_db(path)
    with pytest.raises(StoreError, match="schema 2"):
        migrate(db, ["CREATE TABLE a (x);", "CREATE TABLE a (x);"], path)
    assert schema_version(db) == 1


async def test_a_seed_database_from_before_versioning_keeps_its_records(tmp_path):
    path = tmp_path / "directory.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(SEED_V0)
    rec = sign_record(Identity.generate(), "Sally", "ws://127.0.0.1:1", 42)
    old.execute(
        "INSERT INTO records VALUES (?,?,?,?,?,?,?)",
        ("sally", rec.name, rec.key, rec.endpoint, rec.seq, rec.sig, 7),
    )
    old.execute("INSERT INTO seeds VALUES ('ws://127.0.0.1:5002')")
    old.commit()
    old.close()
    store = SeedStore(path)
    assert schema_version(store.db) == len(SEED_STEPS)
    # renewed kept; claimed 0 (settled long ago) and change number 0 (older than any sync point)
    assert list(store.load_records()) == [(rec, 7, 0, 0)]
    assert [u.url for u in store.load_seed_urls()] == ["ws://127.0.0.1:5002"]
    await store.close()


async def test_a_user_database_from_before_versioning_keeps_contacts_and_history(tmp_path):
    path = tmp_path / "user.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(USER_V0)
    old.execute("INSERT INTO meta VALUES ('seq', 1234)")
    old.execute("INSERT INTO contacts VALUES ('bob', 'Bob', 'KEY', NULL, 1, 5)")
    old.execute(
        "INSERT INTO messages(peer, id, outgoing, sender, recipient, ts, text, state, reason) "
        "VALUES ('bob', 'm1', 1, 'Sally', 'Bob', 10, 'hi', 'queued', NULL)"
    )
    old.commit()
    old.close()
    store = UserStore(path)
    store.start()
    assert schema_version(store.db) == len(USER_STEPS)
    assert [(c.name, c.key, c.new) for c in store.contacts()] == [("Bob", "KEY", True)]
    assert [(m.id, m.text, m.state) for m in store.pending()] == [("m1", "hi", "queued")]
    assert await store.next_seq(now=5) == 1235  # seq only grows, across the upgrade too
    await store.close()


async def test_user_store_pages_history_and_shows_unsaved_states(tmp_path):
    store = UserStore(tmp_path / "user.sqlite3")
    store.start()
    for i in range(5):
        await store.add_message(StoredMessage.new_outgoing(f"m{i}", "Sally", "Bob", i, f"t{i}"))
    dup = await store.add_message(StoredMessage.new_outgoing("m0", "Sally", "Bob", 0, "t0"))
    assert dup == 0  # the same id is stored once
    page = store.history("bob", limit=2)
    assert [m.id for m in page] == ["m3", "m4"]
    assert [m.id for m in store.history("BOB", before=page[0].n, limit=10)] == ["m0", "m1", "m2"]
    saved = store.set_state("bob", "m4", "delivered")
    assert store.history("bob", limit=1)[0].state == "delivered"  # shown before the commit
    await saved
    assert not store.unsaved
    assert [m.id for m in store.pending()] == ["m0", "m1", "m2", "m3"]
    await store.close()


async def test_contacts_live_in_memory_and_reach_the_disk(tmp_path):
    store = UserStore(tmp_path / "user.sqlite3")
    store.start()
    assert store.add_contact("Bob", now=1) and not store.add_contact("bob", now=2)
    store.pin("bob", "K1")
    store.set_changed_key("bob", "K2")
    assert store.accept_key("bob") == "K2"
    assert store.remove_contact("Carol") is False
    await store.close()
    again = UserStore(tmp_path / "user.sqlite3")
    assert [(c.name, c.key, c.changed_key) for c in again.contacts()] == [("Bob", "K2", None)]
    again.db.close()
    again.reader.close()


async def test_a_take_before_the_item_reaches_the_disk_frees_its_quota_once(tmp_path):
    """A take can arrive (by gossip) before the item it names is committed here: the mailbox's
    counters must follow the disk, or phantom items end in `quota` refusals. A take repeated
    before its commit frees nothing twice."""
    from node.clock import now_ms
    from node.crypto.signing import sign_mail, sign_take
    from node.seed.mailbox import Mailbox, MailLimits
    from node.wire.protocol import CARRIED

    store = SeedStore(tmp_path / "seed.sqlite3")
    store.start()
    box = Mailbox(store, MailLimits())
    alice, bob = Identity.generate(), Identity.generate()
    frames = [
        CARRIED.validate_python(
            {
                "type": "chat",
                "id": f"m{i}",
                "from": "alice",
                "to": "bob",
                "nonce": "A" * 32,
                "box": "AAAA",
            }
        )
        for i in range(3)
    ]
    items = [sign_mail(alice, "bob", "alice", f, now_ms()) for f in frames]
    adds = [box.add(item, dump(item), rev=i) for i, item in enumerate(items)]
    taken = sign_take(bob, "bob", [["alice", "chat", "m0"], ["alice", "chat", "m1"]], now_ms())
    takes = [box.take(taken, rev=10), box.take(taken, rev=11)]  # before any of the adds is saved
    assert takes[1] is None  # the second deletes nothing more: it is not kept
    await asyncio.gather(*adds, *[t for t in takes if t is not None])
    on_disk = store.read("SELECT COUNT(*) FROM mail WHERE recipient = 'bob'")[0][0]
    assert on_disk == 1 and box.held_for("bob") == 1 and box.held_count() == 1
    await store.close()


async def test_a_write_under_way_is_followed_once_decided_then_once_durable():
    """A write decided at once is followed at once, then when durable; one decided only when
    durable is followed then, in that order; a failed one gives None to `durable` only."""
    loop = asyncio.get_running_loop()
    seen: list[tuple[str, object]] = []

    def decided(outcome: object) -> None:
        seen.append(("decided", outcome))

    def durable(outcome: object) -> None:
        seen.append(("durable", outcome))

    early: asyncio.Future[str] = loop.create_future()
    Underway("held", early).follow(decided, durable)
    assert seen == [("decided", "held")]
    early.set_result("held")
    await asyncio.sleep(0)
    assert seen == [("decided", "held"), ("durable", "held")]

    seen.clear()
    Underway.settled("duplicate").follow(decided, durable)
    assert seen == [("decided", "duplicate"), ("durable", "duplicate")]  # nothing waits

    seen.clear()
    late: asyncio.Future[str] = loop.create_future()
    Underway(None, late).follow(decided, durable)
    late.set_result("held")
    await asyncio.sleep(0)
    assert seen == [("decided", "held"), ("durable", "held")]

    seen.clear()
    failed: asyncio.Future[str] = loop.create_future()
    Underway(None, failed, str.upper).follow(decided, durable)
    failed.set_exception(StoreError("commit failed"))
    for _ in range(3):
        await asyncio.sleep(0)
    assert seen == [("durable", None)]


async def test_a_row_queued_after_close_is_refused_not_left_waiting(tmp_path):
    db = open_db(tmp_path / "t.sqlite3")
    db.execute("CREATE TABLE t (n INTEGER)")

    def write(conn: sqlite3.Connection, rows: list[int]) -> list[int]:
        conn.executemany("INSERT INTO t VALUES (?)", [(r,) for r in rows])
        return rows

    committer = GroupCommitter(db, write)
    before = committer.submit(1)
    await committer.close()
    assert await before == 1  # queued before close: committed by it
    late = committer.submit(2)
    with pytest.raises(StoreError):
        await asyncio.wait_for(late, 5)
    assert [n for (n,) in db.execute("SELECT n FROM t")] == [1]


async def test_the_shown_mark_rides_with_the_next_write_and_close_keeps_it(tmp_path):
    """A received message is one commit, not two: the headless client's `shown` mark waits for
    the next write (or its delay) instead of committing alone; closing writes a waiting one."""
    path = tmp_path / "user.sqlite3"
    store = UserStore(path)
    store.start()
    assert store.unshown() == []  # starts the mark at 0
    for i in (1, 2):
        await store.add_message(StoredMessage.new_incoming(f"m{i}", "bob", "me", i, "hi"))
    store.mark_shown(1)
    assert store.committer is not None and store.committer._pending == []
    third = store.add_message(StoredMessage.new_incoming("m3", "bob", "me", 3, "hi"))
    assert [row[:2] for row, _ in store.committer._pending] == [("meta", "shown"), ("add", "bob")]
    await third
    assert store._read("SELECT v FROM meta WHERE k = 'shown'") == [(1,)]
    store.mark_shown(2)
    await store.close()
    again = UserStore(path)
    again.start()
    assert [m.id for m in again.unshown()] == ["m3"]
    await again.close()


async def test_a_seed_stores_start_up_reads_are_refused_once_the_commit_thread_shares_the_connection(
    tmp_path,
):
    """The start-up reads use the writing connection on the loop: after `start()` the commit
    thread may be inside a transaction on it, so they must come before (a fleet seed awaits the
    cluster between the two)."""
    store = SeedStore(tmp_path / "seed.sqlite3")
    assert store.load_seed_urls() == [] and store.load_sync_points() == {}
    store.start()
    with pytest.raises(InternalError):
        store.load_seed_urls()
    with pytest.raises(InternalError):
        store.load_sync_points()
    await store.close()
