"""The msgspec hot-path codec against the strict pydantic path it stands in for.

The decoder must take the same frames and give the same model (or the same error), whatever
the spelling: generated valid chats and acks, and the same with duplicate keys, keys out of
order, spaces, escapes, non-canonical base64, names with a trailing newline, extra fields. Every
encoder must write the bytes `json.dumps` wrote before.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from node.errors import ProtocolError
from node.user.batching import ack_frames, chat_frames
from node.user.inbox import ack_text
from node.wire import fastcodec
from node.wire.fastcodec import (
    chat_text,
    parse_direct,
    parse_to_seed,
    plain_bytes,
    registered_text,
)
from node.wire.names import NAME_RE
from node.wire.protocol import DIRECT, MAX_INT, MAX_TEXT, TO_SEED, parse

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.from_regex(NAME_RE, fullmatch=True)
ids = st.one_of(
    st.uuids().map(lambda u: u.hex), st.text(max_size=66), st.text(alphabet='ab\n"\\é', max_size=4)
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


class Spelled(str):
    """JSON text of a value, written as it is inside an object (a nested object spelled apart)."""


def spell(
    pairs: list[tuple[str, Any]], ascii_only: bool, seps: tuple[str, str] = (",", ":")
) -> str:
    """JSON text of an object given as key/value pairs (so a key may come twice)."""
    items = (
        json.dumps(k)
        + seps[1]
        + (v if isinstance(v, Spelled) else json.dumps(v, ensure_ascii=ascii_only))
        for k, v in pairs
    )
    return "{" + seps[0].join(items) + "}"


# the fields holding base64 (a chat's and an ack's, a register's record's and session auth's)
B64_KEYS = ("nonce", "box", "proof", "key", "sig", "seed_key")


@st.composite
def mutated(draw: st.DrawFn, pairs: list[tuple[str, Any]]) -> str:
    """The object in contract order and compact, or spelled in one of the ways the strict path
    reads differently from a lenient one (or refuses)."""
    pairs = list(pairs)
    how = draw(
        st.sampled_from(
            [
                "as is",
                "dup",
                "reorder",
                "space",
                "ascii",
                "escape",
                "b64",
                "b64",
                "name",
                "name",
                "extra",
                "alias",
                "drop",
            ]
        )
    )
    seps = (",", ":")
    ascii_only = draw(st.booleans()) if how == "as is" else how == "ascii"
    i = draw(st.integers(0, len(pairs) - 1))
    key, value = pairs[i]
    if how == "dup":
        again = draw(st.one_of(st.just(value), st.text(max_size=3), st.integers(-1, 3)))
        pairs.insert(draw(st.integers(0, len(pairs))), (key, again))
    elif how == "reorder":
        pairs = draw(st.permutations(pairs))
    elif how == "space":
        seps = draw(st.sampled_from([(", ", ":"), (",", ": "), (",", ":")]))
        pad = draw(st.sampled_from(["", " ", "\n", "\t"]))
        return pad + spell(pairs, False, seps) + draw(st.sampled_from(["", " ", "\n"]))
    elif how == "escape" and isinstance(value, str) and value:
        text = spell(pairs, False)
        original = json.dumps(value, ensure_ascii=False)
        escaped = '"\\u%04x' % ord(value[0]) + original[2:]
        return text.replace(original, escaped, 1)
    elif how == "b64":
        slots = [j for j, (k, v) in enumerate(pairs) if k in B64_KEYS and isinstance(v, str)]
        if slots:
            j = draw(st.sampled_from(slots))
            k, v = pairs[j]
            bad = draw(
                st.sampled_from(
                    [
                        v.rstrip("="),
                        v + "=",
                        v + "\n",
                        " " + v,
                        v[:-1] + ("B" if v[-1:] == "A" else "A") if v else "A",
                        v[:-2] + "B="
                        if v.endswith("A=")
                        else v[:-3] + "B=="
                        if v.endswith("A==")
                        else v + "AAAA",
                        v.replace("+", "-").replace("/", "_"),
                    ]
                )
            )
            pairs[j] = (k, bad)
    elif how == "name":
        slots = [j for j, (k, _) in enumerate(pairs) if k in ("from", "to", "name")]
        if slots:
            j = draw(st.sampled_from(slots))
            k, v = pairs[j]
            tail = draw(st.sampled_from(["\n", "\n", "\n", " ", "\r\n", "é", "x" * 32, "\x00"]))
            pairs[j] = (k, draw(st.sampled_from([v + tail, v + tail, tail + v, ""])))
    elif how == "extra":
        pairs.insert(
            draw(st.integers(0, len(pairs))), (draw(st.text(max_size=5)), draw(json_values))
        )
    elif how == "alias":
        pairs = [("from_" if k == "from" else k, v) for k, v in pairs]
    elif how == "drop":
        del pairs[i]
    return spell(pairs, ascii_only, seps)


def chat_pairs(
    msg_id: str, sender: str, to: str, nonce: bytes, box: bytes
) -> list[tuple[str, Any]]:
    return [
        ("type", "chat"),
        ("id", msg_id),
        ("from", sender),
        ("to", to),
        ("nonce", b64(nonce)),
        ("box", b64(box)),
    ]


nonces = st.one_of(st.binary(min_size=24, max_size=24), st.binary(min_size=23, max_size=25))
chats = st.builds(chat_pairs, ids, names, names, nonces, st.binary(max_size=80))
acks = st.builds(
    lambda i, p: [("type", "ack"), ("id", i), ("proof", b64(p))], ids, st.binary(max_size=100)
)


def outcome(fn: Any, raw: Any) -> Any:
    """What a parser makes of `raw`: the model's class, fields and set fields, or its error."""
    try:
        model = fn(raw)
    except ProtocolError as exc:
        return ("error", exc.code, exc.message, exc.frame_id)
    assert isinstance(model, BaseModel)
    return (type(model), model.model_dump(), model.model_fields_set, model)


