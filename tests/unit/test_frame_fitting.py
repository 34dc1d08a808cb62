"""Every frame that carries a list fits 64 KiB at its worst case, as this project builds it.

A frame is at its worst with its strings at their longest and made of the characters JSON
escapes the most (a control character becomes six bytes). The list-bearing frames of
node/wire/protocol.py are found by looking, so a new one fails here until it has a case.
"""

from __future__ import annotations

import base64
import json
import types
import typing

from pydantic import BaseModel

from node.clock import now_ms
from node.config import SeedConfig
from node.crypto.keys import Identity
from node.crypto.signing import sign_take
from node.seed import chunks
from node.seed.mesh import KnownSeed, Mesh
from node.user.seed_client import WATCH_CHUNK
from node.wire import protocol
from node.wire.fit import MAX_SEEDS_LISTED, batches, fitting
from node.wire.protocol import (
    MAX_BOX,
    MAX_CARRIED,
    MAX_FRAME,
    MAX_SEED_URL,
    MAX_TAKE_IDS,
    MailItem,
    Publish,
    Record,
    SeedHello,
    SeedList,
    SeedWelcome,
    Take,
    Watch,
    dump,
)

KEY = base64.b64encode(b"k" * 32).decode()
SIG = base64.b64encode(b"s" * 64).decode()
N32 = base64.b64encode(b"n" * 32).decode()
EPOCH = base64.b64encode(b"e" * 16).decode()
WORST_ID = "\x01" * 64  # a frame id: 64 characters, six bytes each once escaped
WORST_NAME = "a" + "-" * 31  # user names are 32 ASCII characters
WORST_SEED_NAME = "\x01" * 64
BIG = 2**53 - 1


def size(frame: BaseModel) -> int:
    return len(dump(frame).encode())


def worst_url(i: int) -> str:
    """A seed URL at the bound, of the characters that grow most when escaped (a quote: two)."""
    head = f"ws://h{i}.example:1/"
    return head + '"' * (MAX_SEED_URL - len(head))


def worst_record(i: int) -> Record:
    endpoint = f"ws://h{i}.example:1/" + '"' * 2000
    return Record(name=f"u{i:05d}" + "-" * 26, key=KEY, endpoint=endpoint, seq=BIG, sig=SIG)


