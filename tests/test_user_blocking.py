"""What a user node adds for the terminal client, on real seeds: blocks refuse before storing; verify pins."""

from __future__ import annotations

from node.errors import InvalidInput
from node.user.events import ContactAdded, MessageReceived, MessageState

from .helpers import next_event, registered


async def test_a_blocked_sender_is_refused_never_stored_and_never_a_contact(seeds, users):
    a = await seeds("a")
    sally, sally_ev = await users("sally", [a.url])
    mallory, mallory_ev = await users("mallory", [a.url])
    await next_event(sally_ev, registered)
    await next_event(mallory_ev, registered)
    assert sally.block("Mallory") and not sally.block("mallory")
    sent = await mallory.send("sally", "buy my stuff")
    failed = await next_event(
        mallory_ev, lambda e: isinstance(e, MessageState) and e.id == sent and e.state == "failed"
    )
    assert "does not accept messages from you" in failed.reason
    assert sally.history("mallory") == [] and sally.contact("mallory") is None
    assert sally.unread() == {}
    # unblocked, the next message arrives and its sender becomes a new contact
    assert sally.unblock("mallory") and sally.blocked() == []
    await mallory.send("sally", "sorry")
    got = await next_event(sally_ev, lambda e: isinstance(e, MessageReceived))
    assert got.text == "sorry" and sally.unread() == {"mallory": 1}
    sally.mark_read("mallory", got.n)
    assert sally.unread() == {}
    # a contact blocked stays a contact (the user's list is theirs), its messages refused alike
    assert sally.block("mallory") and sally.contact("mallory") is not None


async def test_verify_pins_and_marks_a_contact_and_names_both_fingerprints(seeds, users):
    a = await seeds("a")
    sally, sally_ev = await users("sally", [a.url])
    bob, bob_ev = await users("bob", [a.url])
    await next_event(bob_ev, registered)
    try:
        await sally.verify("bob")
    except InvalidInput as exc:
        assert "not a contact" in str(exc)
    else:
        raise AssertionError("verified a name that is not a contact")
    sally.add_contact("bob")
    await next_event(sally_ev, lambda e: isinstance(e, ContactAdded))
    # shown to compare, marked only when confirmed with the fingerprint that was shown
    assert await sally.verify("bob") == bob.my_fingerprint()
    assert not sally.contact("bob").verified and sally.contact("bob").key == bob.identity.key
    await sally.verify("bob", confirmed=sally.my_fingerprint())
    assert not sally.contact("bob").verified
    assert await sally.verify("bob", confirmed=bob.my_fingerprint()) == bob.my_fingerprint()
    assert sally.contact("bob").verified
    assert sally.unverify("bob") and not sally.contact("bob").verified
