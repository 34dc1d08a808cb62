"""Two people behind separate NAT routers, with nothing but their names and a seed URL, chat both
ways, and neither needs to be online when the other writes.

The lab (tests/netlab.py) is real: network namespaces, a public segment with two seeds, and two
homes behind MASQUERADE routers that let nothing in. Users run with default flags.
"""

from __future__ import annotations

import asyncio

from .netlab import NatLab, nat_lab
from .procs import SeedProc, UserProc

__all__ = ["nat_lab"]


def delivered(user: UserProc, msg_id: str, what: str) -> dict:
    return user.seen(lambda x: x["event"] == "delivered" and x["id"] == msg_id, 30, what)


def sent_id(user: UserProc, text: str) -> str:
    """The id of the message just queued with `text` (from its queued state line)."""
    line = user.seen(
        lambda x: x["event"] == "state" and x.get("text") == text, 10, f"{text!r} queued"
    )
    return line["id"]


def message(user: UserProc, text: str) -> dict:
    return user.seen(
        lambda x: x["event"] == "message" and x["text"] == text, 30, f"{text!r} received"
    )


def test_two_homes_behind_nat_chat_both_ways_and_by_mail(nat_lab: NatLab, tmp_path):
    asyncio.run(_scenario(nat_lab, tmp_path))


async def _scenario(lab: NatLab, tmp_path) -> None:
    def seed(i: int, peers: tuple[str, ...] = ()) -> SeedProc:
        host = lab.seeds[i]
        return SeedProc(tmp_path / f"seed{i}", f"seed{i}", 5001, peers, host=host.ip, netns=host.ns)

    s0 = await asyncio.to_thread(seed, 0)
    s1 = await asyncio.to_thread(seed, 1, (s0.url,))
    home_a, home_b = lab.homes

    def user(name: str, home, seed_url: str) -> UserProc:
        return UserProc(tmp_path / name, name, [seed_url], netns=home.ns)

    alice = await asyncio.to_thread(user, "alice", home_a, s0.url)
    bob = await asyncio.to_thread(user, "bob", home_b, s1.url)
    try:
        for u in (alice, bob):
            reg = await asyncio.to_thread(u.registered)
            assert reg["endpoint"] == "relay:", "a user behind NAT publishes relay: by default"

        # both ways, through the seeds
        alice.say("@bob hello from behind one NAT")
        got = await asyncio.to_thread(message, bob, "hello from behind one NAT")
        await asyncio.to_thread(delivered, alice, got["id"], "alice's message delivered")
        bob.say("@alice and hello from behind another")
        got = await asyncio.to_thread(message, alice, "and hello from behind another")
        await asyncio.to_thread(delivered, bob, got["id"], "bob's message delivered")

        # bob is away: alice's message is held by the mesh, then delivered when he returns
        await asyncio.to_thread(bob.stop)
        alice.say("@bob while you were away")
        msg_id = await asyncio.to_thread(sent_id, alice, "while you were away")
        await asyncio.to_thread(
            alice.seen,
            lambda x: x["event"] == "state" and x["id"] == msg_id and x["state"] == "stored",
            30,
            "stored as mail",
        )
        bob = await asyncio.to_thread(user, "bob", home_b, s1.url)
        await asyncio.to_thread(message, bob, "while you were away")
        await asyncio.to_thread(delivered, alice, msg_id, "delivered after bob's return")

        # alice is away now: bob writes, and she reads it when both are back
        await asyncio.to_thread(alice.stop)
        bob.say("@alice your turn to be away")
        back_id = await asyncio.to_thread(sent_id, bob, "your turn to be away")
        alice = await asyncio.to_thread(user, "alice", home_a, s0.url)
        await asyncio.to_thread(message, alice, "your turn to be away")
        await asyncio.to_thread(delivered, bob, back_id, "delivered after alice's return")
    finally:
        for proc in (alice, bob, s1, s0):
            await asyncio.to_thread(proc.stop)
