"""One exception hierarchy for the node, so callers can catch p2p-chat failures in one place."""

from __future__ import annotations


class P2PError(Exception):
    """Base of every error the node raises on purpose."""


class ConfigError(P2PError):
    """A configuration file or option is wrong; the message names the key (and line, when known)."""


class IdentityError(P2PError):
    """A key file or a name cannot be used."""


class StoreError(P2PError):
    """The on-disk store cannot be opened or written."""


class ProtocolError(P2PError):
    """A frame broke the wire contract; `code` is the protocol error code to answer with."""

    def __init__(self, code: str, message: str, frame_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.frame_id = frame_id


class RemoteError(P2PError):
    """The other side answered a request with an `error` frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class SeedUnavailable(P2PError):
    """No seed could be reached."""
