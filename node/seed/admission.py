"""Whether a user's record is taken here, with the time passed in; no I/O.

A record a user registers or publishes passes, in this order: the new-name brake (a name new to
this seed costs its address one of a few per minute), the r3 rule that a seed with peers takes
no new name before it can check it against the mesh (no sync done yet, and still within
`first_sync_wait` or a peer's sync running), then the directory's own rules. A name taken here
before the first sync is provisional: a peer's record under another key wins it. The answer is
an outcome the server acts on (persist and spread a change, or send the refusal), never a send.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..clock import Now
from ..errors import ErrorCode, ProtocolError
from ..wire.limits import RateLimit
from ..wire.names import fold_name
from ..wire.protocol import Record
from .directory import Directory, Outcome

BEFORE_SYNC = (
    "this seed has not synced with the mesh yet and cannot check that name; "
    "try again shortly or at another seed"
)


class Stage(Enum):
    """Where a record was refused: the first two cost no signature check."""

    NEW_NAMES = "new_names_rate_limited"  # the /health counter of each
    BEFORE_SYNC = "names_before_sync"
    DIRECTORY = "directory"


@dataclass(frozen=True)
class Refused:
    stage: Stage
    code: ErrorCode
    message: str


@dataclass(frozen=True)
class Accepted:
    """The directory took the record: `changed` unless it held these very bytes; `loser` is
    the key that held the name here before (its session here is let go)."""

    outcome: Outcome
    loser: str | None

    @property
    def changed(self) -> bool:
        return self.outcome is not Outcome.SAME


class Admission:
    """The record rules for users' requests, over this seed's directory."""

    def __init__(
        self,
        directory: Directory,
        new_names_per_minute: float,
        first_sync_wait: float,
        started: float,
        synced: bool,
    ) -> None:
        self.directory = directory
        self.rate = new_names_per_minute
        self.first_sync_wait = first_sync_wait
        self.started = started  # monotonic seconds, the clock `Now.mono` reads
        self.synced_once = synced  # a sync with a peer reached its end (or there are no peers)
        self.new_names: dict[str, RateLimit] = {}  # address group -> new names it may still add

    def admit(
        self, record: Record, group: str, now: Now, syncing: bool, verified: bool = False
    ) -> Accepted | Refused:
        """Take `record` from a user at address `group`, at `now`, while a peer's sync is
        running or not (`syncing`); `verified`: its signature was checked already."""
        if not self._new_name_allowed(record, group, now.mono):
            return Refused(
                Stage.NEW_NAMES,
                ErrorCode.RATE_LIMITED,
                "too many new names from your address; try later",
            )
        if self._unchecked(record, now.mono, syncing):
            return Refused(Stage.BEFORE_SYNC, ErrorCode.OFFLINE, BEFORE_SYNC)
        try:
            outcome, loser = self.directory.accept(record, now.wall, verified=verified)
        except ProtocolError as exc:
            return Refused(Stage.DIRECTORY, exc.code, exc.message)
        if outcome is Outcome.NEW and not self.synced_once:
            folded = fold_name(record.name)
            if self.directory.entries[folded].rev == 0:
                self.directory.provisional.add(folded)
        return Accepted(outcome, loser)

    def synced(self) -> None:
        """A peer's sync reached its end: names can be checked against the mesh from now on, and
        the ones taken before are this seed's own where no peer's record contradicted them."""
        if not self.synced_once:
            self.synced_once = True
            self.directory.provisional.clear()

    def forget_idle(self, now: float) -> None:
        """Forget the addresses whose brake is full again (they cost nothing to start afresh)."""
        for group, bucket in list(self.new_names.items()):
            if bucket.allows(now, 0) and bucket.tokens >= bucket.burst:
                del self.new_names[group]

    def _new_name_allowed(self, record: Record, group: str, now: float) -> bool:
        if record.name in self.directory:
            return True
        bucket = self.new_names.get(group)
        if bucket is None:
            bucket = self.new_names[group] = RateLimit(self.rate / 60.0, max(1.0, self.rate), now)
        return bucket.allows(now)

    def _unchecked(self, record: Record, now: float, syncing: bool) -> bool:
        """True when this seed cannot check a name it does not hold (r3): it has peers
        configured, no sync with one has completed, and it has waited less than
        `first_sync_wait` or a peer's sync is running. A name taken now could be the mesh's."""
        if self.synced_once or record.name in self.directory:
            return False
        return now - self.started < self.first_sync_wait or syncing
