"""Batched chats on a direct link (r3): `chats` and `acks` frames, negotiated by subprotocol.

Real nodes and a real seed on 127.0.0.1; a raw client and a raw endpoint written from
docs/PROTOCOL.md check both ends against the contract.
"""

from __future__ import annotations

import asyncio
import json

from websockets.asyncio.server import serve

from node.clock import now_ms
from node.crypto.boxes import Boxes
from node.crypto.keys import Identity
from node.wire.protocol import BATCH_SUBPROTOCOL, SUBPROTOCOL
from node.wire.sockets import dial

from .helpers import all_delivered, eventually, next_event, registered
from .test_user_node import indie_register, opens_to, seal

N = 100


async def send_all(node, to: str, count: int) -> list[str]:
    """`count` messages queued in one turn (so a worker finds them all queued), in order."""
    return list(await asyncio.gather(*(node.send(to, f"m{i}") for i in range(count))))


async def alice_and_bob(seeds, users, **bob_config):
    """Two nodes on one seed, alice a contact of bob's (no stranger's allowance in the way)."""
    a = await seeds("a")
    alice, alice_ev = await users("alice", [a.url])
    bob, bob_ev = await users("bob", [a.url], **bob_config)
    await next_event(alice_ev, registered)
    await next_event(bob_ev, registered)
    bob.add_contact("alice")
    return alice, alice_ev, bob


def chat_from(sender: Identity, bob, msg_id: str) -> dict:
    """A genuine chat from "indie" to bob, as a raw client builds it."""
    plain = {"id": msg_id, "from": "indie", "to": "bob", "ts": now_ms(), "text": msg_id}
    nonce, box = seal(sender, bob.identity.key, plain)
    return {"type": "chat", "id": msg_id, "from": "indie", "to": "bob"} | {
        "nonce": nonce,
        "box": box,
    }


async def test_a_batching_link_delivers_every_message_once_in_order_in_chats_frames(seeds, users):
    alice, alice_ev, bob = await alice_and_bob(seeds, users)
    ids = await send_all(alice, "bob", N)
    await all_delivered(alice_ev, ids)
    assert alice.delivery.links["bob"].ws.subprotocol == BATCH_SUBPROTOCOL
    # every message stored once, in the order sent; several went per frame
    await eventually(lambda: len(bob.history("alice")) == N, what="all stored")
    assert [m.text for m in bob.history("alice")] == [f"m{i}" for i in range(N)]
    assert [m.id for m in bob.history("alice")] == ids
    assert 1 <= bob.inbox.chats_frames < N
    assert alice.delivery.bogus_acks == 0


async def test_an_endpoint_without_batching_gets_single_chats(seeds, users):
    """A node with batching off is an r2 endpoint: it selects p2pchat.v1, the sender sends
    single `chat` frames, and everything is delivered."""
    alice, alice_ev, bob = await alice_and_bob(seeds, users, batch_chats=False)
    ids = await send_all(alice, "bob", 40)
    await all_delivered(alice_ev, ids)
    assert alice.delivery.links["bob"].ws.subprotocol == SUBPROTOCOL
    assert bob.inbox.chats_frames == 0
    assert [m.text for m in bob.history("alice")] == [f"m{i}" for i in range(40)]


