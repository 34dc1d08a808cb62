"""Replies, reactions, edits and deletes between real headless users on loopback
(docs/PROTOCOL.md, "Replies, reactions, edits and deletes (r3)"): direct, through mail to a user
who is offline, and in a group; a peer cannot edit or delete another's message."""

from __future__ import annotations

import uuid

from node.clock import now_ms
from node.crypto.boxes import Boxes

from .test_groups import identity, lines_of, send_direct, start_all, stop_all
from .test_headless import Headless, ev


def act_chat(sender, name: str, to_key: str, to: str, text: str, act: dict, extra=None) -> str:
    """A chat written by hand, carrying an act."""
    return Boxes(sender).seal(
        to_key, uuid.uuid4().hex, name, to, now_ms(), text, {"act": act, **(extra or {})}
    )


async def test_reply_react_edit_delete_direct_and_a_hostile_edit_is_refused(seeds, tmp_path):
    a = await seeds("a")
    users = await start_all(a.url, tmp_path, ["Sally", "Bob"])
    sally, bob = users["Sally"], users["Bob"]
    try:
        endpoint = {n: u.lines[-1]["endpoint"] for n, u in users.items()}
        await bob.say("@Sally hello")
        m = (await sally.expect(ev("message")))["id"]
        await sally.say(f"/reply {m[:8]} hi back")
        got = await bob.expect(ev("message", reply_to=m))
        assert got["text"] == "hi back" and got["from"] == "Sally"
        reply_id = got["id"]
        await sally.say(f"/react {m[:8]} 👍")
        await bob.say(f"/react {m[:8]} ❤")
        changed = await bob.expect(ev("changed", id=m, reactions={"👍": 1, "❤": 1}))
        assert changed["edited"] is False and changed["text"] == "hello"
        await sally.expect(ev("changed", id=m, reactions={"👍": 1, "❤": 1}))
        await sally.say(f"/react {m[:8]} 🎉")  # one per person: the new one replaces the old
        await bob.expect(ev("changed", id=m, reactions={"🎉": 1, "❤": 1}))
        await bob.say(f"/edit {m[:8]} hello there")
        got = await sally.expect(ev("changed", id=m, edited=True))
        assert got["text"] == "hello there" and got["by"] == "Bob"
        # Bob's own node will not edit Sally's message ...
        await bob.say(f"/edit {reply_id[:8]} not yours")
        assert "only your own" in (await bob.expect(ev("error")))["message"]
        # ... nor does Sally's node take one written by hand
        ident = identity(tmp_path, "Bob")
        sally_key = identity(tmp_path, "Sally").key
        for act in (
            {"type": "edit", "ref": reply_id, "text": "forged"},
            {"type": "delete", "ref": reply_id},
        ):
            frame = act_chat(ident, "Bob", sally_key, "Sally", "edited: forged", act)
            answer = await send_direct(endpoint["Sally"], frame)
            assert answer["type"] == "error" and answer["code"] == "bad_request"
        await bob.say(f"/delete {m[:8]}")
        got = await sally.expect(ev("changed", id=m, deleted=True))
        assert got["text"] == "" and got["reactions"] == {}
        assert not lines_of(sally, "changed", id=reply_id)
        # what an r2 node shows: the fallback text in the box
        assert not [x for x in sally.lines if x["event"] == "message" and x["id"] != m]
    finally:
        await stop_all(users)


async def test_acts_reach_a_user_who_was_offline_through_mail(seeds, tmp_path):
    a = await seeds("a")
    users = await start_all(a.url, tmp_path, ["Sally", "Bob"])
    sally, bob = users["Sally"], users["Bob"]
    try:
        await bob.say("@Sally are you there")
        m = (await sally.expect(ev("message")))["id"]
        await sally.say("@Bob typo hree")
        s1 = (await bob.expect(ev("message", text="typo hree")))["id"]
        await sally.say("@Bob oops")
        s2 = (await bob.expect(ev("message", text="oops")))["id"]
        assert await users.pop("Bob").stop() == 0
        await sally.say(f"/reply {m[:8]} yes, here")
        await sally.say(f"/react {m[:8]} 👍")
        await sally.say(f"/edit {s1[:8]} typo here")
        await sally.say(f"/delete {s2[:8]}")
        for _ in range(4):
            await sally.expect(ev("state", state="stored"))
        bob = users["Bob"] = await Headless.start("Bob", a.url, tmp_path / "Bob")
        got = await bob.expect(ev("message", reply_to=m))
        assert got["text"] == "yes, here"
        await bob.expect(ev("changed", id=m, reactions={"👍": 1}))
        assert (await bob.expect(ev("changed", id=s1, edited=True)))["text"] == "typo here"
        await bob.expect(ev("changed", id=s2, deleted=True))
        for _ in range(4):
            await sally.expect(ev("delivered"))
    finally:
        await stop_all(users)


async def test_acts_in_a_group_and_a_member_cannot_edit_anothers(seeds, tmp_path):
    a = await seeds("a")
    users = await start_all(a.url, tmp_path, ["Ann", "Bob", "Cat"])
    ann, bob, cat = users["Ann"], users["Bob"], users["Cat"]
    try:
        endpoint = {n: u.lines[-1]["endpoint"] for n, u in users.items()}
        await ann.say("/group new ops Bob Cat")
        gid = (await ann.expect(ev("group")))["group"]
        for u in (bob, cat):
            await u.expect(ev("group", version=1))
        await bob.say(f"#{gid[:8]} ship it")
        mid = (await ann.expect(ev("message", group=gid)))["id"]
        await cat.expect(ev("message", group=gid, id=mid))
        await cat.say(f"/reply {mid[:8]} shipped")
        for u in (ann, bob):
            got = await u.expect(ev("message", group=gid, reply_to=mid))
            assert got["text"] == "shipped" and got["from"] == "Cat"
        await ann.say(f"/react {mid[:8]} 👍")
        for u in (bob, cat):
            await u.expect(ev("changed", id=mid, group=gid, reactions={"👍": 1}))
        await bob.say(f"/edit {mid[:8]} ship it now")
        for u in (ann, cat):
            got = await u.expect(ev("changed", id=mid, group=gid, edited=True))
            assert got["text"] == "ship it now" and got["reactions"] == {"👍": 1}
        await cat.say(f"/delete {mid[:8]}")
        assert "only your own" in (await cat.expect(ev("error")))["message"]
        cat_ident = identity(tmp_path, "Cat")
        ann_key = identity(tmp_path, "Ann").key
        for act in ({"type": "edit", "ref": mid, "text": "mine"}, {"type": "delete", "ref": mid}):
            part = {"type": "msg", "gid": gid, "v": 1, "mid": uuid.uuid4().hex}
            frame = act_chat(
                cat_ident, "Cat", ann_key, "Ann", "x", act, {"kind": "group", "group": part}
            )
            answer = await send_direct(endpoint["Ann"], frame)
            assert answer["type"] == "error" and answer["code"] == "bad_request"
        await bob.say(f"/delete {mid[:8]}")
        for u in (ann, cat):
            await u.expect(ev("changed", id=mid, group=gid, deleted=True))
    finally:
        await stop_all(users)
