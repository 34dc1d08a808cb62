"""The store's additions for the terminal client: read markers, blocks, verified marks, search, paging."""

from __future__ import annotations

import sqlite3

from node.storage.migrations import schema_version
from node.user.store import STEPS, StoredMessage, UserStore


def incoming(i: int, text: str | None = None, sender: str = "Bob") -> StoredMessage:
    return StoredMessage.new_incoming(f"m{i}", sender, "Sally", i, text or f"line {i}")


async def reopen(store: UserStore, path) -> UserStore:
    await store.close()
    again = UserStore(path)
    again.start()
    return again


async def test_unread_counts_and_read_markers_survive_a_restart(tmp_path):
    path = tmp_path / "user.sqlite3"
    store = UserStore(path)
    store.start()
    store.add_contact("Bob", now=1, new=True)
    store.add_contact("Carol", now=1)
    ns = [await store.add_message(incoming(i)) for i in range(5)]
    await store.add_message(StoredMessage.new_outgoing("o1", "Sally", "Bob", 9, "mine"))
    await store.add_message(incoming(7, sender="Carol"))
    assert store.unread() == {"bob": 5, "carol": 1}
    store.mark_read("bob", ns[2])
    store.mark_read("bob", ns[0])  # never moves back
    store = await reopen(store, path)
    assert store.unread() == {"bob": 2, "carol": 1}
    assert store.contact("bob").read_upto == ns[2]
    # a contact removed and added again starts with its old messages read
    store.remove_contact("Carol")
    store.add_contact("Carol", now=2)
    assert store.unread() == {"bob": 2}
    await store.close()


async def test_blocks_and_verified_marks_are_kept_and_a_changed_key_clears_the_mark(tmp_path):
    path = tmp_path / "user.sqlite3"
    store = UserStore(path)
    store.start()
    assert store.block("Mallory", now=1) and not store.block("mallory", now=2)
    store.add_contact("Bob", now=1)
    store.pin("bob", "K1")
    store.set_verified("bob", True)
    store = await reopen(store, path)
    assert store.is_blocked("MALLORY") and store.blocked() == ["Mallory"]
    assert store.contact("bob").verified
    store.set_changed_key("bob", "K2")
    assert not store.contact("bob").verified
    assert store.unblock("mallory") and not store.unblock("mallory")
    store = await reopen(store, path)
    assert not store.contact("bob").verified and store.blocked() == []
    await store.close()


async def test_search_reads_the_whole_history_and_pages_around_a_hit(tmp_path):
    store = UserStore(tmp_path / "user.sqlite3")
    store.start()
    texts = ["plain", "50% off", "a_b", "Lunch at noon", "lunch again"] + [
        f"filler {i}" for i in range(300)
    ]
    ns = [await store.add_message(incoming(i, t)) for i, t in enumerate(texts)]
    await store.add_message(incoming(999, "lunch with carol", sender="Carol"))
    assert [m.text for m in store.search("bob", "LUNCH")] == ["lunch again", "Lunch at noon"]
    assert [m.text for m in store.search("bob", "%")] == ["50% off"]  # wildcards are literal
    assert [m.text for m in store.search("bob", "_")] == ["a_b"]
    around = store.history_around("bob", ns[150], limit=10)
    assert [m.n for m in around] == ns[145:155] and ns[150] in [m.n for m in around]
    after = store.history_after("bob", ns[-3], limit=10)
    assert [m.n for m in after] == ns[-2:]
    await store.close()


def test_the_step_for_the_terminal_client_counts_old_history_as_read(tmp_path):
    path = tmp_path / "user.sqlite3"
    old = sqlite3.connect(path)
    for number, step in enumerate(STEPS[:2], 1):  # before step 3, the terminal client's
        old.executescript(f"{step}\nPRAGMA user_version = {number};")
    old.execute("INSERT INTO contacts(nkey, name, new, added) VALUES ('bob', 'Bob', 0, 1)")
    old.execute(
        "INSERT INTO messages(peer, id, outgoing, sender, recipient, ts, text, state) "
        "VALUES ('bob', 'm1', 0, 'Bob', 'Sally', 1, 'old', 'received')"
    )
    old.commit()
    old.close()
    store = UserStore(path)
    assert schema_version(store.db) == len(STEPS)
    assert store.unread() == {} and store.blocked() == []
    store.db.close()
    store.reader.close()


async def test_last_seen_flags_and_retries_are_kept_across_a_restart(tmp_path):
    """Step 4: a contact's last seen only moves forward; a message from a changed key keeps its
    flag; a message queued again by /retry keeps when (its expiry counts from then)."""
    path = tmp_path / "user.sqlite3"
    store = UserStore(path)
    store.start()
    store.add_contact("Bob", now=1)
    assert store.seen("bob", 5000) == 5000
    assert store.seen("bob", 4000) == 5000  # an older word does not move it back
    assert store.seen("nobody", 9000) is None  # only contacts
    await store.add_message(incoming(1))
    await store.add_message(
        StoredMessage.new_incoming("m2", "Bob", "Sally", 2, "new key", key_changed=True)
    )
    out = StoredMessage.new_outgoing("abcd-1", "Sally", "Bob", 3, "mine")
    await store.add_message(out)
    await store.set_state("bob", "abcd-1", "failed", "cancelled")
    assert store.last_outgoing(None, ("failed",)).id == "abcd-1"
    assert store.last_outgoing("carol", ("failed",)) is None
    await store.requeue(out, 7000, "retrying")
    store = await reopen(store, path)
    assert store.contact("bob").last_seen == 5000
    assert [m.key_changed for m in store.history("bob")] == [False, True, False]
    [again] = store.outgoing(None, "abcd")
    assert (again.state, again.queued_at, again.since) == ("queued", 7000, 7000)
    assert [m.id for m in store.pending()] == ["abcd-1"]
    assert store.outgoing("bob", "zz") == [] and store.outgoing(None, "m1") == []  # incoming
    await store.close()
