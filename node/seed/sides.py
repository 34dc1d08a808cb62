"""What the seed's parts see of each other: narrow interfaces, so none imports the server.

The server (`server.Seed`, `server.Session`) satisfies each of these; `post.py` and `fleet.py`
reach their seed, its sockets and each other only through them, as `mesh.py` reaches its seed
through `mesh.SeedSide`. This module imports none of the seed's parts that use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any, Protocol

from ..config import SeedConfig
from ..runtime import Tasks
from ..wire.limits import RateLimit
from ..wire.protocol import PeerRelay
from ..wire.sender import Sender
from .budgets import LinkAccounts
from .directory import Directory
from .mailbox import Mailbox
from .revs import Revs
from .storage.base import SeedStorage


class SessionSide(Protocol):
    """A user's socket, as relay, mail and the fleet use it."""

    out: Sender
    folded: str | None  # the name it proved it holds
    relay_budget: RateLimit | None
    # mail committed while what was held is being handed over (None once handed over)
    mail_backlog: list[str] | None

    @property
    def host(self) -> str: ...


class Gossip(Protocol):
    """The mesh, as the parts that change replicated state use it."""

    def gossip(self, kind: str, text: str, rev: int, source: str | None = None) -> None:
        """Pass a change on to the linked seeds (`source`: the link it came on)."""

    def relay(self, home_key: str, frame: PeerRelay) -> int:
        """Hand a relay to the linked home seed `home_key`; 1 when sent."""


class FleetPost(Protocol):
    """A fleet, as relay and mail use it (its state lives in the fleet's cluster)."""

    @property
    def members(self) -> AbstractSet[str]: ...

    def relay(self, home: str, sender: str, to: str, carried: Any) -> int: ...

    def forward_mail(self, to: str, text: str) -> None: ...


class Relays(Protocol):
    """The post, as the fleet's bus uses it."""

    def hand_relayed(self, sender: str, to: str, carried: Any) -> int: ...

    def hand_mail(self, to: str, text: str) -> None: ...


class SeedCore(Protocol):
    """What every part sees of the seed: who it is, its state, and its tasks."""

    config: SeedConfig
    directory: Directory
    tasks: Tasks

    @property
    def key(self) -> str: ...

    @property
    def bound(self) -> Mapping[str, SessionSide]:
        """The socket that proved it holds each name, by folded name."""

    @property
    def mesh(self) -> Gossip: ...

    def next_rev(self) -> int: ...

    def count(self, what: str) -> None: ...


class PostSeed(SeedCore, Protocol):
    """What relay and mail (`post.Post`) use of the seed."""

    mailbox: Mailbox
    links: LinkAccounts

    @property
    def storage(self) -> SeedStorage: ...

    @property
    def fleet(self) -> FleetPost | None: ...

    def trusted(self, key: str) -> bool: ...


class FleetSeed(SeedCore, Protocol):
    """What a fleet (`fleet.Fleet`) uses of its seed."""

    name: str
    revs: Revs

    @property
    def sessions(self) -> AbstractSet[SessionSide]: ...

    @property
    def post(self) -> Relays: ...

    def home_lost(self, seed_key: str) -> None: ...

    def home_back(self, seed_key: str) -> None: ...

    def presence_changed(self, names: Iterable[str]) -> None: ...
