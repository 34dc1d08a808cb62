"""Group conversations between real headless users on loopback (docs/PROTOCOL.md, Groups (r3)):
every member ends with the same messages once, removed members and forgers are refused, and two
admins changing a group at once converge."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter

from websockets.asyncio.client import connect

from node.clock import now_ms
from node.crypto.boxes import Boxes
from node.crypto.keys import Identity
from node.user.groups import Change, apply, canonical, load_state

from .test_headless import Headless, ev


async def start_all(seed_url, tmp_path, names, extra=None):
    extra = extra or {}
    users = {n: await Headless.start(n, seed_url, tmp_path / n, *extra.get(n, ())) for n in names}
    for u in users.values():
        await u.expect(ev("registered"))
    return users


async def stop_all(users):
    for u in users.values():
        await u.stop()


def lines_of(user, kind, **fields):
    return [x for x in user.lines if ev(kind, **fields)(x)]


async def count_of(user, n, kind, **fields):
    """Wait until `user` has printed `n` lines of this kind (reading on as needed)."""
    while len(lines_of(user, kind, **fields)) < n:
        try:
            await user.expect(ev(kind, **fields), timeout=30)
        except TimeoutError:
            seen = Counter(
                (x["event"], x.get("to"), x.get("state"), x.get("reason"), x.get("from"))
                for x in user.lines
                if x["event"] in ("state", "delivered", "message", "failed", "error")
            )
            raise AssertionError(f"{n} {kind} lines not seen: {seen}") from None


async def test_five_members_two_offline_one_relay_only_all_hold_the_same_30_messages(
    seeds, tmp_path
):
    a = await seeds("a")
    names = ["Ann", "Bob", "Cat", "Dan", "Eve"]
    users = await start_all(a.url, tmp_path, names, {"Bob": ["--relay-only"]})
    try:
        for n in ("Dan", "Eve"):  # registered once, offline while the group is made and used
            assert await users.pop(n).stop() == 0
        ann, bob, cat = users["Ann"], users["Bob"], users["Cat"]
        await ann.say("/group new ops Bob Cat Dan Eve")
        made = await ann.expect(ev("group"))
        gid = made["group"]
        assert made["members"] == names and made["admins"] == ["Ann"] and made["version"] == 1
        for u in (bob, cat):
            assert (await u.expect(ev("group"))) == made
        senders = ["Ann", "Bob", "Cat"]
        for i in range(10):
            for s in senders:
                await users[s].say(f"#{gid[:8]} {s}-{i}")
        for s in senders:  # each copy to each other member, online or not, leaves the sender
            await count_of(users[s], 20, "delivered", group=gid)  # the two online others
            await count_of(users[s], 20, "state", group=gid, state="stored")  # Dan's and Eve's
        for n in ("Dan", "Eve"):
            users[n] = await Headless.start(n, a.url, tmp_path / n)
        for n in ("Dan", "Eve"):
            got = await users[n].expect(ev("group"))
            assert got == made
        for s in senders:  # every copy acknowledged by its member
            await count_of(users[s], 40, "delivered", group=gid)
        expected = {(s, f"{s}-{i}") for s in senders for i in range(10)}
        for n, u in users.items():
            await count_of(u, 20 if n in senders else 30, "message", group=gid)
            got = lines_of(u, "message", group=gid)
            own = {(n, f"{n}-{i}") for i in range(10)} if n in senders else set()
            assert {(x["from"], x["text"]) for x in got} | own == expected, n
            assert len(got) == len(expected - own)  # each once
            for s in senders:  # each sender's in its order: the conversation is ordered by ts
                by_ts = sorted((x for x in got if x["from"] == s), key=lambda x: x["ts"])
                assert [x["text"] for x in by_ts] == [f"{s}-{i}" for i in range(10)][: len(by_ts)]
            assert Counter(x["id"] for x in got).most_common(1)[0][1] == 1
    finally:
        await stop_all(users)


# ---------------------------------------------------------------- frames written by hand


def identity(tmp_path, name) -> Identity:
    return Identity.load_or_create(tmp_path / name)


async def send_direct(endpoint: str, frame: str) -> dict:
    """One chat frame straight to a user's endpoint; its answer (ack or error)."""
    async with connect(endpoint, subprotocols=["p2pchat.v1"], compression=None) as ws:
        await ws.send(frame)
        return json.loads(await asyncio.wait_for(ws.recv(), 10))


