"""The per-sender gate for strangers, with the time passed in."""

from __future__ import annotations

from node.errors import ErrorCode
from node.user.senders import Allowance, StrangerGate


def gate(stored: tuple[int, int] = (0, 0), **kw) -> StrangerGate:
    return StrangerGate("victim", Allowance(**kw), lambda name: stored)


def test_a_burst_then_one_a_second():
    g = gate(rate=1.0, burst=10.0)
    assert all(g.refusal("mallory", 10, 0.0, "m") is None for _ in range(10))
    refused = g.refusal("mallory", 10, 0.0, "m")
    assert refused is not None and refused.code == ErrorCode.RATE_LIMITED
    assert g.refusal("mallory", 10, 1.0, "m") is None
    # another stranger has its own allowance
    assert g.refusal("eve", 10, 1.0, "m") is None


def test_stored_messages_and_bytes_are_bounded_counting_what_the_disk_holds():
    g = gate(stored=(98, 1000), rate=1000.0, burst=1000.0, messages=100, text_bytes=20_000)
    assert g.refusal("mallory", 10, 0.0, "a") is None
    assert g.refusal("mallory", 10, 0.0, "b") is None
    refused = g.refusal("mallory", 10, 0.0, "c")
    assert refused is not None and refused.code == ErrorCode.QUOTA
    assert "holds 100 messages from you" in refused.message and refused.frame_id == "c"
    big = gate(rate=1000.0, burst=1000.0, text_bytes=20_000)
    assert big.refusal("mallory", 15_000, 0.0, "a") is None
    assert big.refusal("mallory", 15_000, 0.0, "b").code == ErrorCode.QUOTA


def test_forget_reads_the_count_again():
    held = [0, 0]
    g = StrangerGate(
        "victim", Allowance(rate=1000.0, burst=1000.0, messages=2), lambda n: tuple(held)
    )
    assert g.refusal("mallory", 1, 0.0, "a") is None
    assert g.refusal("mallory", 1, 0.0, "b") is None
    assert g.refusal("mallory", 1, 0.0, "c") is not None
    held[:] = [0, 0]  # say, the user deleted that history
    g.forget("Mallory")
    assert g.refusal("mallory", 1, 0.0, "d") is None