NONCE = "A" * 32
CHAT = '{"type":"chat","id":"m","from":"%s","to":"%s","nonce":"%s","box":"%s"}'


@SETTINGS
@given(st.one_of(chats, acks).flatmap(mutated))
@example(CHAT % ("Sally\\n", "bob", NONCE, ""))
@example(CHAT % ("Sally", "bob\\n", NONCE, ""))
@example(CHAT % ("Sally", "bob", NONCE[:-1] + "=", ""))
@example(CHAT % ("Sally", "bob", NONCE, "AB=="))
@example(CHAT % ("Sally", "bob", NONCE, "AA==\\n"))
def test_direct_frames_parse_as_the_strict_path_parses_them(raw):
    assert outcome(parse_direct, raw) == outcome(lambda r: parse(DIRECT, r), raw)


# ------------------------------------------------------------------ the encoders


def old_plain(msg_id, sender, to, ts, text, extra):
    fields: dict[str, Any] = {"id": msg_id, "from": sender, "to": to, "ts": ts}
    fields["text"] = text
    if extra:
        fields.update(extra)
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()


group_extra = st.fixed_dictionaries(
    {
        "kind": st.just("group"),
        "group": st.dictionaries(st.text(max_size=4), json_values, max_size=3),
    }
)
act_extra = st.fixed_dictionaries(
    {"act": st.dictionaries(st.text(max_size=4), json_values, max_size=3)}
)


@SETTINGS
@given(
    st.one_of(
        st.text(st.characters(max_codepoint=127), min_size=1, max_size=64),
        st.text(min_size=1, max_size=64),
    ),
    names,
    names,
    st.integers(0, MAX_INT),
    st.text(max_size=MAX_TEXT),
    st.one_of(
        st.none(),
        group_extra,
        act_extra,
        group_extra.flatmap(lambda g: act_extra.map(lambda a: {**g, **a})),
    ),
)
@example("m\x7f", "Sally", "bob", 0, "", None)  # json.dumps escapes DEL, msgspec does not
def test_encoders_write_the_strict_paths_bytes(msg_id, sender, to, ts, text, extra):
    plain = plain_bytes(msg_id, sender, to, ts, text, extra)
    assert plain == old_plain(msg_id, sender, to, ts, text, extra)
    nonce, box = b64(bytes(24)), b64(plain)
    frame = {"type": "chat", "id": msg_id, "from": sender, "to": to, "nonce": nonce, "box": box}
    assert chat_text(msg_id, sender, to, nonce, box) == json.dumps(frame, separators=(",", ":"))


def test_what_our_encoders_write_takes_the_fast_path(monkeypatch):
    """The codec is worth having only if our chats and acks pass its re-encode check."""
    nonce, box = b64(bytes(range(24))), b64(b"\x00" * 300)
    chat = chat_text("f3" * 16, "Sally", "bob.x-1", nonce, box)
    ack = ack_text("f3" * 16, b64(b"\xfe" * 90))

    def strict(*args: object) -> None:
        raise AssertionError("the strict path was taken")

    monkeypatch.setattr(fastcodec, "parse", strict)
    assert parse_direct(chat).box == box
    assert parse_direct(ack).id == "f3" * 16


# ------------------------------------------------------------------ r3 batches