def group_chat(sender: Identity, name: str, to_key: str, to: str, text: str, group: dict) -> str:
    return Boxes(sender).seal(
        to_key,
        uuid.uuid4().hex,
        name,
        to,
        now_ms(),
        text,
        {"kind": "group", "group": group},
    )


def msg_part(gid: str, v: int) -> dict:
    return {"type": "msg", "gid": gid, "v": v, "mid": uuid.uuid4().hex}


async def test_removed_members_forgers_replays_and_impostors_are_refused(seeds, tmp_path):
    a = await seeds("a")
    users = await start_all(a.url, tmp_path, ["Ann", "Bob", "Cat", "Dan"])
    ann, bob, cat = users["Ann"], users["Bob"], users["Cat"]
    try:
        endpoint = {n: u.lines[-1]["endpoint"] for n, u in users.items()}
        ident = {n: identity(tmp_path, n) for n in users}
        bob_key = ident["Bob"].key
        await ann.say("/group new ops Bob Cat")
        v1 = await ann.expect(ev("group"))
        gid = v1["group"]
        for u in (bob, cat):
            await u.expect(ev("group", version=1))
        await ann.say(f"/group remove {gid[:6]} Cat")
        for u in (ann, bob, cat):  # the removed member is told too
            v2 = await u.expect(ev("group", version=2))
            assert v2["members"] == ["Ann", "Bob"]
        # after its removal a member gets nothing: copies go to the members of the state held
        await bob.say(f"#{gid} after Cat left")
        queued = await bob.expect(ev("state", group=gid, state="queued", to=gid))
        await bob.expect(ev("delivered", group=gid, id=queued["id"]))
        assert {x["to"] for x in lines_of(bob, "state", id=queued["id"])} - {gid} == {"Ann"}
        assert (await ann.expect(ev("message", group=gid)))["text"] == "after Cat left"
        await cat.say(f"#{gid} let me in")  # its own node knows it is out
        assert "not a member" in (await cat.expect(ev("error")))["message"]
        # ... and its messages written by hand after the removal version are refused
        frame = group_chat(ident["Cat"], "Cat", bob_key, "Bob", "sneaky", msg_part(gid, 1))
        answer = await send_direct(endpoint["Bob"], frame)
        assert answer["type"] == "error" and "not a member" in answer["message"]
        # a message from someone never in the group
        frame = group_chat(ident["Dan"], "Dan", bob_key, "Bob", "hi", msg_part(gid, 2))
        answer = await send_direct(endpoint["Bob"], frame)
        assert answer["type"] == "error" and answer["code"] == "bad_request"
        # a message claiming another member as its sender: the box does not open as Ann's
        frame = group_chat(ident["Dan"], "Ann", bob_key, "Bob", "from Ann", msg_part(gid, 2))
        answer = await send_direct(endpoint["Bob"], frame)
        assert answer["type"] == "error" and answer["code"] == "bad_box"
        # a state signed by a member who is not an admin
        v2_state = load_state(next(r for r in _states_at(tmp_path / "Bob", gid) if r["v"] == 2))
        forged = apply(v2_state, "Ann", ident["Bob"].sign, Change(topic="mine"), now_ms())
        body = {k: v for k, v in forged.raw.items() if k != "sig"} | {"by": "Bob"}
        raw = body | {"sig": ident["Bob"].sign(b"p2pchat-group-state-v1:" + canonical(body))}
        frame = group_chat(
            ident["Bob"], "Bob", ident["Ann"].key, "Ann", "x", {"type": "state", "state": raw}
        )
        answer = await send_direct(endpoint["Ann"], frame)
        assert answer["type"] == "error" and "not an admin" in answer["message"]
        # an old state replayed is taken as a copy and changes nothing
        v1_raw = next(r for r in _states_at(tmp_path / "Bob", gid) if r["v"] == 1)
        frame = group_chat(
            ident["Ann"], "Ann", bob_key, "Bob", "x", {"type": "state", "state": v1_raw}
        )
        assert (await send_direct(endpoint["Bob"], frame))["type"] == "ack"
        await ann.say(f"/group topic {gid} still ours")
        top = await bob.expect(ev("group", version=3))
        assert top["topic"] == "still ours" and top["members"] == ["Ann", "Bob"]
        assert [x["version"] for x in lines_of(bob, "group")] == [1, 2, 3]
        assert not lines_of(cat, "message", group=gid)
        # a member who is not an admin leaves: an admin removes it
        await bob.say(f"/group leave {gid}")
        assert (await ann.expect(ev("group", version=4)))["members"] == ["Ann"]
        # a member added back (after versions it missed) catches up and writes again
        await ann.say(f"/group add {gid} Cat")
        back = await cat.expect(ev("group", version=5), timeout=30)
        assert back["members"] == ["Ann", "Cat"] and back["topic"] == "still ours"
        await cat.say(f"#{gid} back again")
        assert (await ann.expect(ev("message", group=gid, **{"from": "Cat"})))["text"] == (
            "back again"
        )
        # a member added later starts from the current state (version 6, no earlier ones)
        dan = users["Dan"]
        await ann.say(f"/group add {gid} Dan")
        joined = await dan.expect(ev("group"))
        assert joined["version"] == 6 and joined["members"] == ["Ann", "Cat", "Dan"]
        await cat.say(f"#{gid} welcome Dan")
        got = await dan.expect(ev("message", group=gid))
        assert got["text"] == "welcome Dan" and got["from"] == "Cat"
        assert [x["text"] for x in lines_of(dan, "message", group=gid)] == ["welcome Dan"]
    finally:
        await stop_all(users)