async def test_an_r2_endpoint_is_offered_batching_and_served_single_chats(seeds, users):
    """A raw r2 endpoint (p2pchat.v1 only, one ack per chat): offered the batch subprotocol, it
    selects p2pchat.v1 and gets nothing but single `chat` frames; every message is delivered."""
    a = await seeds("a")
    indie = Identity.generate()
    boxes = Boxes(indie)
    alice, alice_ev = await users("alice", [a.url])
    await next_event(alice_ev, registered)
    offered: list[str | None] = []
    types: list[str] = []

    async def endpoint(ws):
        offered.append(ws.request.headers.get("Sec-WebSocket-Protocol"))
        async for raw in ws:
            frame = json.loads(raw)
            types.append(frame["type"])
            proof = boxes.ack_proof(alice.identity.key, frame["from"], frame["id"], frame["to"])
            await ws.send(json.dumps({"type": "ack", "id": frame["id"], "proof": proof}))

    async with serve(endpoint, "127.0.0.1", 0, subprotocols=[SUBPROTOCOL]) as server:
        port = server.sockets[0].getsockname()[1]
        session = await indie_register(a.url, "indie", indie, f"ws://127.0.0.1:{port}")
        ids = await send_all(alice, "indie", 40)
        await all_delivered(alice_ev, ids)
    await session.close()
    assert offered == [f"{BATCH_SUBPROTOCOL}, {SUBPROTOCOL}"]
    assert types == ["chat"] * 40


async def test_malformed_chats_frames_get_errors_and_the_good_chats_acks(seeds, users):
    """A client that negotiated batching: a `chats` frame of 33, or whose `chats` is not a list,
    gets `bad_request`; a bad chat among good ones gets its own error and the good ones their
    acks (proofs that open), in one `acks` frame; the socket stays open throughout. Without the
    negotiation a `chats` frame is refused as any other non-chat frame."""
    a = await seeds("a")
    bob, bob_ev = await users("bob", [a.url])
    await next_event(bob_ev, registered)
    indie = Identity.generate()
    session = await indie_register(a.url, "indie", indie, "ws://127.0.0.1:9")

    def chat(msg_id: str) -> dict:
        return chat_from(indie, bob, msg_id)

    plain_ws = await dial(bob.endpoint)  # offers p2pchat.v1 only
    assert plain_ws.subprotocol == SUBPROTOCOL
    await plain_ws.send(json.dumps({"type": "chats", "chats": [chat("x-1")]}))
    reply = json.loads(await asyncio.wait_for(plain_ws.recv(), 5))
    assert (reply["type"], reply["code"]) == ("error", "bad_request")
    await plain_ws.close()

    ws = await dial(bob.endpoint, subprotocols=[BATCH_SUBPROTOCOL, SUBPROTOCOL])
    assert ws.subprotocol == BATCH_SUBPROTOCOL

    async def answer() -> dict:
        return json.loads(await asyncio.wait_for(ws.recv(), 5))

    one = chat("m-0")
    await ws.send(json.dumps({"type": "chats", "chats": [one] * 33}))
    reply = await answer()
    assert (reply["type"], reply["code"]) == ("error", "bad_request")
    await ws.send(json.dumps({"type": "chats", "chats": "m-0"}))
    reply = await answer()
    assert (reply["type"], reply["code"]) == ("error", "bad_request")

    bad = {k: v for k, v in chat("bad-1").items() if k != "box"}
    await ws.send(json.dumps({"type": "chats", "chats": [chat("m-1"), bad, chat("m-2")]}))
    got = [await answer(), await answer()]
    errors = [f for f in got if f["type"] == "error"]
    acks = [f for f in got if f["type"] == "acks"]
    assert [(e["id"], e["code"]) for e in errors] == [("bad-1", "bad_request")]
    assert [x["id"] for x in acks[0]["acks"]] == ["m-1", "m-2"]
    for x in acks[0]["acks"]:
        assert opens_to(x["proof"], indie, bob.identity.key, "indie", x["id"], "bob")

    # the socket lives: a single chat is acked as ever
    await ws.send(json.dumps(chat("m-3")))
    reply = await answer()
    assert (reply["type"], reply["id"]) == ("ack", "m-3")
    assert [m.text for m in bob.history("indie")] == ["m-1", "m-2", "m-3"]
    assert bob.inbox.chats_frames == 1
    await ws.close()
    await session.close()


