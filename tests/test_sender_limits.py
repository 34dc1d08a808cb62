"""Per-sender limits at the user endpoint (issue 18, 9): someone who wrote first, until the user
answers or adds them, gets a small rate and a bounded number of stored messages; contacts the
user chose are not held back. Real seeds and user nodes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import uuid

from node.clock import now_ms
from node.crypto.boxes import Boxes
from node.crypto.keys import Identity
from node.user.events import MessageState, NameRegistered
from node.wire.sockets import dial

from .helpers import RawClient, next_event, record


def registered(e) -> bool:
    return isinstance(e, NameRegistered)


async def outcomes(events, ids: list[str]) -> dict[str, MessageState]:
    """The final state (delivered or failed) of each message."""
    done: dict[str, MessageState] = {}
    while len(done) < len(ids):
        e = await next_event(
            events,
            lambda e: isinstance(e, MessageState) and e.state in ("delivered", "failed"),
            timeout=30,
            what="messages to finish",
        )
        if e.id in ids:
            done[e.id] = e
    return done


async def test_a_stranger_gets_its_allowance_and_is_told_while_a_contact_is_not_held(seeds, users):
    """Before r3 a registered stranger stored as much as it sent (98,250 messages in 23 s).
    Now, beyond its allowance (here 5 messages), the victim refuses with `quota` and the sender's
    outbox shows the message failed, with words; a contact's messages keep arriving, and once the
    victim answers, the stranger is a stranger no more."""
    a = await seeds("a")
    victim, v_events = await users(
        "victim", [a.url], stranger_messages=5, stranger_rate=1000.0, stranger_burst=1000.0
    )
    friend, f_events = await users("friend", [a.url])
    mallory, m_events = await users("mallory", [a.url])
    for events in (v_events, f_events, m_events):
        await next_event(events, registered, what="registered")
    victim.add_contact("friend")

    ids = [await mallory.send("victim", f"buy now {i}") for i in range(8)]
    done = await outcomes(m_events, ids)
    delivered = [i for i in ids if done[i].state == "delivered"]
    failed = [done[i] for i in ids if done[i].state == "failed"]
    assert len(delivered) == 5 and len(failed) == 3
    assert all(f.code == "quota" and "until they answer or add you" in f.reason for f in failed)
    assert len(victim.history("mallory")) == 5

    ids = [await friend.send("victim", f"lunch? {i}") for i in range(8)]
    done = await outcomes(f_events, ids)
    assert all(done[i].state == "delivered" for i in ids)

    await victim.send("mallory", "who are you?")
    later = await mallory.send("victim", "an old friend")
    assert (await outcomes(m_events, [later]))[later].state == "delivered"


async def flood(victim_endpoint: str, boxes: Boxes, victim_key: str, n: int) -> dict[str, int]:
    """Send `n` real chats from mallory as fast as the socket takes them; count the answers."""
    ws = await dial(victim_endpoint)
    counts: dict[str, int] = {}
    try:
        batch = 500
        for start in range(0, n, batch):
            size = min(batch, n - start)
            for _ in range(size):
                mid = str(uuid.uuid4())
                await ws.send(boxes.seal(victim_key, mid, "mallory", "victim", now_ms(), "x" * 200))
            for _ in range(size):
                reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
                kind = reply["type"] if reply["type"] == "ack" else reply["code"]
                counts[kind] = counts.get(kind, 0) + 1
    finally:
        await ws.close()
    return counts


async def test_a_stranger_flooding_the_endpoint_is_refused_beyond_its_rate(seeds, users):
    """A stranger sending real chats as fast as it can: the first burst (10) is stored, the rest
    is `rate_limited` (the rate is made tiny here so the count is exact under any load). The
    measured form is `tests/reliability/test_stranger_flood.py`."""
    a = await seeds("a")
    victim, v_events = await users("victim", [a.url], stranger_rate=0.0001)
    await next_event(v_events, registered, what="registered")
    mallory = Identity.generate()
    client = await RawClient.open(a.url)
    await client.request({"type": "register", "record": record(mallory, "mallory")})
    counts = await flood(victim.endpoint, Boxes(mallory), victim.identity.key, 40)
    assert counts == {"ack": 10, "rate_limited": 30}
    assert len(victim.history("mallory")) == 10
    await client.close()


async def test_a_sender_asked_to_slow_down_waits_before_it_sends_again(seeds, users):
    """A recipient's stranger rate refuses most of a window with `rate_limited`: the sender
    takes the acks of what was accepted, then backs off before the next try, and everything
    arrives. It used to give up on the window at the first refusal (dropping the acks that come
    after the commit), and those late answers woke it at once: it sent the whole window again
    in a tight loop, thousands of sends a second, and nothing was ever delivered."""
    a = await seeds("a")
    alice, events = await users("alice", [a.url], retry_max=1.0)
    await users("bob", [a.url], stranger_burst=5.0, stranger_rate=20.0)
    await next_event(events, lambda e: isinstance(e, NameRegistered), what="alice registered")
    count = 20
    ids = set(await asyncio.gather(*(alice.send("bob", f"m{i}") for i in range(count))))
    sends = 0
    while ids:
        event = await next_event(
            events, lambda e: isinstance(e, MessageState), timeout=30, what="delivery"
        )
        sends += event.state == "sent"
        if event.state == "delivered":
            ids.discard(event.id)
    # each try sends what is left; a try waits its backoff, so a few tries suffice
    assert sends < 10 * count, f"{sends} sends for {count} messages"


async def test_an_endpoint_that_never_answers_is_dialled_again_only_after_a_backoff(seeds, users):
    """An endpoint that takes chats and never answers: after the ack timeout the sender closes
    the link and waits at least its first backoff before it dials again. Closing the link failed
    the chats in flight, and those answers woke the worker at once: it dialled again within
    milliseconds, sending its window every ack timeout, forever."""
    from websockets.asyncio.server import serve

    from node.user.node import RETRY_FIRST
    from node.wire.protocol import SUBPROTOCOL

    from .test_user_node import indie_register

    a = await seeds("a")
    alice, events = await users("alice", [a.url], ack_timeout=0.3)
    await next_event(events, registered, what="alice registered")
    loop = asyncio.get_running_loop()
    seen: list[tuple[str, float]] = []
    second = asyncio.Event()

    async def black_hole(ws) -> None:
        seen.append(("open", loop.time()))
        if len(seen) > 1:
            second.set()
        try:
            async for _ in ws:
                pass
        finally:
            seen.append(("close", loop.time()))

    async with serve(black_hole, "127.0.0.1", 0, subprotocols=[SUBPROTOCOL]) as server:
        port = server.sockets[0].getsockname()[1]
        indie = Identity.generate()
        session = await indie_register(a.url, "indie", indie, f"ws://127.0.0.1:{port}")
        await alice.send("indie", "hello")
        await asyncio.wait_for(second.wait(), 30)
    await session.close()
    (first_open, _), (closed, at_close), (again, at_open) = seen[:3]
    assert (first_open, closed, again) == ("open", "close", "open")
    # a lower bound only: a loaded machine makes the gap longer, never shorter
    assert at_open - at_close >= RETRY_FIRST * 0.9, f"dialled again {at_open - at_close:.3f}s later"
