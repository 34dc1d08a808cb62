"""Reach anyone, anytime: relay through the seeds, mail for offline users, acks that prove delivery."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sqlite3

from node.clock import now_ms
from node.crypto.keys import Identity
from node.crypto.signing import sign_mail, sign_take
from node.user.events import MessageState
from node.wire.protocol import CARRIED, Relayed

from .helpers import (
    RawClient,
    all_delivered,
    eventually,
    in_state,
    linked_seeds,
    next_event,
    received,
    record,
    registered,
)

RELAY_ONLY = {"relay_only": True}


async def texts(stream, count: int) -> list[str]:
    return [(await next_event(stream, received)).text for _ in range(count)]


async def test_relay_only_users_chat_both_ways_through_one_seed(seeds, users):
    a = await seeds("a")
    alice, alice_ev = await users("alice", [a.url], **RELAY_ONLY)
    bob, bob_ev = await users("bob", [a.url], **RELAY_ONLY)
    for ev in (alice_ev, bob_ev):
        await next_event(ev, registered)
    assert alice.endpoint == bob.endpoint == "relay:" and alice.server is None
    bob.add_contact("alice")

    msg_id = await alice.send("bob", "through the seed")
    sent = await next_event(alice_ev, in_state(msg_id, "sent"))
    assert sent.path == "relay"
    await next_event(alice_ev, in_state(msg_id, "delivered"))
    assert (await next_event(bob_ev, received)).text == "through the seed"
    back = await bob.send("alice", "and back")
    await next_event(bob_ev, in_state(back, "delivered"))
    assert (await next_event(alice_ev, received)).text == "and back"
    assert alice.path_to("bob") == "relay only"


async def test_relayed_chats_from_one_sender_are_received_in_the_order_they_came(seeds, users):
    """A relayed chat whose sender needs a lookup is not overtaken by the next one from the same
    sender (each relayed chat is received by a task of its own): stored and shown in order."""
    a = await seeds("a")
    alice, alice_ev = await users("alice", [a.url], **RELAY_ONLY)
    bob, bob_ev = await users("bob", [a.url], **RELAY_ONLY)
    for ev in (alice_ev, bob_ev):
        await next_event(ev, registered)
    found = await bob.inbox._sender("alice", "warm")
    gate = asyncio.Event()
    first = True

    async def slow_first(name: str, chat_id: str):  # the first lookup waits, the others do not
        nonlocal first
        if first:
            first = False
            await gate.wait()
        return found

    bob.inbox._sender = slow_first  # type: ignore[method-assign]
    now = now_ms()
    for i in range(3):
        text = alice.boxes.seal(bob.identity.key, f"m{i}", "alice", "bob", now + i, f"r{i}")
        frame = Relayed(type="relayed", from_="alice", frame=CARRIED.validate_json(text))
        bob.inbox.on_relayed(frame)
    for _ in range(10):  # turns enough for the later two to pass the first if they could
        await asyncio.sleep(0)
    gate.set()
    assert await texts(bob_ev, 3) == ["r0", "r1", "r2"]


async def test_relay_only_users_chat_across_two_seeds(seeds, users):
    a, b = await linked_seeds(seeds)
    alice, alice_ev = await users("alice", [a.url], **RELAY_ONLY)
    bob, bob_ev = await users("bob", [b.url], **RELAY_ONLY)
    for ev in (alice_ev, bob_ev):
        await next_event(ev, registered)
    await eventually(lambda: a.directory.is_online("bob"), what="bob online at a")
    ids = [await alice.send("bob", f"hop {i}") for i in range(3)]
    await all_delivered(alice_ev, ids)
    assert await texts(bob_ev, 3) == ["hop 0", "hop 1", "hop 2"]
    reply = await bob.send("alice", "hop back")
    await next_event(bob_ev, in_state(reply, "delivered"))


async def test_offline_recipient_gets_mail_in_order_once_after_the_sender_left(
    seeds, users, tmp_path
):
    a = await seeds("a")
    bob, bob_ev = await users("bob", [a.url])
    await next_event(bob_ev, registered)
    await users.stop(bob)
    alice, alice_ev = await users("alice", [a.url])
    ids = [await alice.send("bob", f"mail {i}") for i in range(5)]
    for msg_id in ids:  # the sender sees "stored": the mesh holds each one
        stored = await next_event(alice_ev, in_state(msg_id, "stored"))
        assert stored.path == "mail"
    await users.stop(alice)  # the sender goes offline too

    bob, bob_ev = await users("bob", [a.url], data_dir=tmp_path / "user-bob")
    assert await texts(bob_ev, 5) == [f"mail {i}" for i in range(5)]
    await eventually(lambda: a.mailbox.held_for("bob") == 0 or None, what="bob's mail to be taken")
    assert a.mailbox.held_for("alice") == 5  # the acks, held for the sender while it is away
    # the acks went to the offline sender as mail; it learns of delivery when it returns
    alice, alice_ev = await users("alice", [a.url], data_dir=tmp_path / "user-alice")
    await all_delivered(alice_ev, ids)
    # stored once each, in order, whatever path the copies took
    assert [m.text for m in bob.history("alice")] == [f"mail {i}" for i in range(5)]
    assert alice.pending_count() == 0


async def test_mail_outlives_the_seed_that_took_it(seeds, users, tmp_path):
    a, b = await linked_seeds(seeds)
    bob, bob_ev = await users("bob", [b.url])
    await next_event(bob_ev, registered)
    await users.stop(bob)
    alice, alice_ev = await users("alice", [a.url])
    msg_id = await alice.send("bob", "kept by the mesh")
    await next_event(alice_ev, in_state(msg_id, "stored"))
    await eventually(lambda: b.mailbox.held_count() == 1 or None, what="the item replicated to b")
    await a.stop()  # the seed that took the deposit dies
    bob, bob_ev = await users("bob", [b.url], data_dir=tmp_path / "user-bob")
    assert (await next_event(bob_ev, received)).text == "kept by the mesh"


async def test_the_embedded_seed_handoff_delivers(seeds, users, tmp_path):
    """The app hosting the seed quits; the next app's new seed knows nobody. A message to a contact
    seen a moment ago is not refused as unknown: the sender hands the new seed its contacts'
    records, and the message waits as mail for the recipient."""
    first = await seeds("embedded-one")
    port = first.port
    alice, alice_ev = await users("alice", [first.url])
    bob, bob_ev = await users("bob", [first.url])
    for ev in (alice_ev, bob_ev):
        await next_event(ev, registered)
    hello = await alice.send("bob", "before")
    await next_event(alice_ev, in_state(hello, "delivered"))
    await users.stop(bob)
    await first.stop()
    fresh = await seeds("embedded-two", port=port, data_dir=tmp_path / "fresh-seed")
    await next_event(alice_ev, registered, timeout=15)
    msg_id = await alice.send("bob", "after the handoff")
    await next_event(alice_ev, in_state(msg_id, "stored"), timeout=15)
    assert "bob" in fresh.directory
    bob, bob_ev = await users("bob", [fresh.url], data_dir=tmp_path / "user-bob")
    assert (await next_event(bob_ev, received)).text == "after the handoff"
    await next_event(alice_ev, in_state(msg_id, "delivered"))


class FakeRecipient:
    """A relay-only user written from the protocol, answering relayed chats as a test says."""

    def __init__(self, client: RawClient, identity: Identity, name: str) -> None:
        self.client = client
        self.identity = identity
        self.name = name

    @classmethod
    async def register(cls, url: str, name: str) -> FakeRecipient:
        identity = Identity.generate()
        client = await RawClient.open(url)
        reply = await client.request(
            {"type": "register", "record": record(identity, name, "relay:")}
        )
        assert reply["type"] == "registered", reply
        return cls(client, identity, name)

    async def next_chat(self) -> dict:
        while True:
            push = await self.client.next_push()
            if push["type"] == "relayed" and push["frame"]["type"] == "chat":
                return push["frame"]

    def proof(self, sender_key: str, sender: str, msg_id: str, by: Identity | None = None) -> str:
        from nacl.public import Box
        from nacl.signing import VerifyKey

        pk = VerifyKey(base64.b64decode(sender_key)).to_curve25519_public_key()
        box = Box((by or self.identity).signing_key.to_curve25519_private_key(), pk)
        said = {"from": sender, "id": msg_id, "to": self.name}
        body = b"p2pchat-ack-v1:" + json.dumps(said, sort_keys=True, separators=(",", ":")).encode()
        nonce = os.urandom(24)
        return base64.b64encode(nonce + box.encrypt(body, nonce).ciphertext).decode()

    async def ack(self, to: str, msg_id: str, proof: str) -> dict:
        frame = {"type": "ack", "id": msg_id, "proof": proof}
        return await self.client.request({"type": "relay", "to": to, "frame": frame})


async def test_forged_acks_never_mark_delivered(seeds, users):
    a = await seeds("a")
    alice, alice_ev = await users("alice", [a.url])
    await next_event(alice_ev, registered)
    bob = await FakeRecipient.register(a.url, "bob")
    msg_id = await alice.send("bob", "prove it")
    chat = await bob.next_chat()
    assert chat["id"] == msg_id
    mallory = Identity.generate()
    garbage = base64.b64encode(os.urandom(80)).decode()
    for proof in (
        garbage,  # opens to nothing
        bob.proof(alice.identity.key, "alice", "another-id"),  # a proof for another message
        bob.proof(alice.identity.key, "alice", msg_id, by=mallory),  # a proof by another key
    ):
        assert (await bob.ack("alice", msg_id, proof))["type"] == "relay_ok"
    # an ack without a proof is not even a frame
    reply = await bob.client.request(
        {"type": "relay", "to": "alice", "frame": {"type": "ack", "id": msg_id}}
    )
    assert reply["code"] == "bad_request"
    await eventually(
        lambda: alice.delivery.bogus_acks >= 3 or None, what="the forged acks to arrive"
    )
    assert alice.outbox.find(msg_id) is not None, "a forged ack marked the message delivered"
    # the real proof delivers it
    await bob.ack("alice", msg_id, bob.proof(alice.identity.key, "alice", msg_id))
    await next_event(alice_ev, in_state(msg_id, "delivered"))


async def test_an_unacknowledged_relayed_message_goes_to_mail(seeds, users):
    a = await seeds("a")
    alice, alice_ev = await users("alice", [a.url], relay_ack_timeout=0.3, ack_timeout=0.3)
    await next_event(alice_ev, registered)
    bob = await FakeRecipient.register(a.url, "bob")  # it takes relayed frames and never acks
    msg_id = await alice.send("bob", "are you there")
    await next_event(alice_ev, in_state(msg_id, "sent"))
    stored = await next_event(alice_ev, in_state(msg_id, "stored"))
    assert stored.path == "mail" and a.mailbox.held_count() == 1
    del bob


async def test_quotas_answer_quota_and_lose_nothing(seeds, users, tmp_path):
    a = await seeds("a", mail_per_pair=3)
    bob, bob_ev = await users("bob", [a.url])
    await next_event(bob_ev, registered)
    await users.stop(bob)
    alice, alice_ev = await users("alice", [a.url])
    ids = [await alice.send("bob", f"q{i}") for i in range(5)]
    for msg_id in ids[:3]:
        await next_event(alice_ev, in_state(msg_id, "stored"))
    held = await next_event(
        alice_ev, lambda e: isinstance(e, MessageState) and e.reason and "no more mail" in e.reason
    )
    assert held.state == "queued" and held.id in ids[3:]
    assert a.mailbox.held_count() == 3 and alice.pending_count() == 5
    bob, bob_ev = await users("bob", [a.url], data_dir=tmp_path / "user-bob")
    got = sorted(await texts(bob_ev, 5))
    assert got == [f"q{i}" for i in range(5)]  # the three held as mail and the two kept by alice
    await all_delivered(alice_ev, ids)


async def test_a_deposit_over_a_quota_is_refused_and_what_is_held_stays(seeds):
    a = await seeds("a", mail_per_pair=2)
    sender, target = Identity.generate(), Identity.generate()
    owner = await RawClient.open(a.url)
    await owner.request({"type": "register", "record": record(target, "target")})
    await owner.close()
    client = await RawClient.open(a.url)
    await client.request({"type": "register", "record": record(sender, "sender")})

    def item(i: int) -> dict:
        chat = CARRIED.validate_python(
            {
                "type": "chat",
                "id": f"m{i}",
                "from": "sender",
                "to": "target",
                "nonce": base64.b64encode(os.urandom(24)).decode(),
                "box": base64.b64encode(os.urandom(40)).decode(),
            }
        )
        from node.clock import now_ms

        return json.loads(
            sign_mail(sender, "target", "sender", chat, now_ms()).model_dump_json(by_alias=True)
        )

    replies = [await client.request({"type": "deposit", "item": item(i)}) for i in range(3)]
    assert [r["type"] for r in replies[:2]] == ["deposited", "deposited"]
    assert replies[2]["type"] == "error" and replies[2]["code"] == "quota"
    assert (await client.request({"type": "deposit", "item": item(0)}))[
        "type"
    ] == "deposited"  # idempotent
    assert a.mailbox.held_count() == 2


async def test_a_take_the_seed_cannot_store_is_answered_internal_and_the_mail_stays(seeds):
    """`took` is the seed's word that the take is on disk: when its database refuses the write
    (here a trigger fails it as a full disk would), the recipient is told to retry, its mail
    stays held and counted, and the retried take takes it."""
    a = await seeds("a")
    sender, target = Identity.generate(), Identity.generate()
    client = await RawClient.open(a.url)
    await client.request({"type": "register", "record": record(sender, "sender")})
    chat = CARRIED.validate_python(
        {
            "type": "chat",
            "id": "m0",
            "from": "sender",
            "to": "target",
            "nonce": base64.b64encode(os.urandom(24)).decode(),
            "box": base64.b64encode(os.urandom(40)).decode(),
        }
    )
    from node.clock import now_ms

    item = json.loads(
        sign_mail(sender, "target", "sender", chat, now_ms()).model_dump_json(by_alias=True)
    )
    owner = await RawClient.open(a.url)
    await owner.request({"type": "register", "record": record(target, "target")})
    await owner.close()
    assert (await client.request({"type": "deposit", "item": item}))["type"] == "deposited"
    with sqlite3.connect(a.store.path) as other:  # the seed's own file, from outside
        other.execute(
            "CREATE TRIGGER disk_full BEFORE INSERT ON takes "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
    other.close()
    owner = await RawClient.open(a.url)
    await owner.request({"type": "register", "record": record(target, "target")})
    taken = json.loads(
        sign_take(target, "target", [("sender", "chat", "m0")], now_ms()).model_dump_json()
    )
    reply = await owner.request({"type": "take", "taken": taken})
    assert (reply["type"], reply.get("code")) == ("error", "internal")
    assert a.mailbox.held_for("target") == 1
    assert a.store.read("SELECT id FROM mail WHERE recipient = 'target'") == [("m0",)]
    with sqlite3.connect(a.store.path) as other:
        other.execute("DROP TRIGGER disk_full")
    other.close()
    assert (await owner.request({"type": "take", "taken": taken}))["type"] == "took"
    assert a.mailbox.held_for("target") == 0
    assert a.store.read("SELECT id FROM mail WHERE recipient = 'target'") == []


async def test_only_the_recipient_can_take_its_mail(seeds, users, tmp_path):
    a = await seeds("a")
    bob, bob_ev = await users("bob", [a.url])
    await next_event(bob_ev, registered)
    await users.stop(bob)
    alice, alice_ev = await users("alice", [a.url])
    msg_id = await alice.send("bob", "for bob only")
    await next_event(alice_ev, in_state(msg_id, "stored"))
    mallory = Identity.generate()
    raw = await RawClient.open(a.url)
    await raw.request({"type": "register", "record": record(mallory, "mallory")})
    from node.clock import now_ms

    ids = [("alice", "chat", msg_id)]
    as_bob = json.loads(sign_take(mallory, "bob", ids, now_ms()).model_dump_json())
    assert (await raw.request({"type": "take", "taken": as_bob}))["code"] == "bad_request"
    as_self = json.loads(sign_take(mallory, "mallory", ids, now_ms()).model_dump_json())
    assert (await raw.request({"type": "take", "taken": as_self}))["type"] == "took"
    unregistered = await RawClient.open(a.url)
    assert (await unregistered.request({"type": "take", "taken": as_bob}))[
        "code"
    ] == "not_registered"
    assert a.mailbox.held_count() == 1  # nothing deleted
    bob, bob_ev = await users("bob", [a.url], data_dir=tmp_path / "user-bob")
    assert (await next_event(bob_ev, received)).text == "for bob only"


async def test_relay_needs_a_session_and_stays_within_its_budget(seeds, users):
    a = await seeds("a", relay_rate=65536, relay_burst=65536)
    bob, bob_ev = await users("bob", [a.url], **RELAY_ONLY)
    await next_event(bob_ev, registered)
    frame = {"type": "ack", "id": "x", "proof": base64.b64encode(os.urandom(40)).decode()}
    anon = await RawClient.open(a.url)
    assert (await anon.request({"type": "relay", "to": "bob", "frame": frame}))[
        "code"
    ] == "not_registered"
    spammer = Identity.generate()
    client = await RawClient.open(a.url)
    await client.request({"type": "register", "record": record(spammer, "spammer")})
    big = {
        "type": "chat",
        "id": "c",
        "from": "spammer",
        "to": "bob",
        "nonce": base64.b64encode(os.urandom(24)).decode(),
        "box": base64.b64encode(os.urandom(30_000)).decode(),
    }
    codes = [
        (await client.request({"type": "relay", "to": "bob", "frame": big}))["type"]
        for _ in range(4)
    ]
    assert (
        codes[:1] == ["relay_ok"] and "error" in codes
    )  # 64 KiB of budget: the second 40 KB is refused
    forged = {**big, "from": "bob"}
    assert (await client.request({"type": "relay", "to": "bob", "frame": forged}))[
        "code"
    ] == "bad_request"
    oversize = {**big, "box": base64.b64encode(os.urandom(40_000)).decode()}
    assert (await client.request({"type": "relay", "to": "bob", "frame": oversize}))[
        "code"
    ] == "bad_request"
