"""A seed forwards a relayed frame as it came: an exact frame by its fast path (the envelope
checked, the carried text kept), any other by the models, under the same rules and budgets."""

from __future__ import annotations

import asyncio
import base64
import json
import os

from node.crypto.keys import Identity

from .helpers import RawClient, record


class TextClient(RawClient):
    """A raw client that keeps the text of every push and can send a request as exact text."""

    def __init__(self, ws) -> None:
        super().__init__(ws)
        self.texts: asyncio.Queue[str] = asyncio.Queue()

    def _seen(self, raw: str | bytes, msg: dict) -> None:
        self.texts.put_nowait(raw if isinstance(raw, str) else raw.decode())

    async def request_text(self, fid: str, text: str) -> dict:
        fut = asyncio.get_running_loop().create_future()
        self.replies[fid] = fut
        await self.send_raw(text)
        return await asyncio.wait_for(fut, 5)

    async def next_text(self, kind: str) -> str:
        while True:
            text = await asyncio.wait_for(self.texts.get(), 5)
            if json.loads(text)["type"] == kind:
                return text


async def registered_client(url: str, name: str) -> TextClient:
    client = await TextClient.open(url)
    reply = await client.request({"type": "register", "record": record(Identity.generate(), name)})
    assert reply["type"] == "registered", reply
    return client


def chat(sender: str, box_bytes: int = 300) -> dict:
    return {
        "type": "chat",
        "id": "m1",
        "from": sender,
        "to": "bob",
        "nonce": base64.b64encode(os.urandom(24)).decode(),
        "box": base64.b64encode(os.urandom(box_bytes)).decode(),
    }


def exact(fid: str, to: str, frame: dict) -> str:
    carried = json.dumps(frame, separators=(",", ":"))
    return f'{{"type":"relay","id":"{fid}","to":"{to}","frame":{carried}}}'


def fast_ids(seed) -> list[str]:
    """The ids of the relays `seed` takes by its fast path from now on (a spy on the post)."""
    ids: list[str] = []
    take = seed.post.relay_text

    def spy(session, frame) -> None:
        ids.append(frame.id)
        take(session, frame)

    seed.post.relay_text = spy
    return ids


async def test_a_relay_reaches_its_recipient_as_sent_by_either_path(seeds):
    a = await seeds("a")
    fast = fast_ids(a)
    alice = await registered_client(a.url, "alice")
    bob = await registered_client(a.url, "bob")
    frame = chat("alice")
    carried = json.dumps(frame, separators=(",", ":"))
    relayed = f'{{"type":"relayed","from":"alice","frame":{carried}}}'

    assert await alice.request_text("e1", exact("e1", "bob", frame)) == {
        "type": "relay_ok",
        "id": "e1",
    }
    assert await bob.next_text("relayed") == relayed  # the carried text as it came

    spaced = json.dumps({"type": "relay", "id": "s1", "to": "bob", "frame": frame})
    assert (await alice.request_text("s1", spaced))["type"] == "relay_ok"
    assert await bob.next_text("relayed") == relayed  # the models write it the same

    ack = {"type": "ack", "id": "m1", "proof": base64.b64encode(os.urandom(72)).decode()}
    assert (await bob.request_text("a1", exact("a1", "alice", ack)))["type"] == "relay_ok"
    assert await alice.next_text("relayed") == (
        f'{{"type":"relayed","from":"bob","frame":{json.dumps(ack, separators=(",", ":"))}}}'
    )
    assert fast == ["e1", "a1"]  # the exact frames; the spaced one by the models


async def test_an_exact_relay_is_held_to_every_rule_of_the_models_path(seeds):
    a = await seeds("a", relay_rate=65536, relay_burst=65536)
    fast = fast_ids(a)
    await registered_client(a.url, "bob")
    anon = await TextClient.open(a.url)
    reply = await anon.request_text("n1", exact("n1", "bob", chat("alice")))
    assert reply["code"] == "not_registered"
    alice = await registered_client(a.url, "alice")
    forged = await alice.request_text("f1", exact("f1", "bob", chat("bob")))
    assert forged["code"] == "bad_request"
    nobody = await alice.request_text("u1", exact("u1", "carol", chat("alice")))
    assert nobody["code"] == "not_found"
    bad_name = await alice.request_text("i1", exact("i1", "-bob", chat("alice")))
    assert bad_name["code"] == "invalid_name"
    padded = {**chat("alice"), "nonce": base64.b64encode(os.urandom(23)).decode()}
    assert (await alice.request_text("p1", exact("p1", "bob", padded)))["code"] == "bad_request"
    big = chat("alice", 30_000)  # 40 KB a frame against a 64 KiB budget
    codes = [
        (await alice.request_text(f"b{i}", exact(f"b{i}", "bob", big))).get("code", "ok")
        for i in range(3)
    ]
    assert codes[0] == "ok" and "rate_limited" in codes
    assert fast == ["n1", "f1", "u1", "b0", "b1", "b2"]  # the bad name and nonce: the models
