"""End-to-end boxes: what one identity seals only the named peer opens, and the inner fields must match."""

import json

import pytest

from node.crypto.boxes import Boxes
from node.crypto.keys import Identity
from node.errors import ErrorCode, ProtocolError
from node.wire.protocol import DIRECT, parse


def test_sealed_for_bob_opens_for_bob_only():
    sally, bob, eve = Identity.generate(), Identity.generate(), Identity.generate()
    text = Boxes(sally).seal(bob.key, "m1", "Sally", "Bob", 5, "hello ✓")
    chat = parse(DIRECT, text)
    inner = Boxes(bob).open(sally.key, chat)
    assert (inner.id, inner.from_, inner.to, inner.ts, inner.text) == (
        "m1",
        "Sally",
        "Bob",
        5,
        "hello ✓",
    )
    with pytest.raises(ProtocolError) as info:
        Boxes(eve).open(sally.key, chat)
    assert info.value.code == ErrorCode.BAD_BOX


def test_outer_fields_must_match_the_box():
    sally, bob = Identity.generate(), Identity.generate()
    frame = json.loads(Boxes(sally).seal(bob.key, "m1", "Sally", "Bob", 5, "x"))
    for field, value in (("id", "m2"), ("from", "Mallory"), ("to", "Carol")):
        chat = parse(DIRECT, json.dumps({**frame, field: value}))
        with pytest.raises(ProtocolError, match="differ"):
            Boxes(bob).open(sally.key, chat)


def test_one_box_per_peer_is_kept():
    sally, bob = Identity.generate(), Identity.generate()
    boxes = Boxes(sally)
    assert boxes.box(bob.key) is boxes.box(bob.key)