BATCH_SHAPES = [
    '{"type":"chats","chats":[%s]}',
    '{"chats":[%s],"type":"chats"}',
    '{"type":"chats","chats":[%s],"type":"chats"}',
    '{"type": "chats", "chats": [%s]}',
]
ACKS_SHAPES = [s.replace("chats", "acks") for s in BATCH_SHAPES]
VALID_CHAT = CHAT % ("Sally", "bob", NONCE, "AA==")
ack_items = st.builds(lambda i, p: [("id", i), ("proof", b64(p))], ids, st.binary(max_size=100))


@SETTINGS
@given(
    st.one_of(
        st.tuples(
            st.lists(chats.flatmap(mutated), min_size=0, max_size=34), st.sampled_from(BATCH_SHAPES)
        ),
        st.tuples(
            st.lists(ack_items.flatmap(mutated), min_size=0, max_size=34),
            st.sampled_from(ACKS_SHAPES),
        ),
    )
)
@example(([VALID_CHAT] * 33, BATCH_SHAPES[0]))  # one more than a batch holds
@example(([VALID_CHAT] * 32, BATCH_SHAPES[0]))
@example(([VALID_CHAT, CHAT % ("Sally", "bob", NONCE, "AB==")], BATCH_SHAPES[0]))
@example((['{"id":"m","proof":"AA=="}'] * 33, ACKS_SHAPES[0]))
@example((['{"id":"m","proof":"AB=="}'], ACKS_SHAPES[0]))
def test_batches_parse_as_the_strict_path_parses_them(batch):
    items, shape = batch
    raw = shape % ",".join(items)
    assert outcome(parse_direct, raw) == outcome(lambda r: parse(DIRECT, r), raw)


def test_the_batches_we_write_take_the_fast_path(monkeypatch):
    nonce, box = b64(bytes(range(24))), b64(b"\x00" * 300)
    texts = [chat_text(f"id{n}", "Sally", "bob", nonce, box) for n in range(32)]
    [chats_frame] = chat_frames(texts)
    [acks_frame] = ack_frames([(f"id{n}", b64(b"\xfe" * 90)) for n in range(32)])

    def strict(*args: object) -> None:
        raise AssertionError("the strict path was taken")

    monkeypatch.setattr(fastcodec, "parse", strict)
    parsed = parse_direct(chats_frame)
    assert [c.id for c in parsed.chats] == [f"id{n}" for n in range(32)]
    assert [a.id for a in parse_direct(acks_frame).acks] == [f"id{n}" for n in range(32)]


def test_nesting_deeper_than_msgspec_follows_gets_the_strict_paths_refusal():
    """Deep nesting in a field the fast decoder skips raised RecursionError out of parse_direct
    (an endpoint answered `internal` and logged a bug; a sender's link reader died): it now takes
    the strict path, which refuses it as too deep."""
    deep = "[" * 2000 + "]" * 2000
    for raw in ('{"type":"chat","x":%s}' % deep, '{"x":%s,"type":"ack"}' % deep):
        with pytest.raises(ProtocolError) as strict:
            parse(DIRECT, raw)
        with pytest.raises(ProtocolError) as fast:
            parse_direct(raw)
        assert fast.value.message == strict.value.message == "frame nests too deeply"


# ------------------------------------------------------------------ a seed's register frames

sized = st.sampled_from([32] * 8 + [30, 31, 33, 34])  # bytes of a key, nonce (and half a sig)
endpoints = st.one_of(
    st.sampled_from(["relay:", "ws://127.0.0.1:9", "wss://seed.example:443/x"]),
    st.sampled_from(
        [
            "relay:",
            "ws://127.0.0.1:9",
            "wss://seed.example:443/x",
            "ws://[::1]:7000",
            "ws://h:0",
            "ws://h:99999",
            "ws://",
            "http://h:1",
            "relay:x",
            "ws://h/" + "x" * 2042,  # 2049 characters: one past the bound
            "ws://h/" + "x" * 2041,
            "ws://hé:1",
        ]
    ),
    st.text(max_size=12),
)
counts = st.one_of(
    st.integers(1, MAX_INT), st.sampled_from([-1, 0, 1, MAX_INT, MAX_INT + 1]), st.integers()
)


