"""The pure cores of per-link budgets and mail quotas: who is a stranger, what a link may bring,
what a sender name of a given age may hold, and the per-source shares of a seed's mail."""

from __future__ import annotations

from node.seed.budgets import DAY_MS, Budget, FirstSeen, LinkAccounts
from node.seed.mailbox import HOUR_MS, MailLimits, Quotas

KIB = 1024
MIB = 1024 * 1024


def test_a_configured_peers_first_key_is_trusted_at_once_another_key_only_after_a_day():
    seen = FirstSeen([], grace_ms=DAY_MS)
    configured = {"K1", "K2"}
    assert seen.note("K1", "ws://p", now=1_000)
    assert not seen.note("K1", "ws://p", now=2_000)  # noted once: the first time stays
    assert seen.trusted("K1", configured, now=1_000)
    # another key found at the same configured URL later: a stranger for a day
    seen.note("K2", "ws://p", now=5_000)
    assert not seen.trusted("K2", configured, now=5_000 + DAY_MS - 1)
    assert seen.trusted("K2", configured, now=5_000 + DAY_MS)
    # a key not found at a configured URL is a stranger however long it has been seen
    seen.note("K3", "ws://q", now=0)
    assert not seen.trusted("K3", configured, now=10 * DAY_MS)
    # first-seen is what the disk gives back after a restart
    again = FirstSeen(list((k, u, at) for k, (u, at) in seen.rows.items()), grace_ms=DAY_MS)
    assert not again.trusted("K2", configured, now=5_000 + DAY_MS - 1)


def _accounts() -> LinkAccounts:
    peer = Budget((100, 1000), (100, 1000), (MIB, 64 * MIB), (10, 100), (16 * MIB, 64 * MIB))
    stranger = Budget((1, 10), (1, 10), (16 * KIB, MIB), (1, 5), (64 * KIB, MIB))
    return LinkAccounts(peer, stranger, sender_relay=(64 * KIB, MIB))


def test_a_strangers_link_spends_its_small_budget_and_the_drops_are_counted_per_link():
    links = _accounts()
    assert sum(links.allows("S", "names", False, now=0.0) for _ in range(50)) == 10
    assert sum(links.allows("P", "names", True, now=0.0) for _ in range(50)) == 50
    assert links.dropped["S"]["names"] == 40 and "P" not in links.dropped
    assert links.allows("S", "names", False, now=1.0)  # 1 a second again


def test_a_peers_relays_are_held_per_sender_and_a_strangers_per_link():
    links = _accounts()
    size = 64 * KIB
    # 20 senders on a peer link, each within its own budget: all of it passes
    for sender in range(20):
        assert all(links.relay_allows("P", f"s{sender}", True, 0.0, size) for _ in range(16))
    # one sender beyond its own budget is held, whoever else relays
    assert not links.relay_allows("P", "s0", True, 0.0, size)
    # on a stranger's link all senders together get one budget
    passed = sum(links.relay_allows("S", f"s{i}", False, 0.0, size) for i in range(40))
    assert passed == 16 and links.dropped["S"]["relay"] == 24


def test_a_young_sender_name_holds_little_growing_to_the_full_quota_in_a_day():
    lim = MailLimits()
    assert lim.sender_quota(0) == (128, 64 * KIB)
    assert lim.sender_quota(HOUR_MS) == (128, 64 * KIB)
    items, size = lim.sender_quota(12 * HOUR_MS)
    assert 128 < items < 1000 and 64 * KIB < size < 8 * MIB
    assert lim.sender_quota(DAY_MS) == (1000, 8 * MIB)
    assert lim.sender_quota(30 * DAY_MS) == (1000, 8 * MIB)


def test_one_source_holds_at_most_its_share_and_kept_takes_count_for_the_recipient():
    quotas = Quotas(MailLimits(per_recipient_bytes=100 * KIB))
    cap = 40 * KIB
    for i in range(4):
        assert quotas.refusal(f"r{i}", f"s{i}", 10 * KIB, None, "addr A", cap) is None
        quotas.add(f"r{i}", f"s{i}", 10 * KIB, source="addr A")
    refusal = quotas.refusal("r9", "s9", 10 * KIB, None, "addr A", cap)
    assert refusal is not None and "share" in refusal
    assert quotas.refusal("r9", "s9", 10 * KIB, None, "addr B", cap) is None
    quotas.remove("r0", "s0", 10 * KIB, "addr A")
    assert quotas.refusal("r9", "s9", 10 * KIB, None, "addr A", cap) is None
    # takes kept for a recipient fill its bytes as mail does
    quotas.add_take("r1", 85 * KIB)
    assert "full" in (quotas.refusal("r1", "s5", 10 * KIB) or "")
    quotas.remove_take("r1", 85 * KIB)
    assert quotas.refusal("r1", "s5", 10 * KIB) is None


async def test_a_take_is_kept_only_for_what_it_deletes_and_counts_for_its_recipient(tmp_path):
    from node.clock import now_ms
    from node.crypto.keys import Identity
    from node.crypto.signing import sign_mail, sign_take
    from node.seed.mailbox import Mailbox
    from node.seed.store import SeedStore
    from node.wire.protocol import CARRIED, dump

    store = SeedStore(tmp_path / "seed.sqlite3")
    store.start()
    box = Mailbox(store, MailLimits(per_recipient_bytes=64 * KIB))
    alice, bob = Identity.generate(), Identity.generate()
    chat = CARRIED.validate_python(
        {"type": "chat", "id": "m0", "from": "alice", "to": "bob", "nonce": "A" * 32, "box": "AAAA"}
    )
    item = sign_mail(alice, "bob", "alice", chat, now_ms())
    await box.add(item, dump(item), rev=1, source="addr A")
    unknown = [["alice", "chat", f"x{i}"] for i in range(100)]
    nothing = sign_take(bob, "bob", unknown, now_ms())
    assert box.take(nothing, rev=2) is None
    taken = sign_take(bob, "bob", [["alice", "chat", "m0"], *unknown], now_ms())
    held = box.held_of(taken)
    assert list(held) == [("alice", "chat", "m0")]
    assert box.take_refusal(taken, dump(taken), held) is None
    fut = box.take(taken, rev=3, held=held)
    assert fut is not None
    await fut
    assert store.read("SELECT COUNT(*) FROM taken_ids")[0][0] == 1
    assert box.quotas.takes["bob"] == len(dump(taken))
    assert box.quotas.bytes[("src", "addr A")] == 0
    # takes kept for bob fill its bytes: one that frees little and weighs much is refused
    box.quotas.add_take("bob", 63 * KIB)
    second = sign_mail(alice, "bob", "alice", chat.model_copy(update={"id": "m1"}), now_ms())
    await box.add(second, dump(second), rev=4)
    big = sign_take(bob, "bob", [["alice", "chat", "m1"], *unknown], now_ms())
    assert "quota" in (box.take_refusal(big, dump(big), box.held_of(big)) or "")
    await store.close()
