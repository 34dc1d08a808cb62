"""The proofs that open a seed's sockets, as pure functions of what was sent and `now`.

Every socket a seed accepts gets a challenge; a user's register proves with a session auth that
it holds the record's key on this very socket, and a seed's hello (or the welcome that answers a
seed's dial) proves its key on this link by signing both nonces. Each check here returns why the
proof fails, in the words the peer is told, or None; the server and the mesh own the sockets.
"""

from __future__ import annotations

import base64
import os

from ..crypto.signing import verify_seed_auth, verify_session
from ..wire.protocol import (
    ChallengeFrame,
    Record,
    SeedAuth,
    SeedHello,
    SeedWelcome,
    SessionAuth,
    dump,
)

AUTH_SKEW_MS = 60_000  # how far a proof's time may be from this seed's clock


def new_nonce() -> str:
    """A fresh 32-byte nonce: a socket's challenge, or a hello's own."""
    return base64.b64encode(os.urandom(32)).decode()


def challenge_frame(nonce: str, seed_name: str, seed_key: str) -> str:
    """The first frame on every socket a seed accepts: what a session or a seed signs."""
    return dump(ChallengeFrame(type="challenge", nonce=nonce, seed=seed_name, seed_key=seed_key))


# ---------------------------------------------------------------- a user's session


def session_claims_problem(
    auth: SessionAuth, record: Record, seed_key: str, nonce: str, last_at: int | None, now: int
) -> str | None:
    """Why a register's session auth does not claim this socket (`nonce`, its challenge) at this
    seed for the record's name, at about `now` and not before the socket's last proof
    (`last_at`, None before its first), or None. Its signature is not checked."""
    if auth.name != record.name:
        return "the session auth names another name than the record"
    if auth.seed_key != seed_key:
        return "the session auth is for another seed"
    if auth.nonce != nonce:
        return "the session auth signs another socket's challenge"
    if abs(auth.at - now) > AUTH_SKEW_MS:
        return "the session auth's time is more than a minute from this seed's clock"
    if last_at is not None and auth.at < last_at:
        return "a renewal needs a fresh session auth (not older than the last one)"
    return None


def session_auth_problem(
    auth: SessionAuth,
    record: Record,
    seed_key: str,
    nonce: str,
    last_at: int | None,
    now: int,
    signed: bool | None = None,
) -> str | None:
    """Why a register's session auth does not prove that this socket holds the record's key, or
    None: its claims first, then its signature (`signed`: the verdict of a check made already)."""
    problem = session_claims_problem(auth, record, seed_key, nonce, last_at, now)
    if problem is not None:
        return problem
    if not (verify_session(auth, record.key) if signed is None else signed):
        return "the session auth's signature does not verify for the record's key"
    return None


# ---------------------------------------------------------------- a seed link


def seed_auth_problem(
    auth: SeedAuth,
    key: str,
    hello: bool,
    dialler: str,
    dialled: str,
    challenge: str,
    hello_nonce: str,
    now: int,
) -> str | None:
    """Why a hello's (`hello`) or welcome's auth does not prove `key` on the link between
    `dialler` and `dialled` whose nonces are `challenge` and `hello_nonce`, or None."""
    if auth.dialler != dialler or auth.dialled != dialled:
        return "the seed auth names other keys"
    if auth.challenge != challenge or auth.hello_nonce != hello_nonce:
        return "the seed auth signs other nonces"
    if abs(auth.at - now) > AUTH_SKEW_MS:
        return "the seed auth's time is more than a minute from this seed's clock"
    if not verify_seed_auth(auth, key, hello):
        return "the seed auth's signature does not verify"
    return None


def hello_problem(hello: SeedHello, own_key: str, challenge: str, now: int) -> str | None:
    """Why a seed that dialled this one (`own_key`, which challenged it with `challenge`) has not
    proven its key, or None."""
    if hello.key == own_key:
        return "that is this seed's own key"
    return seed_auth_problem(
        hello.auth, hello.key, True, hello.key, own_key, challenge, hello.nonce, now
    )


def welcome_problem(
    welcome: SeedWelcome, own_key: str, challenge: ChallengeFrame, hello_nonce: str, now: int
) -> str | None:
    """Why the seed this one dialled (it sent `challenge`, was sent `hello_nonce`) has not proven
    the key it challenged with, or None."""
    if welcome.key != challenge.seed_key:
        return "the welcome's key is not the challenge's"
    return seed_auth_problem(
        welcome.auth,
        welcome.key,
        False,
        own_key,
        challenge.seed_key,
        challenge.nonce,
        hello_nonce,
        now,
    )
