"""Packing chats into `chats` frames and acks into `acks` frames (r3): counts, sizes, order."""

from __future__ import annotations

import json

import pytest

from node.errors import ProtocolError
from node.user.batching import ack_frames, chat_frames, entries
from node.wire.protocol import DIRECT, MAX_BATCH, MAX_FRAME, Acks, Chats, parse, readable_id


def chat(i: int, box_len: int = 64) -> str:
    obj = {"type": "chat", "id": f"m-{i}", "from": "alice", "to": "bob"}
    obj |= {"nonce": "A" * 32, "box": "A" * box_len}
    return json.dumps(obj, separators=(",", ":"))


def test_chats_are_packed_in_order_by_32_within_the_frame_limit():
    texts = [chat(i) for i in range(70)]
    frames = [parse(DIRECT, f) for f in chat_frames(texts)]
    assert all(isinstance(f, Chats) for f in frames)
    assert [len(f.chats) for f in frames] == [32, 32, 6]
    ids = [c.id for f in frames for c in f.chats]
    assert ids == [f"m-{i}" for i in range(70)]


def test_large_chats_are_cut_by_bytes_and_one_alone_goes_as_a_plain_chat():
    texts = [chat(i, 20_000) for i in range(5)] + [chat(5, 46_000)]
    frames = chat_frames(texts)
    assert all(len(f.encode()) <= MAX_FRAME for f in frames)
    parsed = [parse(DIRECT, f) for f in frames]
    ids = [c.id for f in parsed for c in (f.chats if isinstance(f, Chats) else [f])]
    assert ids == [f"m-{i}" for i in range(6)]
    assert parsed[-1].type == "chat"  # too large to share a frame


def test_acks_are_fitted_by_32():
    pairs = [(f"m-{i}", "QUJD") for i in range(40)]
    frames = [parse(DIRECT, f) for f in ack_frames(pairs)]
    assert all(isinstance(f, Acks) for f in frames)
    assert [len(f.acks) for f in frames] == [MAX_BATCH, 8]


def test_a_bad_chat_among_good_ones_is_refused_alone():
    bad = json.loads(chat(1))
    del bad["box"]
    raw = json.dumps({"type": "chats", "chats": [json.loads(chat(0)), bad, "x"]})
    got = entries(raw)
    assert got is not None
    assert [getattr(e, "id", None) or getattr(e, "frame_id", None) for e in got][:2] == [
        "m-0",
        "m-1",
    ]
    assert [type(e).__name__ for e in got] == ["Chat", "ProtocolError", "ProtocolError"]
    assert entries(json.dumps({"type": "chats", "chats": [json.loads(chat(0))] * 33})) is None
    assert entries(json.dumps({"type": "chats", "chats": {}})) is None


def test_a_frame_the_strict_parse_refuses_whole_is_not_read_chat_by_chat():
    """The per-chat reading takes no frame the models refuse for its form (a key twice in a chat,
    a binary frame), and never echoes an id no answer can carry (a lone surrogate)."""
    good, other = chat(0), chat(1)
    twice = other[:-1] + ',"id":"m-9"}'
    raw = '{"type":"chats","chats":[%s,%s,"x"]}' % (good, twice)
    with pytest.raises(ProtocolError):
        parse(DIRECT, raw)
    assert entries(raw) is None
    assert entries(('{"type":"chats","chats":[%s,"x"]}' % good).encode()) is None
    lone = good.replace('"id":"m-0"', '"id":"\\ud800"')
    got = entries('{"type":"chats","chats":[%s,%s]}' % (other, lone))
    assert got is not None and isinstance(got[1], ProtocolError)
    assert got[1].frame_id is None
    assert readable_id(lone) is None
