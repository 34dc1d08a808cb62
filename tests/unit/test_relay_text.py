"""The seed's relay fast path: taken only by exact frames, which the models accept alike."""

from __future__ import annotations

import base64
import binascii
import json
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.crypto.boxes import Boxes
from node.crypto.keys import Identity
from node.errors import ProtocolError
from node.wire.protocol import TO_SEED, CarriedAck, Relay, canonical_b64, dump, frame_text, parse
from node.wire.relay_text import json_text, relay_text

# fixed bytes: the parametrized cases below must be the same in every test worker
NONCE = base64.b64encode(bytes(range(24))).decode()
BOX = base64.b64encode(bytes(range(256)) + bytes(44)).decode()
CHAT = {"type": "chat", "id": "m1", "from": "alice", "to": "bob", "nonce": NONCE, "box": BOX}
ACK = {"type": "ack", "id": "m1", "proof": base64.b64encode(bytes(range(72))).decode()}


def relay(frame: dict, **envelope: object) -> dict:
    return {"type": "relay", "id": "r1", "to": "bob", "frame": frame, **envelope}


def reference_b64(value: str) -> bool:
    """protocol._b64's rule for a box or a proof: standard padded base64, canonical."""
    try:
        return base64.b64encode(base64.b64decode(value, validate=True)).decode() == value
    except (binascii.Error, ValueError):
        return False


@given(st.text(alphabet="AQgw09+/=-_ \n", max_size=14) | st.text(alphabet="0=", max_size=14))
@settings(max_examples=600)
def test_canonical_b64_agrees_with_the_models_rule(value):
    assert canonical_b64(value) == reference_b64(value)


def test_a_chat_relayed_as_the_user_node_builds_it_keeps_its_text():
    alice, bob = Identity.generate(), Identity.generate()
    chat = Boxes(alice).seal(bob.key, "m1", "alice", "Bob", 1, "hi")
    raw = f'{{"type":"relay","id":"f1","to":"Bob","frame":{chat}}}'  # as delivery.py sends it
    fast = relay_text(raw)
    assert fast is not None
    assert (fast.id, fast.to, fast.chat_from, fast.frame) == ("f1", "Bob", "alice", chat)
    assert fast.frame == dump(parse(TO_SEED, raw).frame)  # what the slow path forwards


def test_an_ack_relayed_as_the_user_node_builds_it_takes_the_fast_path():
    ack = CarriedAck.model_validate(ACK)
    raw = dump(Relay(type="relay", id="f2", to="alice", frame=ack))  # as inbox.py sends it
    fast = relay_text(raw)
    assert fast is not None and fast.chat_from is None and fast.frame == dump(ack)


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps(relay(CHAT)),  # spaces after separators
        frame_text(relay(CHAT)).replace('"r1"', '"\\u00721"'),  # an escape that encodes otherwise
        frame_text({"type": "relay", "to": "bob", "id": "r1", "frame": CHAT}),  # key order
        frame_text(relay(dict(reversed(CHAT.items())))),  # the carried frame's key order
        frame_text(relay(CHAT, extra=1)),  # an unknown field (ignored by the model)
        frame_text(relay({**CHAT, "extra": 1})),  # an unknown field in the carried frame
        frame_text(relay(CHAT))[:-1] + ',"to":"bob"}',  # a repeated key
        frame_text(relay({**CHAT, "nonce": base64.b64encode(bytes(23)).decode()})),
        frame_text(relay({**CHAT, "box": BOX[:-2] + "B="})),  # not canonical
        frame_text(relay({**CHAT, "box": "QUJD\n"})),
        frame_text(relay({**CHAT, "from": "al ice"})),
        frame_text(relay(CHAT, to="-bob")),
        frame_text(relay(CHAT, id="x" * 65)),
        frame_text(relay(CHAT, id="")),
        frame_text(relay(CHAT, id=5)),
        frame_text(relay({**ACK, "proof": "QUJ="})),
        frame_text(relay({**ACK, "proof": "QUJD" * 300})),  # over 1,024 characters
        frame_text(relay({**CHAT, "type": "relayed"})),
        frame_text({"type": "relayx", "id": "r1", "to": "bob", "frame": CHAT}),
        frame_text({"type": "lookup", "id": "r1", "name": "bob"}),
        '{"type":"relay","id":"r1","to":"bob","frame":' + frame_text(CHAT),  # cut short
    ],
    ids=lambda raw: f"{zlib.crc32(raw.encode()):08x}",
)
def test_anything_but_an_exact_valid_relay_takes_the_models_path(raw):
    assert relay_text(raw) is None


def test_binary_frames_take_the_models_path():
    assert relay_text(frame_text(relay(CHAT)).encode()) is None


ids = st.text(max_size=70)
names = st.one_of(st.sampled_from(["bob", "alice", "B.o-b_9"]), st.text(max_size=34))
b64ish = st.one_of(
    st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode()),
    st.text(alphabet="ABCQg+/=", max_size=12),
)
carried = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("chat"), "id": ids, "from": names, "to": names},
        optional={"nonce": b64ish, "box": b64ish, "x": st.integers()},
    ),
    st.fixed_dictionaries(
        {"type": st.just("ack"), "id": ids}, optional={"proof": b64ish, "x": st.booleans()}
    ),
)


@given(
    st.fixed_dictionaries({"type": st.just("relay"), "id": ids, "to": names, "frame": carried}),
    st.booleans(),
)
@settings(max_examples=300)
def test_a_frame_on_the_fast_path_is_one_the_models_accept_alike(frame, ascii_only):
    """Whatever the fast path takes, the pydantic path takes too, with the same fields and the
    same forwarded text; so falling back never changes what is accepted."""
    raw = json.dumps(frame, separators=(",", ":"), ensure_ascii=ascii_only)
    fast = relay_text(raw)
    if fast is None:
        return
    try:
        slow = parse(TO_SEED, raw)
    except ProtocolError as exc:
        pytest.fail(f"the fast path took a frame the models refuse: {exc.message}")
    assert (fast.id, fast.to, fast.frame) == (slow.id, slow.to, dump(slow.frame))
    assert fast.chat_from == getattr(slow.frame, "from_", None)


def test_json_text_writes_a_string_as_dump_does():
    for value in ["r1", "é\u2028", 'q"\\', "\x00\x1f\x7f"]:
        assert json_text(value) == dump(Relay.model_construct(id=value)).split('"id":')[1][:-1]


def test_nesting_deeper_than_msgspec_follows_takes_the_models_path():
    """A relay with deep nesting in a field msgspec skips raised RecursionError out of the fast
    path, outside the seed's error handling (its socket handler ended with a traceback): it now
    goes to `parse`, which refuses it as too deep."""
    deep = "[" * 2000 + "]" * 2000
    raw = '{"type":"relay","id":"r1","z":%s,"to":"bob"}' % deep
    assert relay_text(raw) is None
    with pytest.raises(ProtocolError, match="nests too deeply"):
        parse(TO_SEED, raw)
