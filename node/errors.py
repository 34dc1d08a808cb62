"""One exception hierarchy for the node, and the protocol's error codes as values.

Callers catch `P2PError` (or one branch of it) in one place; a protocol code travels as an
`ErrorCode` from the frame that carried it to whoever decides on it, never as text to parse.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """The `code` of an `error` frame (PROTOCOL.md, Transport and framing)."""

    BAD_REQUEST = "bad_request"
    INVALID_NAME = "invalid_name"
    BAD_SIGNATURE = "bad_signature"
    NAME_TAKEN = "name_taken"
    STALE = "stale"
    NOT_FOUND = "not_found"
    NOT_REGISTERED = "not_registered"
    RATE_LIMITED = "rate_limited"
    BAD_BOX = "bad_box"
    INTERNAL = "internal"
    OFFLINE = "offline"
    QUOTA = "quota"


class P2PError(Exception):
    """Base of every error the node raises on purpose."""


class ConfigError(P2PError):
    """A configuration file or option is wrong; the message names the key (and line, when known)."""


class InvalidInput(P2PError):
    """Local input cannot be used: a bad name, an empty or too long message, a bad URL."""


class IdentityError(P2PError):
    """A key file cannot be used."""


class StoreError(P2PError):
    """The on-disk store cannot be opened or written."""


class InternalError(P2PError):
    """A bug: the node's own code failed where it should not (logged with its traceback; a peer
    waiting on it is answered `internal`, never told its input was bad)."""


class ProtocolError(P2PError):
    """A frame broke the wire contract; `code` is what to answer it with."""

    def __init__(self, code: ErrorCode, message: str, frame_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.frame_id = frame_id


class RemoteError(P2PError):
    """The other side answered a request with an `error` frame."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)  # people read the sentence; programs decide on `code`
        self.code = code
        self.message = message


class ConnectionLost(P2PError):
    """The socket a request or message was waiting on closed before the answer came."""


class SeedUnavailable(P2PError):
    """No seed could be reached (in time)."""


class WrongReply(ProtocolError, ConnectionLost):
    """A seed answered a request with a frame of another type: a protocol error by that seed.

    The link to it is dropped (the node fails over), so the caller sees it as a lost seed
    connection and retries as it would for any other.
    """
