"""The limits that keep a seed alive under abuse, each configurable."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import InvalidStatus

from .helpers import RawClient, eventually


async def test_token_bucket_answers_rate_limited_and_keeps_serving(seeds):
    seed = await seeds("a", rate=5, burst=10)
    c = await RawClient.open(seed.url)
    replies = await asyncio.gather(*[c.request({"type": "lookup", "name": f"n{i}", "hops": 0}) for i in range(18)])
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
    assert reply["type"] == "error" and reply["code"] == "bad_request" and "at most 3" in reply["message"]
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