def _states_at(data_dir, gid) -> list[dict]:
    """The group states a user stored (read from its store, as the test cannot ask it)."""
    import sqlite3

    db = sqlite3.connect(data_dir / "user.sqlite3")
    try:
        rows = db.execute("SELECT state FROM group_states WHERE gid = ? ORDER BY v", (gid,))
        return [json.loads(r[0]) for r in rows]
    finally:
        db.close()


async def test_two_admins_changing_the_group_at_once_converge(seeds, tmp_path):
    a = await seeds("a")
    users = await start_all(a.url, tmp_path, ["Ann", "Bob", "Cat"])
    ann, bob, cat = users["Ann"], users["Bob"], users["Cat"]
    try:
        await ann.say("/group new ops Bob Cat")
        gid = (await ann.expect(ev("group")))["group"]
        await ann.say(f"/group admin {gid} Bob")
        for u in (ann, bob, cat):
            await u.expect(ev("group", version=2))
        # both at once: neither has seen the other's change when it makes its own
        ann.proc.stdin.write(f"/group topic {gid} from Ann\n".encode())
        bob.proc.stdin.write(f"/group admin {gid} Cat\n".encode())
        await asyncio.gather(ann.proc.stdin.drain(), bob.proc.stdin.drain())

        def both(line) -> bool:
            return (
                line["event"] == "group" and line["topic"] == "from Ann" and "Cat" in line["admins"]
            )

        finals = [await u.expect(both, timeout=30) for u in users.values()]
        assert all(f == finals[0] for f in finals), finals
        assert finals[0]["admins"] == ["Ann", "Bob", "Cat"] and finals[0]["version"] == 4
    finally:
        await stop_all(users)