async def test_the_rate_limit_counts_each_chat_of_a_batch(seeds, users):
    """A batch buys no allowance: with a burst of 5, a frame of 10 chats gets 5 acks and 5
    `rate_limited` errors naming the chats refused."""
    a = await seeds("a")
    bob, bob_ev = await users("bob", [a.url], peer_rate=0.001, peer_burst=5.0)
    await next_event(bob_ev, registered)
    indie = Identity.generate()
    session = await indie_register(a.url, "indie", indie, "ws://127.0.0.1:9")
    chats = [chat_from(indie, bob, f"m-{i}") for i in range(10)]
    ws = await dial(bob.endpoint, subprotocols=[BATCH_SUBPROTOCOL, SUBPROTOCOL])
    await ws.send(json.dumps({"type": "chats", "chats": chats}))
    got = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(6)]
    refused = [f["id"] for f in got if f["type"] == "error" and f["code"] == "rate_limited"]
    acked = [x["id"] for f in got if f["type"] == "acks" for x in f["acks"]]
    assert refused == [f"m-{i}" for i in range(5, 10)]
    assert acked == [f"m-{i}" for i in range(5)]
    await ws.close()
    await session.close()


async def test_frames_refused_for_their_form_get_one_error_and_the_socket_lives(seeds, users):
    """A `chats` frame with a key twice in a chat is refused whole (as the strict parse refuses
    it), not read chat by chat; an id that is a lone surrogate (no UTF-8 spells it) is answered
    with a null id, in a `chats` frame or a single `chat`, and the socket stays open."""
    a = await seeds("a")
    bob, bob_ev = await users("bob", [a.url])
    await next_event(bob_ev, registered)
    indie = Identity.generate()
    session = await indie_register(a.url, "indie", indie, "ws://127.0.0.1:9")
    ws = await dial(bob.endpoint, subprotocols=[BATCH_SUBPROTOCOL, SUBPROTOCOL])

    async def answer() -> dict:
        return json.loads(await asyncio.wait_for(ws.recv(), 5))

    twice = json.dumps(chat_from(indie, bob, "m-1"))[:-1] + ', "id": "m-9"}'
    await ws.send('{"type": "chats", "chats": [%s, "x"]}' % twice)
    reply = await answer()
    assert (reply["type"], reply["code"], reply["id"]) == ("error", "bad_request", None)
    assert "twice" in reply["message"]
    lone = json.dumps(chat_from(indie, bob, "m-2")).replace('"id": "m-2"', '"id": "\\ud800"')
    await ws.send(
        '{"type": "chats", "chats": [%s, %s]}' % (json.dumps(chat_from(indie, bob, "m-3")), lone)
    )
    got = [await answer(), await answer()]
    errors = [f for f in got if f["type"] == "error"]
    assert [(e["code"], e["id"]) for e in errors] == [("bad_request", None)]
    assert [x["id"] for f in got if f["type"] == "acks" for x in f["acks"]] == ["m-3"]
    await ws.send(lone)
    reply = await answer()
    assert (reply["type"], reply["code"], reply["id"]) == ("error", "bad_request", None)
    await ws.send(json.dumps(chat_from(indie, bob, "m-4")))
    assert (await answer())["id"] == "m-4"
    assert [m.text for m in bob.history("indie")] == ["m-3", "m-4"]
    await ws.close()
    await session.close()


