"""The pure rules of replies, reactions, edits and deletes (node/user/acts.py), and how the store
applies them (act_node.py): who may change what, one reaction per person, late and early acts."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import replace

from node.crypto.boxes import Boxes
from node.crypto.keys import Identity
from node.storage.migrations import schema_version
from node.user.act_node import ActNode
from node.user.acts import (
    DELETED,
    EDITED,
    dump,
    fallback,
    load,
    make,
    may_change,
    parse_act,
    shown_text,
    tally,
    valid_emoji,
)
from node.user.events import MessageChanged
from node.user.store import STEPS, StoredMessage, UserStore
from node.wire.protocol import MAX_BOX, MAX_TEXT


def test_a_reaction_is_one_emoji_never_text_or_controls():
    for good in ["👍", "❤", "❤️", "👍🏽", "👩‍👩‍👧", "1️⃣", "🇫🇷", ""]:
        assert valid_emoji(good), good
    for bad in ["a", "ok", " ", "👍 ", "\x1b[31m", "\u202e👍", "👍" * 9, "1", "<b>"]:
        assert not valid_emoji(bad), bad


def test_parse_act_takes_exact_fields_and_sends_anything_else_to_text():
    assert parse_act({"type": "reply", "ref": "m1", "text": "yes"}).text == "yes"
    assert parse_act({"type": "react", "ref": "m1", "emoji": "👍"}).emoji == "👍"
    assert parse_act({"type": "delete", "ref": "m1"}).type == "delete"
    for bad in [
        None,
        "reply",
        {"type": "reply", "ref": "m1"},  # a reply with no text
        {"type": "edit", "ref": "m1", "text": ""},
        {"type": "react", "ref": "m1", "emoji": "lol"},
        {"type": "pin", "ref": "m1"},
        {"type": "delete", "ref": ""},
        {"type": "delete", "ref": "x" * 65},
        {"type": "delete", "ref": "m1", "extra": 1},
        {"type": "edit", "ref": "m1", "text": "x" * (MAX_TEXT + 1)},
    ]:
        assert parse_act(bad) is None, bad


def test_fallback_text_reads_well_on_a_node_without_acts_and_fits():
    assert fallback(make("reply", "m", "sure"), "lunch?\nat noon") == "> lunch?\nsure"
    assert fallback(make("react", "m", emoji="👍"), "lunch?") == "reacted 👍 to “lunch?”"
    assert fallback(make("react", "m"), "lunch?") == "removed a reaction"
    assert fallback(make("edit", "m", "new"), "old") == "edited: new"
    assert fallback(make("delete", "m"), "secret") == "deleted a message"
    assert "secret" not in fallback(make("delete", "m"), "secret")
    long = fallback(make("reply", "m", "y" * MAX_TEXT), "q" * 500)
    assert len(long) == MAX_TEXT and long.startswith("> " + "q" * 79 + "…\n")


def test_a_reply_of_the_largest_text_still_fits_one_box():
    """A reply carries its text twice (the act, and the fallback for older nodes): the box must
    stay under MAX_BOX whatever the characters."""
    for ch in ["𝄞", "\x01", '"']:
        big = ch * MAX_TEXT
        act = make("reply", "m" * 64, big)
        text = fallback(act, big)
        sealed = Boxes(Identity.generate()).seal(
            Identity.generate().key,
            "i" * 64,
            "n" * 32,
            "t" * 32,
            2**53 - 1,
            text,
            {
                "act": json.loads(dump(act)),
                "kind": "group",
                "group": {"type": "msg", "x": "y" * 150},
            },
        )
        assert len(json.loads(sealed)["box"]) <= MAX_BOX, ch
        assert text.startswith("> ")


def test_only_the_sender_may_edit_or_delete_anyone_may_reply_or_react():
    assert may_change(make("edit", "m", "x"), "bob", "Bob")
    assert not may_change(make("edit", "m", "x"), "Mallory", "Bob")
    assert not may_change(make("delete", "m"), "Mallory", "Bob")
    assert may_change(make("react", "m", emoji="👍"), "Mallory", "Bob")
    assert may_change(make("reply", "m", "x"), "Mallory", "Bob")


def test_shown_text_and_tally():
    reply = make("reply", "m", "mine")
    assert shown_text("> q\nmine", reply, 0) == "mine"
    assert shown_text("x", None, EDITED) == "x"
    assert shown_text("x", reply, DELETED) == ""
    assert tally(["👍", "❤", "👍", ""]) == (("👍", 2), ("❤", 1))


def incoming(msg_id: str, ts: int, text: str, act=None, sender: str = "Bob") -> StoredMessage:
    msg = StoredMessage.new_incoming(msg_id, sender, "Sally", ts, text)
    return msg if act is None else replace(msg, act=dump(act))


async def settle(store: UserStore) -> None:
    """Every row queued so far is on disk (the committer keeps order)."""
    await store._submit("meta", "probe", 1)
    for _ in range(3):
        await asyncio.sleep(0)
    await store._submit("meta", "probe", 2)


async def test_the_store_applies_acts_in_any_order_and_keeps_no_original(tmp_path):
    path = tmp_path / "user.sqlite3"
    store = UserStore(path)
    store.start()
    events: list = []
    acts = ActNode(store, events.append)

    async def arrive(msg: StoredMessage) -> None:
        fut = store.add_message(msg)
        n = await fut
        acts.stored("p", msg.peer, fut, msg.sender, msg.ts, msg.id)(load(msg.act))
        assert n
        await settle(store)

    # an edit that comes before its target (another path) waits for it
    await arrive(incoming("e2", 30, "edited: second", make("edit", "m1", "second")))
    assert not events
    await arrive(incoming("m1", 10, "first draft"))
    await settle(store)
    assert [(e.id, e.text, e.edited) for e in events] == [("m1", "second", True)]
    # an older edit that arrives late changes nothing
    await arrive(incoming("e1", 20, "edited: first", make("edit", "m1", "first")))
    await settle(store)
    assert len(events) == 1
    # one reaction per person; a newer one replaces it, an empty one takes it back
    await arrive(incoming("r1", 40, "x", make("react", "m1", emoji="👍")))
    await arrive(incoming("r2", 50, "x", make("react", "m1", emoji="❤")))
    await settle(store)
    assert events[-1].reactions == (("❤", 1),)
    await arrive(incoming("r3", 60, "x", make("react", "m1")))
    await settle(store)
    assert events[-1].reactions == ()
    # someone else's edit of Bob's message is never applied, even stored
    await arrive(incoming("x1", 70, "x", make("edit", "m1", "hijack"), sender="Mallory"))
    await settle(store)
    assert acts.target("p", "bob", "m1").text == "second"
    assert acts.refused("p", "bob", "Mallory", make("delete", "m1"))
    # nor Bob's edit of Sally's own message in their conversation: refused, and if it came
    # first (by another path) it is kept and never applied
    await arrive(incoming("x2", 75, "x", make("edit", "o1", "forged")))
    await store.add_message(StoredMessage.new_outgoing("o1", "Sally", "Bob", 74, "mine"))
    acts.arrived("p", "bob", "o1")
    await settle(store)
    assert acts.refused("p", "bob", "Bob", make("edit", "o1", "forged"))
    assert acts.target("p", "bob", "o1").text == "mine"
    assert not acts.refused("p", "bob", "Bob", make("react", "o1", emoji="👍"))
    await arrive(incoming("d1", 80, "deleted a message", make("delete", "m1")))
    await settle(store)
    assert isinstance(events[-1], MessageChanged) and events[-1].deleted
    page = store.history("bob")
    assert [m.id for m in page] == ["m1", "o1"]  # reactions, edits, deletes are no lines
    await store.close()
    raw = sqlite3.connect(path)
    assert schema_version(raw) == len(STEPS) == 6
    texts = [r[0] for r in raw.execute("SELECT text FROM messages")]
    assert "first draft" not in texts and "second" not in [
        r[0] for r in raw.execute("SELECT text FROM messages WHERE id = 'm1'")
    ]
