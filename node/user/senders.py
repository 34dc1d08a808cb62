"""Per-sender limits for people who wrote first: a stranger cannot flood a user's history.

Someone the user has not answered nor added gets a small rate and a bounded number of stored
messages (in count and bytes); contacts the user chose are not limited here (their connection's
frame rate still is). Pure: the caller passes the time and what is stored already.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ErrorCode, ProtocolError
from ..wire.limits import RateLimit
from ..wire.names import fold_name

MAX_TRACKED = (
    10_000  # senders followed at once; beyond, the buckets start again (counts are re-read)
)


@dataclass(frozen=True, slots=True)
class Allowance:
    """What a stranger may send: `rate` messages a second (bursts of `burst`), and at most
    `messages` / `text_bytes` stored until the user answers or adds them."""

    rate: float = 1.0
    burst: float = 10.0
    messages: int = 100
    text_bytes: int = 256 * 1024


class _Tally:
    __slots__ = ("bucket", "messages", "text_bytes")

    def __init__(self, bucket: RateLimit, messages: int, text_bytes: int) -> None:
        self.bucket = bucket
        self.messages = messages
        self.text_bytes = text_bytes


class StrangerGate:
    """Admit or refuse a message from a stranger, before it is stored.

    `stored` says what is stored from a sender already ((messages, text bytes)); it is asked once
    per sender followed, then the gate counts what it admits itself.
    """

    def __init__(
        self, me: str, allowance: Allowance, stored: Callable[[str], tuple[int, int]]
    ) -> None:
        self.me = me
        self.allowance = allowance
        self.stored = stored
        self.tallies: dict[str, _Tally] = {}

    def _tally(self, sender: str, now: float) -> _Tally:
        folded = fold_name(sender)
        tally = self.tallies.get(folded)
        if tally is None:
            if len(self.tallies) >= MAX_TRACKED:
                self.tallies.clear()
            a = self.allowance
            tally = self.tallies[folded] = _Tally(
                RateLimit(a.rate, a.burst, now), *self.stored(sender)
            )
        return tally

    def refusal(
        self, sender: str, text_bytes: int, now: float, msg_id: str
    ) -> ProtocolError | None:
        """Why a message of `text_bytes` from the stranger `sender` is not taken now, or None
        (then it is counted as stored)."""
        a = self.allowance
        tally = self._tally(sender, now)
        if tally.messages + 1 > a.messages or tally.text_bytes + text_bytes > a.text_bytes:
            return ProtocolError(
                ErrorCode.QUOTA,
                f"{self.me} holds {tally.messages} messages from you and takes no more until "
                "they answer or add you",
                msg_id,
            )
        if not tally.bucket.allows(now):
            return ProtocolError(
                ErrorCode.RATE_LIMITED,
                f"{self.me} takes {a.rate:g} message a second from someone not in their "
                "contacts; retry later",
                msg_id,
            )
        tally.messages += 1
        tally.text_bytes += text_bytes
        return None

    def forget(self, sender: str) -> None:
        """The sender is a chosen contact now, or a count went wrong: read it again next time."""
        self.tallies.pop(fold_name(sender), None)