def worst_mail(i: int) -> MailItem:
    chat = {
        "type": "chat",
        "id": "\x01" * 64,
        "from": WORST_NAME,
        "to": WORST_NAME,
        "nonce": base64.b64encode(b"n" * 24).decode(),
        "box": base64.b64encode(b"b" * (MAX_BOX * 3 // 4)).decode(),
    }
    return MailItem.model_validate(
        {"to": WORST_NAME, "from": WORST_NAME, "frame": chat, "at": BIG - i, "sig": SIG}
    )


def worst_take() -> dict:
    """The largest take a seed can hold: a carried object, at most MAX_CARRIED encoded."""
    ids = [[WORST_NAME, "chat", "\x01" * 64] for _ in range(MAX_TAKE_IDS)]
    while len(json.dumps(ids).encode()) > MAX_CARRIED - 300:
        ids.pop()
    return {"to": WORST_NAME, "ids": ids, "at": BIG, "sig": SIG}


def a_mesh() -> Mesh:
    """A mesh with no sockets: only what building lists needs."""
    seed = types.SimpleNamespace(
        config=SeedConfig(max_seed_urls=1000),
        name=WORST_SEED_NAME,
        url=worst_url(0),
        key=KEY,
    )
    return Mesh(seed)  # type: ignore[arg-type]


def full_mesh(count: int) -> Mesh:
    """`count` seeds proven a moment ago, each at a URL and under a name at their worst."""
    mesh = a_mesh()
    now = now_ms()
    for i in range(1, count + 1):
        key = base64.b64encode(i.to_bytes(32, "big")).decode()
        url = worst_url(i)
        mesh.urls.verified(url, key, now)
        mesh.known[key] = KnownSeed(WORST_SEED_NAME, url, key, now)
    return mesh


def test_seed_list_at_its_worst_fits_and_is_bounded():
    infos = full_mesh(500).seed_infos()
    frame = SeedList(type="seed_list", id=WORST_ID, seeds=infos)
    print(f"\nseed_list of {len(infos)} seeds at their worst: {size(frame)} bytes")
    assert size(frame) <= MAX_FRAME and 1 < len(infos) <= MAX_SEEDS_LISTED
    assert infos[0].key == KEY  # this seed first


def test_hello_and_welcome_at_their_worst_fit():
    mesh = full_mesh(500)
    seeds = mesh._passed_on(now_ms())
    auth = {
        "at": BIG,
        "dialler": KEY,
        "dialled": KEY,
        "challenge": N32,
        "hello_nonce": N32,
        "sig": SIG,
    }
    common = {
        "id": WORST_ID,
        "name": WORST_SEED_NAME,
        "url": "ws://h.example:1/" + '"' * 2000,  # a peer's own URL may be long (not kept)
        "key": KEY,
        "seeds": seeds,
        "since": (EPOCH, BIG),
        "auth": auth,
        "broadcast": "\x01" * 32,  # r3: the broadcast offered, at its bound
    }
    hello = SeedHello.model_validate({"type": "seed_hello", "nonce": N32, **common})
    welcome = SeedWelcome.model_validate({"type": "seed_welcome", **common})
    print(f"\nhello passing on {len(seeds)} URLs: {size(hello)} bytes")
    assert 1 < len(seeds) <= MAX_SEEDS_LISTED
    assert size(hello) <= MAX_FRAME and size(welcome) <= MAX_FRAME


def test_watch_requests_at_their_worst_fit():
    frame = Watch(type="watch", id=WORST_ID, names=[WORST_NAME] * WATCH_CHUNK)
    assert size(frame) <= MAX_FRAME


def test_publish_batches_at_their_worst_fit():
    records = [worst_record(i) for i in range(600)]
    parts = list(batches([dump(r) for r in records], most=200))
    assert sum(len(p) for p in parts) == len(records)
    for part in parts:
        frame = Publish(type="publish", id=WORST_ID, records=records[part.start : part.stop])
        assert size(frame) <= MAX_FRAME


def test_sync_gossip_and_mail_frames_at_their_worst_fit():
    mail = [dump(worst_mail(i)) for i in range(6)]
    take = json.dumps(worst_take(), separators=(",", ":"))
    records = [dump(worst_record(i)) for i in range(60)]
    items = (
        [("records", t, i) for i, t in enumerate(records)]
        + [("mail", t, 100 + i) for i, t in enumerate(mail)]
        + [("taken", take, 200)]
    )
    for kind, done in (("sync", True), ("gossip", None)):
        out = list(chunks.frames(kind, items, (EPOCH, BIG), MAX_FRAME, done))
        adapter = protocol.SEED_LINK
        assert all(len(f.encode()) <= MAX_FRAME for f in out)
        parsed = [protocol.parse(adapter, f) for f in out]
        assert sum(len(p.records) + len(p.mail) + len(p.taken) for p in parsed) == len(items)
    pushes = list(chunks.mail_frames(mail, MAX_FRAME))
    assert len(pushes) == len(mail) and all(len(f.encode()) <= MAX_FRAME for f in pushes)
    # an item no frame can hold (one that passed no entry check) is left out, not sent whole
    huge = json.dumps({"pad": "x" * MAX_FRAME})
    assert list(chunks.mail_frames([huge], MAX_FRAME)) == []
    assembler = chunks.Assembler("gossip", (EPOCH, 1), MAX_FRAME, None)
    assert assembler.add("records", huge, 1) is None and assembler.finish() is None
    assert assembler.skipped == 1


def test_takes_at_their_worst_are_cut_to_carried_objects():
    """Mail ids are chosen by senders: 400 of the worst (64 control characters) made a take of
    172 KB, which no frame holds. The user's takes are cut by encoded size."""
    from node.user.inbox import take_batches

    identity = Identity.generate()
    ids = [(WORST_NAME, "chat", f"{i:04d}" + "\x01" * 60) for i in range(1000)]
    parts = take_batches(ids)  # type: ignore[arg-type]
    assert [i for part in parts for i in part] == ids
    for part in parts:
        taken = sign_take(identity, WORST_NAME, part, BIG)
        assert len(dump(taken).encode()) <= MAX_CARRIED
        assert size(Take(type="take", id=WORST_ID, taken=taken)) <= MAX_FRAME


def test_fitting_cuts_by_bytes_and_count():
    texts = ["é" * 100] * 10  # two bytes a character
    assert fitting(texts, room=1000) == 4
    assert fitting(texts, room=10_000, most=3) == 3
    assert [list(r) for r in batches(["x" * 10, "y" * 5000, "z" * 10], room=100)] == [[0], [2]]


def test_ihave_and_graft_at_their_worst_fit():
    ids = ["\x01" * 16] * protocol.MAX_BROADCAST_IDS
    ihave = protocol.Ihave(type="ihave", ids=ids)
    graft = protocol.Graft(type="graft", ids=ids)
    assert size(ihave) <= MAX_FRAME and size(graft) <= MAX_FRAME


def test_chats_and_acks_frames_at_their_worst_fit():
    """r3 batching: 32 chats with the largest box, or 32 acks with the worst ids and proofs."""
    from node.user.batching import ack_frames, chat_frames

    box = base64.b64encode(bytes(protocol.MAX_BOX // 4 * 3)).decode()
    nonce = base64.b64encode(bytes(24)).decode()
    chat = protocol.Chat.model_construct(
        type="chat", id=WORST_ID, from_=WORST_NAME, to=WORST_NAME, nonce=nonce, box=box
    )
    texts = [dump(chat)] * protocol.MAX_BATCH
    frames = chat_frames(texts)
    assert len(frames) == len(texts)  # each alone: two do not fit one frame
    small = [dump(chat.model_copy(update={"box": box[:2000]}))] * 100
    assert all(len(f.encode()) <= MAX_FRAME for f in chat_frames(texts + small))
    proof = base64.b64encode(bytes(1024 // 4 * 3)).decode()
    acks = ack_frames([(WORST_ID, proof)] * 100)
    assert all(len(f.encode()) <= MAX_FRAME for f in acks)
    parsed = [protocol.parse(protocol.DIRECT, f) for f in acks]
    assert sum(len(f.acks) for f in parsed) == 100


COVERED = {
    "Chats": test_chats_and_acks_frames_at_their_worst_fit,
    "Acks": test_chats_and_acks_frames_at_their_worst_fit,
    "SeedList": test_seed_list_at_its_worst_fits_and_is_bounded,
    "SeedHello": test_hello_and_welcome_at_their_worst_fit,
    "SeedWelcome": test_hello_and_welcome_at_their_worst_fit,
    "Watch": test_watch_requests_at_their_worst_fit,
    "Publish": test_publish_batches_at_their_worst_fit,
    "Sync": test_sync_gossip_and_mail_frames_at_their_worst_fit,
    "Gossip": test_sync_gossip_and_mail_frames_at_their_worst_fit,
    "MailPush": test_sync_gossip_and_mail_frames_at_their_worst_fit,
    "Taken": test_takes_at_their_worst_are_cut_to_carried_objects,
    "Ihave": test_ihave_and_graft_at_their_worst_fit,
    "Graft": test_ihave_and_graft_at_their_worst_fit,
}


def test_every_list_bearing_frame_has_a_worst_case_here():
    bearing = set()
    for name, obj in vars(protocol).items():
        if (
            isinstance(obj, type)
            and issubclass(obj, BaseModel)
            and obj.__module__ == protocol.__name__
        ):
            for field in obj.model_fields.values():
                if "list" in str(field.annotation) or typing.get_origin(field.annotation) is list:
                    bearing.add(name)
    assert bearing, "no list-bearing frames found: the search is broken"
    assert bearing <= set(COVERED), (
        f"list-bearing frames with no worst case: {bearing - set(COVERED)}"
    )
