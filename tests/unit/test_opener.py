"""A `chats` batch's boxes are opened, and their ack proofs sealed, on a worker thread: one job."""

from __future__ import annotations

from node.crypto.boxes import Boxes
from node.crypto.keys import Identity
from node.user.opener import Opener
from node.wire.protocol import DIRECT, parse

from .pools import CountingPool


async def test_a_batch_is_one_job_and_each_chat_gets_its_plaintext_and_proof():
    sally, bob, eve = Identity.generate(), Identity.generate(), Identity.generate()
    chats = [
        parse(DIRECT, Boxes(sally).seal(bob.key, f"m{i}", "Sally", "Bob", 5, f"hi {i}"))
        for i in range(32)
    ]
    forged = parse(DIRECT, Boxes(eve).seal(bob.key, "m-eve", "Sally", "Bob", 5, "hi"))
    pool = CountingPool()
    opener = Opener(Boxes(bob), pool)
    found = await opener.open_batch([(sally.key, c) for c in [*chats[:16], forged, *chats[16:]]])
    assert pool.jobs == opener.jobs == 1
    assert found is not None and len(found) == 33
    bad = found.pop(16)
    assert (bad.key, bad.inner, bad.proof) == (sally.key, None, None)  # left to the inline path
    for chat, opened in zip(chats, found, strict=True):
        assert opened.key == sally.key
        assert opened.inner is not None and (opened.inner.id, opened.inner.text) == (
            chat.id,
            f"hi {chat.id[1:]}",
        )
        assert opened.proof is not None
        assert Boxes(sally).proof_holds(bob.key, opened.proof, "Sally", chat.id, "Bob")
    pool.shutdown()


async def test_nothing_to_open_is_no_job_and_a_stopped_pool_leaves_it_inline():
    sally, bob = Identity.generate(), Identity.generate()
    chat = parse(DIRECT, Boxes(sally).seal(bob.key, "m1", "Sally", "Bob", 5, "hi"))
    pool = CountingPool()
    opener = Opener(Boxes(bob), pool)
    assert await opener.open_batch([]) is None
    assert pool.jobs == 0
    pool.shutdown()
    assert await opener.open_batch([(sally.key, chat)]) is None
    assert opener.jobs == 0