@st.composite
def registers(draw: st.DrawFn) -> str:
    """A register frame, as users write it or mutated at one of its three objects."""
    key, sig = draw(sized), draw(sized.map(lambda n: n * 2))
    record = [
        ("name", draw(names)),
        ("key", b64(draw(st.binary(min_size=key, max_size=key)))),
        ("endpoint", draw(endpoints)),
        ("seq", draw(counts)),
        ("sig", b64(draw(st.binary(min_size=sig, max_size=sig)))),
    ]
    nonce = draw(sized)
    auth = [
        ("name", draw(st.one_of(st.just(record[0][1]), names))),
        ("seed_key", b64(draw(st.binary(min_size=32, max_size=32)))),
        ("nonce", b64(draw(st.binary(min_size=nonce, max_size=nonce)))),
        ("at", draw(counts)),
        ("sig", b64(draw(st.binary(min_size=64, max_size=64)))),
    ]
    where = draw(st.sampled_from(["none", "none", "top", "record", "auth"]))
    inner = {"record": record, "auth": auth}
    texts = {
        k: Spelled(draw(mutated(v)) if where == k else spell(v, False)) for k, v in inner.items()
    }
    top = [("type", "register"), ("id", draw(ids)), ("record", texts["record"])]
    top.append(("auth", texts["auth"]))
    return draw(mutated(top)) if where == "top" else spell(top, False)


KEY, SIG = b64(bytes(32)), b64(bytes(64))
REC = '{"name":"Sally","key":"%s","endpoint":"%s","seq":%s,"sig":"%s"}'
AUTH = '{"name":"Sally","seed_key":"%s","nonce":"%s","at":%s,"sig":"%s"}' % (KEY, KEY, 5, SIG)
REG = '{"type":"register","id":"r","record":%s,"auth":%s}'


@SETTINGS
@given(registers())
@example(REG % (REC % (KEY, "relay:", 1, SIG), AUTH))
@example(REG % (REC % (KEY, "relay:", 0, SIG), AUTH))
@example(REG % (REC % (KEY, "relay:", MAX_INT + 1, SIG), AUTH))
@example(REG % (REC % (KEY, "relay:", "1.0", SIG), AUTH))
@example(REG % (REC % (KEY, "relay:", "true", SIG), AUTH))
@example(REG % (REC % (KEY, "ws://h:0", 1, SIG), AUTH))
@example(REG % (REC % (KEY[:-2] + "B=", "relay:", 1, SIG), AUTH))  # not canonical
@example(REG % (REC % (KEY[:-1] + "A", "relay:", 1, SIG), AUTH))  # 33 bytes, 44 characters
@example(REG % (REC % (KEY, "relay:", 1, SIG[:-2] + "AA"), AUTH))  # 66 bytes, 88 characters
@example(REG % (REC % (KEY, "relay:", 1, SIG), AUTH.replace('"at":5', '"at":-1')))
@example(REG % (REC % (KEY, "relay:", 1, SIG), AUTH[:-1] + ',"x":1}'))  # an extra field
@example((REG % (REC % (KEY, "relay:", 1, SIG), AUTH))[:-1] + ',"x":1}')  # ignored at the top
def test_registers_parse_as_the_strict_path_parses_them(raw):
    assert outcome(parse_to_seed, raw) == outcome(lambda r: parse(TO_SEED, r), raw)


def test_the_registers_users_write_take_the_fast_path(monkeypatch):
    """What a user's seed link sends (`dump(Register(...))`) passes the re-encode check; the
    other frames a seed reads still take the strict path."""
    from node.crypto.keys import Identity
    from node.crypto.signing import sign_record, sign_session
    from node.wire.protocol import Register, dump

    user, seed = Identity.generate(), Identity.generate()
    record = sign_record(user, "Sally", "ws://127.0.0.1:9000", 7)
    auth = sign_session(user, "Sally", seed.key, b64(bytes(range(32))), 1_700_000_000_000)
    for endpoint in ("ws://127.0.0.1:9000", "relay:"):
        record = sign_record(user, "Sally", endpoint, 7)
        text = dump(Register(type="register", id="f3" * 16, record=record, auth=auth))
        strict = parse(TO_SEED, text)

        def refuse(*args: object) -> None:
            raise AssertionError("the strict path was taken")

        monkeypatch.setattr(fastcodec, "parse", refuse)
        parsed = parse_to_seed(text)
        monkeypatch.undo()
        assert parsed == strict and parsed.record == record and parsed.auth == auth
    lookup = '{"type":"lookup","id":"l","name":"Sally"}'
    assert parse_to_seed(lookup) == parse(TO_SEED, lookup)


@SETTINGS
@given(
    st.one_of(
        ids.filter(lambda i: 1 <= len(i) <= 64),  # a register's id (FrameId)
        st.text(st.characters(max_codepoint=127), min_size=1, max_size=64),
    ),
    st.one_of(st.text(min_size=1, max_size=64), st.sampled_from(["seed-1", "s\x7f", 'a"b\\'])),
)
@example("r\x7f", "seed")  # DEL: printable to neither writer
@example('a"b\\c', "seed")
def test_registered_answers_are_the_bytes_pydantic_writes(fid, seed):
    from node.wire.protocol import Registered, dump

    assert registered_text(fid, seed) == dump(Registered(type="registered", id=fid, seed=seed))
