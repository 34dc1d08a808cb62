"""Every rule of PROTOCOL.md's user-and-seed side, against a real seed on loopback, with raw JSON."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from node.clock import now_ms
from node.crypto.keys import Identity
from node.crypto.signing import record_bytes as record_signed_bytes

from .helpers import RawClient, record


async def test_handshake_without_subprotocol_is_refused_with_400(seeds):
    seed = await seeds("a")
    with pytest.raises(InvalidStatus) as info:
        async with connect(seed.url, proxy=None):
            pass
    assert info.value.response.status_code == 400
    async with connect(seed.url, proxy=None, subprotocols=["p2pchat.v1"]) as ws:
        assert ws.subprotocol == "p2pchat.v1"


@pytest.mark.parametrize(
    "raw, why",
    [
        (b"\x00\x01binary", "binary"),
        ("{not json", "JSON"),
        ("[1, 2, 3]", "object"),
        ('"just a string"', "object"),
        ('{"id": "x1"}', "type"),
        ('{"type": "teleport", "id": "x1"}', "unknown"),
        ('{"type": "lookup", "id": "x1", "name": 5}', "name"),
        ('{"type": "lookup", "id": "x1", "name": "bob", "hops": "1"}', "hops"),
        ('{"type": "lookup", "id": "x1", "name": "bob", "hops": 7}', "hops"),
        ('{"type": "lookup", "id": "", "name": "bob"}', "id"),
        ('{"type": "lookup", "id": "' + "x" * 65 + '", "name": "bob"}', "id"),
        ('{"type": "watch", "id": "x1", "names": "bob"}', "names"),
        ('{"type": "register", "id": "x1", "record": {"name": "bob"}}', "record"),
        # a lone surrogate: the id cannot be echoed (no UTF-8 spells it), the error says null
        ('{"type": "lookup", "id": "\\ud800", "name": "bob"}', "JSON"),
        # the relay fast path's prefix, deep nesting in a field it skips: the strict path answers
        pytest.param(
            '{"type":"relay","id":"x1","z":' + "[" * 2000 + "]" * 2000 + "}",
            "deep",
            id="relay-prefix-deep-nesting",
        ),
    ],
)
async def test_malformed_frames_get_bad_request_and_the_connection_lives(seeds, raw, why):
    seed = await seeds("a")
    client = await RawClient.open(seed.url)
    await client.send_raw(raw)
    err = await client.next_unmatched()
    assert err["type"] == "error" and err["code"] == "bad_request", err
    assert (
        why.lower() in err["message"].lower() or why in ("binary",) and "binary" in err["message"]
    )
    # the same socket still answers
    reply = await client.request({"type": "seeds"})
    assert reply["type"] == "seed_list"
    await client.close()


async def test_error_echoes_a_readable_id_and_is_null_otherwise(seeds):
    seed = await seeds("a")
    client = await RawClient.open(seed.url)
    reply = await client.request({"type": "lookup", "name": 12})
    assert reply["type"] == "error" and reply["code"] == "bad_request"
    await client.send_raw('{"type": "lookup", "id": 7, "name": "x"}')
    err = await client.next_unmatched()
    assert err["id"] is None and err["code"] == "bad_request"
    await client.close()


async def test_frame_over_the_limit_closes_with_1009(seeds):
    seed = await seeds("a")  # the limit is 64 KiB, the least the contract allows
    client = await RawClient.open(seed.url, max_frame=1 << 20)
    await client.send_raw(json.dumps({"type": "lookup", "id": "big", "name": "x" * 70_000}))
    await asyncio.wait_for(client.ws.wait_closed(), 5)
    assert client.ws.close_code == 1009


async def test_register_then_lookup_then_offline(seeds):
    seed = await seeds("a")
    alice = Identity.generate()
    user = await RawClient.open(seed.url)
    rec = record(alice, "Alice", "ws://127.0.0.1:7001")
    reply = await user.request({"type": "register", "record": rec})
    assert reply == {"type": "registered", "id": reply["id"], "seed": "a"}

    other = await RawClient.open(seed.url)
    found = await other.request({"type": "lookup", "name": "alice"})  # case-insensitive
    assert found["type"] == "found"
    assert found["record"] == rec  # the registered spelling is kept
    assert found["online"] is True and found["seed"] == "a"
    assert abs(found["last_seen"] - now_ms()) < 5000

    await other.request({"type": "watch", "names": ["ALICE"]})
    assert (await other.next_push())["online"] is True
    await user.close()
    push = await other.next_push()
    assert push["online"] is False and push["seed"] is None and push["name"] == "Alice"
    found = await other.request({"type": "lookup", "name": "Alice"})
    assert found["online"] is False and found["record"] == rec
    assert found["last_seen"] == push["last_seen"]
    await other.close()


async def test_lookup_of_unknown_name_is_not_found_and_invalid_name_is_invalid_name(seeds):
    seed = await seeds("a")
    client = await RawClient.open(seed.url)
    reply = await client.request({"type": "lookup", "name": "nobody"})
    assert reply["type"] == "error" and reply["code"] == "not_found"
    for bad in ["-dash", "a" * 33, "sp ace", "../etc", "ümlaut", ""]:
        reply = await client.request({"type": "lookup", "name": bad})
        assert reply["code"] == "invalid_name", (bad, reply)
        assert repr(bad) in reply["message"], reply  # the error names what was refused
        reply = await client.request(
            {"type": "register", "record": {**record(Identity.generate(), "ok"), "name": bad}}
        )
        assert reply["code"] == "invalid_name", (bad, reply)
    await client.close()


async def test_first_key_owns_the_name_case_insensitively(seeds):
    seed = await seeds("a")
    owner, thief = Identity.generate(), Identity.generate()
    c = await RawClient.open(seed.url)
    assert (await c.request({"type": "register", "record": record(owner, "Sally")}))[
        "type"
    ] == "registered"
    other = await RawClient.open(seed.url)
    for spelling in ["Sally", "sally", "SALLY"]:
        reply = await other.request({"type": "register", "record": record(thief, spelling)})
        assert reply["code"] == "name_taken", reply
    found = await other.request({"type": "lookup", "name": "sally"})
    assert found["record"]["key"] == owner.key


async def test_name_lease_expires_for_an_offline_owner(seeds):
    # a lease of ~50 ms: the old owner's record is free once it is offline and unrenewed
    seed = await seeds("a", lease_days=50 / 86_400_000)
    owner, newcomer = Identity.generate(), Identity.generate()
    c = await RawClient.open(seed.url)
    await c.request({"type": "register", "record": record(owner, "Sally", seq=10**12)})
    other = await RawClient.open(seed.url)
    await other.request({"type": "watch", "names": ["Sally"]})
    await other.next_push()
    # online owner: never taken, however old the record
    await asyncio.sleep(0.1)  # let the 50 ms lease run out (a time, not an event)
    assert (await other.request({"type": "register", "record": record(newcomer, "sally", seq=5)}))[
        "code"
    ] == "name_taken"
    await c.close()
    assert (await other.next_push())["online"] is False
    reply = await other.request({"type": "register", "record": record(newcomer, "sally", seq=5)})
    assert reply["type"] == "registered"
    found = await other.request({"type": "lookup", "name": "Sally"})
    assert found["record"]["key"] == newcomer.key and found["record"]["name"] == "sally"


async def test_stale_seq_is_refused_and_identical_resend_succeeds(seeds):
    seed = await seeds("a")
    me = Identity.generate()
    c = await RawClient.open(seed.url)
    first = record(me, "bob", "ws://127.0.0.1:1", seq=1000)
    assert (await c.request({"type": "register", "record": first}))["type"] == "registered"
    assert (await c.request({"type": "register", "record": first}))["type"] == "registered"
    for seq in (999, 1000):
        reply = await c.request(
            {"type": "register", "record": record(me, "bob", "ws://127.0.0.1:2", seq=seq)}
        )
        assert reply["code"] == "stale", reply
    newer = record(me, "bob", "ws://127.0.0.1:3", seq=1001)
    assert (await c.request({"type": "register", "record": newer}))["type"] == "registered"
    found = await c.request({"type": "lookup", "name": "bob"})
    assert found["record"]["endpoint"] == "ws://127.0.0.1:3"


async def test_a_socket_holds_one_name(seeds):
    seed = await seeds("a")
    c = await RawClient.open(seed.url)
    await c.request({"type": "register", "record": record(Identity.generate(), "one")})
    reply = await c.request({"type": "register", "record": record(Identity.generate(), "two")})
    assert reply["code"] == "bad_request" and "one" in reply["message"]


async def test_signatures_are_checked(seeds):
    seed = await seeds("a")
    me = Identity.generate()
    c = await RawClient.open(seed.url)
    rec = record(me, "carol")
    tampered = {**rec, "endpoint": "ws://evil.example:1"}
    auth = c.auth(me, "carol")  # a valid session: only the record's own signature fails
    reply = await c.request({"type": "register", "record": tampered, "auth": auth})
    assert reply["code"] == "bad_signature" and "record" in reply["message"]
    # a signature made without the domain prefix is refused too
    body = record_signed_bytes("carol", me.key, "ws://127.0.0.1:9", 5)[len(b"p2pchat-record-v1:") :]
    unprefixed = {
        "name": "carol",
        "key": me.key,
        "endpoint": "ws://127.0.0.1:9",
        "seq": 5,
        "sig": base64.b64encode(me.signing_key.sign(body).signature).decode(),
    }
    reply = await c.request({"type": "register", "record": unprefixed, "auth": c.auth(me, "carol")})
    assert reply["code"] == "bad_signature"
    # someone else's key under my signature
    other = {**rec, "key": Identity.generate().key}
    reply = await c.request({"type": "register", "record": other, "auth": c.auth(me, "carol")})
    assert reply["code"] == "bad_signature"
    assert (await c.request({"type": "lookup", "name": "carol", "hops": 0}))["code"] == "not_found"


async def test_pipelined_requests_are_answered_by_id(seeds):
    seed = await seeds("a")
    c = await RawClient.open(seed.url)
    ids = [Identity.generate() for _ in range(20)]
    replies = await asyncio.gather(
        *[
            c.request({"type": "register", "record": record(ident, f"user{i}")})
            for i, ident in enumerate(ids[:1])
        ],
        *[c.request({"type": "lookup", "name": f"user{i}", "hops": 0}) for i in range(20)],
    )
    assert replies[0]["type"] == "registered"
    assert {r["type"] for r in replies[1:]} <= {"found", "error"}


async def test_seeds_lists_itself_first(seeds):
    a = await seeds("a")
    b = await seeds("b", peers=[a.url])
    c = await RawClient.open(b.url)

    async def linked():
        return (await c.request({"type": "seeds"}))["seeds"]

    from .helpers import eventually

    listing = await eventually(lambda: _two_up(linked()), what="b to link a")
    assert listing[0]["name"] == "b" and listing[0]["url"] == b.url and listing[0]["up"] is True
    assert (
        listing[1]["name"] == "a"
        and listing[1]["url"] == a.url
        and listing[1]["key"] == a.identity.key
    )


async def _two_up(coro):
    listing = await coro
    return listing if len(listing) == 2 and all(s["up"] for s in listing) else None


async def test_watch_pushes_at_once_and_on_change(seeds):
    seed = await seeds("a")
    watcher = await RawClient.open(seed.url)
    reply = await watcher.request({"type": "watch", "names": ["dave", "erin"]})
    assert reply["type"] == "watching"
    first = {p["name"]: p for p in [await watcher.next_push(), await watcher.next_push()]}
    assert first["dave"]["online"] is False and first["dave"]["last_seen"] is None
    dave = await RawClient.open(seed.url)
    await dave.request({"type": "register", "record": record(Identity.generate(), "Dave")})
    push = await watcher.next_push()
    assert push == {
        "type": "presence",
        "name": "Dave",
        "online": True,
        "seed": "a",
        "last_seen": push["last_seen"],
    }
    await dave.close()
    push = await watcher.next_push()
    assert push["online"] is False and push["last_seen"] > 0


async def test_frames_after_a_register_wait_for_it(seeds):
    """A register's signatures are checked on a worker thread while the socket is read on; what
    the socket sent after it is still handled after it, in order (a renewal, then a lookup)."""
    seed = await seeds("a")
    me = Identity.generate()
    c = await RawClient.open(seed.url)
    first, second = record(me, "dora", seq=now_ms()), record(me, "dora", seq=now_ms() + 1)
    t = now_ms()
    replies = await asyncio.gather(
        c.request({"type": "register", "record": first, "auth": c.auth(me, "dora", t)}),
        c.request({"type": "register", "record": second, "auth": c.auth(me, "dora", t + 1)}),
        c.request({"type": "lookup", "name": "dora", "hops": 0}),
        c.request({"type": "register", "record": first, "auth": c.auth(me, "dora", t + 2)}),
    )
    assert [r["type"] for r in replies[:2]] == ["registered", "registered"]
    assert replies[2]["type"] == "found" and replies[2]["record"] == second
    assert replies[3]["code"] == "stale"
    await c.close()