async def test_a_batch_is_opened_in_one_job_and_refused_chat_by_chat_as_before(seeds, users):
    """A batch from a contact with a pinned key is opened on the opens thread in one job (a lone
    chat, or a batch too small to pay for the hand-off, inline); the acks carry proofs that open.
    A batch boxed with another key under the contact's name, or from a sender since blocked, is
    still refused chat by chat, each with its own error, and stores nothing."""
    a = await seeds("a")
    bob, bob_ev = await users("bob", [a.url])
    await next_event(bob_ev, registered)
    indie, eve = Identity.generate(), Identity.generate()
    session = await indie_register(a.url, "indie", indie, "ws://127.0.0.1:9")
    bob.add_contact("indie")
    ws = await dial(bob.endpoint, subprotocols=[BATCH_SUBPROTOCOL, SUBPROTOCOL])

    async def answers(count: int) -> list[dict]:
        return [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(count)]

    async def batch(sender: Identity, ids: list[str]) -> None:
        chats = [chat_from(sender, bob, i) for i in ids]
        await ws.send(json.dumps({"type": "chats", "chats": chats}))

    await ws.send(json.dumps(chat_from(indie, bob, "m-0")))  # the first pins indie's key
    assert [(f["type"], f["id"]) for f in await answers(1)] == [("ack", "m-0")]
    await batch(indie, ["s-1", "s-2"])  # too few for a job
    assert [x["id"] for x in (await answers(1))[0]["acks"]] == ["s-1", "s-2"]
    assert bob.inbox.opener.jobs == 0

    ids = [f"m-{i:02}" for i in range(1, 11)]
    await batch(indie, ids)
    (acks,) = await answers(1)
    assert [x["id"] for x in acks["acks"]] == ids
    for x in acks["acks"]:
        assert opens_to(x["proof"], indie, bob.identity.key, "indie", x["id"], "bob")
    assert bob.inbox.opener.jobs == 1
    stored = ["m-0", "s-1", "s-2", *ids]
    assert [m.text for m in bob.history("indie")] == stored

    forged = [f"f-{i}" for i in range(10)]
    await batch(eve, forged)  # not indie's key: the job's opens fail, the lookup says so too
    got = await answers(10)
    assert [(f["type"], f["code"], f["id"]) for f in got] == [
        ("error", "bad_box", i) for i in forged
    ]
    assert bob.inbox.opener.jobs == 2

    assert bob.block("indie")
    later = [f"b-{i}" for i in range(10)]
    await batch(indie, later)
    got = await answers(10)
    assert [(f["type"], f["code"], f["id"]) for f in got] == [
        ("error", "bad_box", i) for i in later
    ]
    assert all("does not accept messages from you" in f["message"] for f in got)
    assert bob.inbox.opener.jobs == 2  # nothing of a blocked sender's is opened
    assert [m.text for m in bob.history("indie")] == stored
    await ws.close()
    await session.close()


async def test_the_chats_a_batch_opens_ahead_are_only_those_its_rate_still_admits(seeds, users):
    """The opens thread opens (and proves) no more chats of a batch than the sender's rate still
    admits: a contact at its limit that sends full batches buys an open per admitted chat, not one
    per chat of the frame. With 11 chats left in its bucket, a batch of 20 gets 11 acks, 9
    `rate_limited` errors, and 11 boxes opened."""
    a = await seeds("a")
    bob, bob_ev = await users("bob", [a.url], peer_rate=0.001, peer_burst=12.0)
    await next_event(bob_ev, registered)
    indie = Identity.generate()
    session = await indie_register(a.url, "indie", indie, "ws://127.0.0.1:9")
    bob.add_contact("indie")
    ws = await dial(bob.endpoint, subprotocols=[BATCH_SUBPROTOCOL, SUBPROTOCOL])
    await ws.send(json.dumps(chat_from(indie, bob, "m-first")))  # pins indie's key: 11 left
    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "ack"
    ids = [f"m-{i:02}" for i in range(20)]
    await ws.send(json.dumps({"type": "chats", "chats": [chat_from(indie, bob, i) for i in ids]}))
    got = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(10)]
    refused = [f["id"] for f in got if f["type"] == "error" and f["code"] == "rate_limited"]
    acked = [x["id"] for f in got if f["type"] == "acks" for x in f["acks"]]
    assert acked == ids[:11] and refused == ids[11:]
    assert bob.inbox.opener.jobs == 1
    assert bob.inbox.opener.opened == 11
    await ws.close()
    await session.close()
