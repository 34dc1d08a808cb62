"""A user node's link to its seeds: a seed that breaks the protocol is dropped, never fatal, and a
node on an embedded seed goes back to its configured seeds when they return. Real seeds and user
nodes on 127.0.0.1; the hostile seed is written from the protocol."""

from __future__ import annotations

import json
import logging
import socket

import pytest

from node.clock import now_ms
from node.config import UserConfig
from node.crypto.signing import sign_record
from node.errors import ConnectionLost, ProtocolError, WrongReply
from node.user.events import NameRegistered
from node.user.node import UserNode

from .helpers import (
    StrangerSeed,
    eventually,
    found_fields,
    in_state,
    next_event,
    received,
    registered,
)


def free_port() -> int:
    """A port nothing listens on now (a seed that is down), to start a seed on later."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WrongTypeSeed(StrangerSeed):
    """A seed that answers one kind of request with a frame of another type (`published`, or
    `found` where `published` is due)."""

    def __init__(self, wrong: str) -> None:
        super().__init__("liar")
        self.wrong = wrong

    async def _answer(self, ws, msg: dict) -> None:
        if msg.get("type") == self.wrong:
            if self.wrong == "publish":
                reply = {"type": "found", "id": msg["id"], **found_fields(msg["records"][0])}
            else:
                reply = {"type": "published", "id": msg.get("id"), "accepted": 1}
            await ws.send(json.dumps(reply))
            return
        await super()._answer(ws, msg)


def at(seed_name: str):
    return lambda e: isinstance(e, NameRegistered) and e.seed == seed_name


@pytest.mark.parametrize("wrong", ["register", "lookup", "publish"])
async def test_a_seed_answering_with_the_wrong_frame_type_is_dropped_and_delivery_goes_on(
    seeds, users, wrong
):
    """register, lookup or publish answered with another frame type: a protocol error, the node
    fails over to a good seed and the message is delivered (it used to stay `connecting`, or lose
    the recipient's delivery worker, on an assert)."""
    liar = await WrongTypeSeed(wrong).start()
    good_port = free_port()
    good_url = f"ws://127.0.0.1:{good_port}"
    alice, alice_ev = await users("alice", [liar.url, good_url], retry_max=1.0)
    if wrong == "register":
        await eventually(lambda: liar.got("register"), what="the liar asked to register")
    else:
        await next_event(alice_ev, at("liar"))
    good = await seeds("good", port=good_port)
    bob, bob_ev = await users("bob", [good.url])
    await next_event(bob_ev, registered)
    if wrong == "publish":
        with pytest.raises(WrongReply) as caught:
            await alice.seed.publish([sign_record(alice.identity, "alice", "relay:", now_ms())])
        assert isinstance(caught.value, ProtocolError) and isinstance(caught.value, ConnectionLost)
    msg_id = await alice.send("bob", "past the liar")
    await next_event(alice_ev, at("good"), timeout=20)
    await next_event(alice_ev, in_state(msg_id, "delivered"), timeout=20)
    assert (await next_event(bob_ev, received)).text == "past the liar"
    await liar.close()


async def test_an_unexpected_error_in_the_seed_link_is_logged_and_the_link_goes_on(
    seeds, users, caplog
):
    """A bug on one attempt (here: making the record fails once) is logged with its traceback;
    the loop backs off and registers on the next attempt instead of dying."""
    a = await seeds("a")
    port = free_port()
    alice, alice_ev = await users("alice", [f"ws://127.0.0.1:{port}"])
    make_record = alice.seed.cb.make_record
    calls = []

    async def broken_once():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return await make_record()

    alice.seed.cb.make_record = broken_once
    caplog.set_level(logging.ERROR, logger="p2p.user.seed")
    alice.add_seed(a.url)
    await next_event(alice_ev, at("a"), timeout=20)
    assert calls[0] == 1 and len(calls) >= 2
    failed = [r for r in caplog.records if "failed unexpectedly" in r.getMessage()]
    assert failed and failed[0].exc_info is not None


async def test_a_node_on_an_embedded_seed_goes_back_to_its_configured_seed(seeds, users, tmp_path):
    """The configured seed was down, so the node's home is a seed an app hosts on this machine;
    when the configured one answers again the node goes back to it within `retry_max`."""
    embedded = await seeds("embedded-x")
    port = free_port()
    configured = f"ws://127.0.0.1:{port}"
    cfg = UserConfig(
        name="alice",
        seeds=[embedded.url, configured],
        port=0,
        retry_max=0.5,
        data_dir=tmp_path / "alice",
    )
    alice = UserNode(cfg, {embedded.url})
    alice_ev = alice.subscribe()
    await alice.start()
    try:
        await next_event(alice_ev, at("embedded-x"))
        real = await seeds("real", port=port)
        await next_event(alice_ev, at("real"), timeout=20)
        bob, bob_ev = await users("bob", [real.url])
        await next_event(bob_ev, registered)
        msg_id = await bob.send("alice", "back on the mesh")
        await next_event(bob_ev, in_state(msg_id, "delivered"))
    finally:
        await alice.stop()
