"""The limits that keep a seed alive under abuse, each configurable."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.exceptions import InvalidStatus

from .helpers import RawClient, eventually


async def test_token_bucket_answers_rate_limited_and_keeps_serving(seeds):
    seed = await seeds("a", rate=5, burst=10)
    c = await RawClient.open(seed.url)
    replies = await asyncio.gather(
        *[c.request({"type": "lookup", "name": f"n{i}", "hops": 0}) for i in range(18)]
    )
    codes = [r.get("code") for r in replies]
    assert codes[:10] == ["not_found"] * 10
    assert codes.count("rate_limited") >= 6
    other = await RawClient.open(seed.url)  # the bucket is per connection
    assert (await other.request({"type": "lookup", "name": "x", "hops": 0}))["code"] == "not_found"
    assert not c.ws.close_code  # refused, not disconnected


async def test_a_client_that_keeps_flooding_is_disconnected(seeds):
    seed = await seeds("a", rate=5, burst=10)
    flooder = await RawClient.open(seed.url)
    for i in range(40):
        await flooder.send_raw(f'{{"type":"lookup","id":"f{i}","name":"x","hops":0}}')
    await asyncio.wait_for(flooder.ws.wait_closed(), 5)
    assert flooder.ws.close_code == 1008
    assert "repeatedly" in flooder.ws.close_reason
    other = await RawClient.open(seed.url)
    assert (await other.request({"type": "seeds"}))["type"] == "seed_list"


async def test_watch_cap(seeds):
    seed = await seeds("a", max_watch=3)
    c = await RawClient.open(seed.url)
    assert (await c.request({"type": "watch", "names": ["a1", "a2"]}))["type"] == "watching"
    reply = await c.request({"type": "watch", "names": ["a3", "a4"]})
    assert (
        reply["type"] == "error"
        and reply["code"] == "bad_request"
        and "at most 3" in reply["message"]
    )
    assert (await c.request({"type": "watch", "names": ["a3", "A1"]}))["type"] == "watching"


async def test_connection_cap_refuses_with_503_and_recovers(seeds):
    seed = await seeds("a", max_connections=2)
    one = await RawClient.open(seed.url)
    two = await RawClient.open(seed.url)
    with pytest.raises(InvalidStatus) as info:
        await RawClient.open(seed.url)
    assert info.value.response.status_code == 503
    assert b"try another seed" in info.value.response.body
    await one.close()
    await eventually(lambda: seed.active < 2, what="the slot to free")
    three = await RawClient.open(seed.url)
    assert (await three.request({"type": "seeds"}))["type"] == "seed_list"
    await two.close()


async def test_keepalive_closes_a_socket_that_stopped_answering(seeds):
    seed = await seeds("a", ping_interval=0.2)
    silent = await RawClient.open(seed.url)
    healthy = await RawClient.open(seed.url)
    silent.ws.transport.pause_reading()  # a peer gone quiet: it never reads the pings, never pongs
    await eventually(lambda: seed.active == 1, timeout=5, what="the silent socket to be closed")
    assert (await healthy.request({"type": "seeds"}))["type"] == "seed_list"
    silent.ws.transport.resume_reading()
    await asyncio.wait_for(silent.ws.wait_closed(), 5)
    assert silent.ws.close_code == 1006  # dropped without a handshake, as a dead peer would be


async def test_a_sockets_backlog_is_served_in_turns(seeds):
    """2,000 frames waiting on one socket are handled a few at a time, the loop going round between:
    one peer's backlog never holds up every other socket (the flood scenario measures the effect)."""
    from node.wire.sockets import FAIR_SHARE, READ_CHUNK

    seed = await seeds("a", rate=1e6, burst=1e6)  # no rate limit: this is about turns
    client = await RawClient.open(seed.url)
    await client.request({"type": "seeds"})
    (session,) = seed.sessions
    reads: list[int] = []
    received = session.ws.data_received  # what the transport hands over on each socket event

    def data_received(data: bytes) -> None:
        reads.append(len(data))
        received(data)

    session.ws.data_received = data_received
    start = seed.frames.received
    for i in range(2000):  # nothing yields here, so all of them wait in the seed's socket at once
        await client.send_raw(
            json.dumps({"type": "lookup", "id": f"b{i}", "name": "nobody", "hops": 0})
        )
    most, last = 0, start
    while last < start + 2000:
        await asyncio.sleep(0)  # one turn of the loop
        most, last = max(most, seed.frames.received - last), seed.frames.received
    assert most <= FAIR_SHARE, f"{most} frames of one socket handled in one turn of the loop"
    assert sum(reads) > 100_000 and max(reads) <= READ_CHUNK, f"read {max(reads)} bytes at once"

    # and written in turns: one watch of 500 names queues 501 frames for this socket at once
    # (a turn's frames go out in one socket write: each write is counted by the frames in it)
    writes = 0
    write = session.ws.transport.write

    def counted(data: bytes) -> None:
        nonlocal writes
        writes += frames_in(data)
        write(data)

    session.ws.transport.write = counted
    await client.send_raw(
        json.dumps({"type": "watch", "id": "w", "names": [f"n{i}" for i in range(500)]})
    )
    most, last = 0, 0
    while last < 501:
        await asyncio.sleep(0)
        most, last = max(most, writes - last), writes
    assert most <= FAIR_SHARE, f"{most} frames written to one socket in one turn of the loop"


def frames_in(data: bytes) -> int:
    """WebSocket frames in bytes a server wrote (unmasked, whole frames)."""
    count, at = 0, 0
    while at < len(data):
        size, at = data[at + 1] & 0x7F, at + 2
        if size == 126:
            size, at = int.from_bytes(data[at : at + 2], "big"), at + 2
        elif size == 127:
            size, at = int.from_bytes(data[at : at + 8], "big"), at + 8
        at += size
        count += 1
    return count
