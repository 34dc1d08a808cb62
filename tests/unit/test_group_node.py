"""Two group nodes on real stores, their copies handed over by hand (no sockets): a message that
comes before the state that lists its sender is kept aside, asked about, shown once the state
comes, and stored once however many copies arrive."""

from __future__ import annotations

import json

import pytest

from node.clock import now_ms
from node.crypto.keys import Identity
from node.errors import ProtocolError
from node.user.events import GroupChanged, MessageReceived
from node.user.group_node import GroupNode
from node.user.groups import Member
from node.user.store import StoredMessage, UserStore
from node.wire.protocol import ChatPlain


class Peer:
    def __init__(self, tmp_path, name: str) -> None:
        self.name = name
        self.identity = Identity.generate()
        self.store = UserStore(tmp_path / f"{name}.sqlite3")
        self.store.start()
        self.out: list[StoredMessage] = []
        self.events: list[object] = []
        self.ts = 0
        self.known: dict[str, Member] = {}

        async def resolve(n: str) -> Member:
            return self.known[n]

        def next_ts() -> int:
            self.ts = max(now_ms(), self.ts + 1)
            return self.ts

        self.node = GroupNode(
            name,
            self.identity,
            self.store,
            self.out.append,
            resolve,
            next_ts,
            now_ms,
            self.events.append,
        )

    def plain(self, copy: StoredMessage) -> ChatPlain:
        assert copy.envelope is not None
        return ChatPlain.model_validate(
            {
                "id": copy.id,
                "from": self.name,
                "to": copy.recipient,
                "ts": copy.ts,
                "text": copy.text,
                "kind": "group",
                "group": json.loads(copy.envelope.part),
            }
        )

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


async def test_a_message_before_its_state_waits_is_asked_about_and_is_shown_once(tmp_path):
    ann, bob, eve = Peer(tmp_path, "Ann"), Peer(tmp_path, "Bob"), Peer(tmp_path, "Eve")
    ann.known["Bob"] = Member("Bob", bob.identity.key)
    state = await ann.node.new("ops", ["Bob"])
    [state_copy] = ann.out
    mid = await ann.node.send(state.gid, "hello")
    msg_copy = ann.out[1]
    await bob.node.receive("Ann", ann.identity.key, ann.plain(msg_copy))  # before the state
    assert not bob.of(MessageReceived) and not bob.of(GroupChanged)
    [ask] = bob.out  # Bob asks Ann for the states it lacks
    assert json.loads(ask.envelope.part) == {"type": "ask", "gid": state.gid, "v": 0}
    await bob.node.receive("Ann", ann.identity.key, ann.plain(state_copy))
    assert [e.version for e in bob.of(GroupChanged)] == [1]
    [shown] = bob.of(MessageReceived)
    assert (shown.id, shown.from_, shown.text, shown.group) == (mid, "Ann", "hello", state.gid)
    await bob.node.receive("Ann", ann.identity.key, ann.plain(msg_copy))  # a copy by another path
    assert len(bob.of(MessageReceived)) == 1
    assert [m.text for m in bob.node.history(state.gid)] == ["hello"]
    # Eve holds the state's copy but is not in it: refused; and Ann's message from Eve's key too
    with pytest.raises(ProtocolError, match="does not list you"):
        await eve.node.receive("Ann", ann.identity.key, ann.plain(state_copy))
    mid2 = await ann.node.send(state.gid, "second")
    with pytest.raises(ProtocolError, match="not a member"):
        bob.node.receive("Ann", eve.identity.key, ann.plain(ann.out[-1]))
    await bob.node.receive("Ann", ann.identity.key, ann.plain(ann.out[-1]))
    assert [e.id for e in bob.of(MessageReceived)] == [mid, mid2]
    for p in (ann, bob, eve):
        await p.store.close()
