"""The proofs that open a seed's sockets: each claim that does not fit is named, without a socket."""

import pytest

from node.crypto.keys import Identity
from node.crypto.signing import sign_record, sign_seed_auth, sign_session
from node.seed.handshake import (
    AUTH_SKEW_MS,
    challenge_frame,
    hello_problem,
    new_nonce,
    seed_auth_problem,
    session_auth_problem,
    session_claims_problem,
    welcome_problem,
)
from node.wire.protocol import FROM_SEED, ChallengeFrame, SeedHello, SeedWelcome, parse

NOW = 1_800_000_000_000
SALLY = Identity.generate()
SEED, OTHER_SEED = Identity.generate(), Identity.generate()
NONCE = new_nonce()
RECORD = sign_record(SALLY, "Sally", "ws://127.0.0.1:1", 1)


def test_a_challenge_is_a_fresh_nonce_in_a_frame_users_and_seeds_parse():
    assert new_nonce() != new_nonce()
    frame = parse(FROM_SEED, challenge_frame(NONCE, "seed-a", SEED.key))
    assert isinstance(frame, ChallengeFrame)
    assert (frame.nonce, frame.seed, frame.seed_key) == (NONCE, "seed-a", SEED.key)


def session(name="Sally", seed_key=SEED.key, nonce=NONCE, at=NOW, who=SALLY):
    return sign_session(who, name, seed_key, nonce, at)


def problem(auth, last_at=None, now=NOW, signed=None):
    return session_auth_problem(auth, RECORD, SEED.key, NONCE, last_at, now, signed)


def test_a_session_auth_for_this_socket_at_this_seed_proves_the_record_key():
    assert problem(session()) is None
    assert problem(session(at=NOW + 5), last_at=NOW) is None  # a renewal
    assert problem(session(at=NOW - AUTH_SKEW_MS)) is None  # at the edge of the skew


@pytest.mark.parametrize(
    ("auth", "last_at", "why"),
    [
        (session(name="Bob"), None, "names another name"),
        (session(seed_key=OTHER_SEED.key), None, "for another seed"),
        (session(nonce=new_nonce()), None, "another socket's challenge"),
        (session(at=NOW + AUTH_SKEW_MS + 1), None, "more than a minute"),
        (session(at=NOW - AUTH_SKEW_MS - 1), None, "more than a minute"),
        (session(at=NOW - 1), NOW, "needs a fresh session auth"),
        (session(who=Identity.generate()), None, "does not verify for the record's key"),
    ],
)
def test_each_claim_of_a_session_auth_that_does_not_fit_is_named(auth, last_at, why):
    assert why in (problem(auth, last_at) or "")


def test_the_claims_are_checked_before_and_apart_from_the_signature():
    forged = session(who=Identity.generate())
    assert session_claims_problem(forged, RECORD, SEED.key, NONCE, None, NOW) is None
    assert problem(forged, signed=True) is None  # a verdict reached already is taken
    assert "does not verify" in (problem(session(), signed=False) or "")
    wrong_seed = session(seed_key=OTHER_SEED.key)
    assert "another seed" in (problem(wrong_seed, signed=True) or "")


HELLO_NONCE = new_nonce()


def hello(key=OTHER_SEED, signer=None, dialled=SEED.key, challenge=NONCE, at=NOW, as_hello=True):
    auth = sign_seed_auth(signer or key, as_hello, at, key.key, dialled, challenge, HELLO_NONCE)
    return SeedHello(
        type="seed_hello",
        id="h1",
        name="seed-b",
        url="ws://127.0.0.1:2",
        key=key.key,
        seeds=[],
        since=None,
        nonce=HELLO_NONCE,
        auth=auth,
    )


def test_a_hello_signed_over_both_nonces_proves_the_dialling_seed():
    assert hello_problem(hello(), SEED.key, NONCE, NOW) is None


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (hello(key=SEED), "this seed's own key"),
        (hello(dialled=OTHER_SEED.key), "names other keys"),
        (hello(challenge=new_nonce()), "signs other nonces"),
        (hello(at=NOW - AUTH_SKEW_MS - 1), "more than a minute"),
        (hello(signer=Identity.generate()), "does not verify"),
        (hello(as_hello=False), "does not verify"),  # a welcome's proof is no hello's
    ],
)
def test_each_flaw_of_a_hello_is_named(frame, why):
    assert why in (hello_problem(frame, SEED.key, NONCE, NOW) or "")


def welcome(key=OTHER_SEED, hello_nonce=HELLO_NONCE, as_hello=False):
    auth = sign_seed_auth(key, as_hello, NOW, SEED.key, key.key, NONCE, hello_nonce)
    return SeedWelcome(
        type="seed_welcome",
        id="h1",
        name="seed-b",
        url="ws://127.0.0.1:2",
        key=key.key,
        seeds=[],
        since=None,
        auth=auth,
    )


def test_a_welcome_proves_the_key_that_sent_the_challenge():
    challenge = ChallengeFrame(
        type="challenge", nonce=NONCE, seed="seed-b", seed_key=OTHER_SEED.key
    )
    assert welcome_problem(welcome(), SEED.key, challenge, HELLO_NONCE, NOW) is None
    other = welcome(key=Identity.generate())  # a valid proof, of another key than challenged
    assert "not the challenge's" in (
        welcome_problem(other, SEED.key, challenge, HELLO_NONCE, NOW) or ""
    )
    stale = welcome(hello_nonce=new_nonce())
    assert "other nonces" in (welcome_problem(stale, SEED.key, challenge, HELLO_NONCE, NOW) or "")
    as_hello = welcome(as_hello=True)
    assert "does not verify" in (
        welcome_problem(as_hello, SEED.key, challenge, HELLO_NONCE, NOW) or ""
    )


def test_the_seed_auth_check_takes_its_time_from_the_caller():
    auth = hello().auth
    args = (auth, OTHER_SEED.key, True, OTHER_SEED.key, SEED.key, NONCE, HELLO_NONCE)
    assert seed_auth_problem(*args, NOW + AUTH_SKEW_MS) is None
    assert "more than a minute" in (seed_auth_problem(*args, NOW + AUTH_SKEW_MS + 1) or "")
