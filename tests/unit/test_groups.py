"""The group core: states signed by admins, checked by members, forks settled by the lower hash."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, ConfigDict, Field

from node.crypto.boxes import Boxes
from node.crypto.keys import Identity, unb64
from node.errors import InvalidInput
from node.user.groups import (
    MAX_MEMBERS,
    MAX_STATE_BYTES,
    Chain,
    Change,
    Member,
    Verdict,
    apply,
    canonical,
    create,
    load_state,
    parse_part,
    rebase,
    still_needed,
)
from node.wire.protocol import CHAT_PLAIN, Chat

IDS = {n: Identity.generate() for n in ("Ann", "Bob", "Cat", "Dan", "Eve")}


def member(name: str) -> Member:
    return Member(name, IDS[name].key)


def signer(name: str):
    return IDS[name].sign


def group(*others: str, topic: str = "ops"):
    return create("Ann", IDS["Ann"].key, signer("Ann"), topic, [member(n) for n in others], 1000)


def test_the_creator_is_first_member_and_admin_and_the_id_is_random_and_bound_to_its_key():
    s = group("Bob", "Cat")
    assert [m.name for m in s.members] == ["Ann", "Bob", "Cat"] and s.admins == ["Ann"]
    assert s.v == 1 and s.prev == "" and len(s.gid) == 32  # 128 bits, hex
    assert group("Bob").gid != s.gid
    chain, problem = Chain.first(s)
    assert chain is not None and problem is None
    # the same body signed by another key under the creator's name: not the creator's group
    forged = dict(s.raw, sig=IDS["Eve"].sign(s.signed_bytes()))
    assert Chain.first(load_state(forged))[1] is not None


def test_admins_change_the_group_and_members_follow_each_version_in_order():
    s1 = group("Bob")
    chain, _ = Chain.first(s1)
    assert chain is not None
    s2 = apply(s1, "Ann", signer("Ann"), Change(add=(member("Cat"),), topic="dev"), 2000)
    s3 = apply(s2, "Ann", signer("Ann"), Change(promote=("Bob",)), 3000)
    s4 = apply(s3, "Bob", signer("Bob"), Change(remove=("Cat",)), 4000)  # Bob is an admin now
    assert chain.offer(s3).verdict is Verdict.AHEAD  # s2 missing: ask for it
    for s in (s2, s3, s4):
        assert chain.offer(s).verdict is Verdict.ACCEPTED
    top = chain.top
    assert top.v == 4 and top.topic == "dev" and top.admins == ["Ann", "Bob"]
    assert [m.name for m in top.members] == ["Ann", "Bob"] and top.prev == s3.hash
    with pytest.raises(InvalidInput):
        apply(s2, "Bob", signer("Bob"), Change(topic="mine"), 5000)  # not an admin of s2


def test_forged_replayed_and_out_of_order_states_are_refused():
    s1 = group("Bob", "Eve")
    chain, _ = Chain.first(s1)
    assert chain is not None
    # Eve is a member, not an admin: her state is refused even though her signature holds
    evil = apply(s1, "Ann", IDS["Eve"].sign, Change(topic="pwned"), 2000)
    offer = chain.offer(evil)
    assert offer.verdict is Verdict.REFUSED and "signature" in offer.reason
    body = {k: v for k, v in s1.raw.items() if k != "sig"}
    body.update(v=2, prev=s1.hash, by="Eve", topic="pwned", admins=["Ann", "Eve"])
    as_eve = load_state(
        {**body, "sig": IDS["Eve"].sign(b"p2pchat-group-state-v1:" + canonical(body))}
    )
    offer = chain.offer(as_eve)
    assert offer.verdict is Verdict.REFUSED and "not an admin" in offer.reason
    s2 = apply(s1, "Ann", signer("Ann"), Change(remove=("Eve",)), 2000)
    s3 = apply(s2, "Ann", signer("Ann"), Change(topic="t3"), 3000)
    assert chain.offer(s2).verdict is Verdict.ACCEPTED
    assert chain.offer(s3).verdict is Verdict.ACCEPTED
    assert chain.offer(s2).verdict is Verdict.HELD  # a replay changes nothing
    assert chain.offer(s1).verdict is Verdict.HELD
    assert chain.top is s3
    # a state that claims to follow s3 but skips a version
    body = {k: v for k, v in s3.raw.items() if k != "sig"} | {"v": 5, "prev": s3.hash}
    skip = load_state(
        {**body, "sig": IDS["Ann"].sign(b"p2pchat-group-state-v1:" + canonical(body))}
    )
    assert chain.offer(skip).verdict is Verdict.REFUSED


def test_two_admins_at_once_converge_on_the_lower_hash_whatever_the_order():
    s1 = group("Bob", "Cat")
    s2 = apply(s1, "Ann", signer("Ann"), Change(promote=("Bob",)), 2000)
    a = apply(s2, "Ann", signer("Ann"), Change(topic="from Ann"), 3000)
    b = apply(s2, "Bob", signer("Bob"), Change(add=(member("Dan"),)), 3000)
    win, lose = (a, b) if a.hash < b.hash else (b, a)
    tops = []
    for order in ((a, b), (b, a)):
        chain, _ = Chain.first(s1)
        assert chain is not None and chain.offer(s2).verdict is Verdict.ACCEPTED
        offers = [chain.offer(s) for s in order]
        tops.append(chain.top.hash)
        if order[0] is lose:  # the winner displaces what was held
            assert offers[1].verdict is Verdict.ACCEPTED and offers[1].displaced == [lose]
        else:
            assert offers[1].verdict is Verdict.LOST
    assert tops == [win.hash, win.hash]
    # the loser's admin applies its change again on top of the winner: one line, both changes
    chain, _ = Chain.first(s1)
    assert chain is not None
    chain.offer(s2)
    chain.offer(lose)
    displaced = chain.offer(win).displaced
    changes = rebase(displaced, chain.line, lose.by)
    assert len(changes) == 1
    again = apply(chain.top, lose.by, signer(lose.by), still_needed(changes[0], chain.top), 4000)
    assert chain.offer(again).verdict is Verdict.ACCEPTED
    top = chain.top
    assert top.v == 4 and top.topic == "from Ann" and top.member("Dan") is not None
    # a state built on the lost branch stays lost
    child = apply(lose, lose.by, signer(lose.by), Change(topic="late"), 5000)
    assert chain.offer(child).verdict is Verdict.LOST and chain.top is top


def test_limits_members_topic_and_size():
    many = [Member(f"m{i}", Identity.generate().key) for i in range(MAX_MEMBERS)]
    with pytest.raises(InvalidInput):
        create("Ann", IDS["Ann"].key, signer("Ann"), "t", many, 1)  # 101 with the creator
    full = create("Ann", IDS["Ann"].key, signer("Ann"), "t" * 200, many[:-1], 1)
    assert len(full.members) == MAX_MEMBERS
    assert len(full.encoded()) <= MAX_STATE_BYTES  # 100 members and a full topic fit
    with pytest.raises(InvalidInput):
        apply(full, "Ann", signer("Ann"), Change(add=(member("Bob"),)), 2)
    with pytest.raises(InvalidInput):
        group(topic="x" * 201)
    with pytest.raises(InvalidInput):
        load_state({**full.raw, "members": full.raw["members"] + full.raw["members"][:1]})


def test_the_last_admin_leaving_hands_the_group_to_the_oldest_member():
    s1 = group("Bob", "Cat")
    s2 = apply(s1, "Ann", signer("Ann"), Change(remove=("Ann",)), 2000)
    assert s2.admins == ["Bob"] and s2.member("Ann") is None


def test_a_member_added_later_takes_the_current_state_signed_by_one_of_its_admins():
    s1 = group("Bob")
    s2 = apply(s1, "Ann", signer("Ann"), Change(add=(member("Cat"),)), 2000)
    chain, problem = Chain.first(s2)
    assert chain is not None and problem is None and chain.top.v == 2
    body = {k: v for k, v in s2.raw.items() if k != "sig"}
    assert Chain.first(load_state({**body, "sig": IDS["Cat"].sign(s2.signed_bytes())}))[1]


def test_group_parts_parse_strictly():
    assert parse_part({"type": "msg", "gid": "a" * 32, "v": 1, "mid": "m1"}) is not None
    assert parse_part({"type": "msg", "gid": "a" * 32, "v": "1", "mid": "m1"}) is None
    assert parse_part({"type": "msg", "gid": "A" * 32, "v": 1, "mid": "m1"}) is None
    assert parse_part({"type": "poll", "gid": "a" * 32}) is None
    assert parse_part({"type": "ask", "gid": "a" * 32, "v": 0, "extra": 1}) is None


def test_a_group_frame_reads_as_a_plain_message_to_an_r2_node_and_later_kinds_as_text():

    class R2Plain(BaseModel):  # the revision 2 plaintext model, as an r2 node has it
        model_config = ConfigDict(strict=True, extra="ignore", populate_by_name=True)
        id: str
        from_: str = Field(alias="from")
        to: str
        ts: int
        text: str

    ann, bob = IDS["Ann"], IDS["Bob"]
    part = {"type": "msg", "gid": "a" * 32, "v": 1, "mid": "m1"}
    frame = Boxes(ann).seal(
        bob.key, "c1", "Ann", "Bob", 5, "hi all", {"kind": "group", "group": part}
    )
    chat = Chat.model_validate_json(frame)
    inner = Boxes(bob).open(ann.key, chat)
    assert inner.kind == "group" and inner.group == part and inner.text == "hi all"
    plain = Boxes(bob).box(ann.key).decrypt(unb64(chat.box), unb64(chat.nonce))
    assert R2Plain.model_validate_json(plain).text == "hi all"  # an r2 node shows the text
    later = json.dumps(
        {"id": "c2", "from": "Ann", "to": "Bob", "ts": 5, "text": "t", "kind": "poll"}
    )
    assert CHAT_PLAIN.validate_json(later).kind == "poll"  # shown as its text (inbox.py)
