"""Presence authority and watchers as a pure core: it takes `now` and returns what to send.

A seed is the authority on its own users' presence: one socket holds each name here (the last
that proved it), each change is stamped later than the last word it gave on the name, and goes
to the mesh as an item. Whoever watches a name hears its effective presence when it is news
(`Watchers`). The core does no I/O: it returns the frames for each watcher, the sockets to
close and the item to spread, and the server pushes, closes, gossips and stores them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from ..errors import ProtocolError
from ..wire.names import fold_name
from ..wire.protocol import Presence, PresenceItem, SessionAuth, dump
from .directory import Directory, Effective
from .watchers import Watchers

# close codes a seed uses on a user's socket (private range 4000-4999)
CLOSE_REPLACED = 4409  # the name registered again with a newer session
CLOSE_NAME_LOST = 4403  # the name went to another key (two claims at one moment)
REPLACED = "the name registered again elsewhere"
NAME_LOST = "the name now belongs to another key"


class Holder(Hashable, Protocol):
    """A user's socket as the core sees it: the name it holds here, under which key and proof."""

    folded: str | None
    key: str | None
    auth: SessionAuth | None


W = TypeVar("W", bound=Holder)


@dataclass
class Told(Generic[W]):
    """Frames to push, each to one watcher, in order."""

    frames: list[tuple[W, str]] = field(default_factory=list)


@dataclass
class Said(Generic[W]):
    """This seed's new word on one of its users: the item to spread, and whom to tell."""

    folded: str
    item: PresenceItem
    told: Told[W]
    closed: list[tuple[W, int, str]] = field(default_factory=list)  # socket, close code, reason


@dataclass
class Heard(Generic[W]):
    """What a peer's presence items changed here: the names whose items moved, this seed's words
    on its own users that a newer session elsewhere made stale, the watchers' frames, and the
    items refused (counted, never forwarded)."""

    moved: set[str] = field(default_factory=set)
    said: list[Said[W]] = field(default_factory=list)
    told: Told[W] = field(default_factory=Told)
    refused: list[tuple[str, ProtocolError]] = field(default_factory=list)


class PresenceCore(Generic[W]):
    """This seed's word on its users, and what each watcher is told of the names it watches."""

    def __init__(
        self,
        directory: Directory,
        watchers: Watchers[W],
        bound: dict[str, W],
        key: str,
        name: str,
        label: Callable[[str | None], str | None],
    ) -> None:
        self.directory = directory
        self.watchers = watchers
        self.bound = bound  # folded name -> the socket that proved it holds it
        self.key = key
        self.name = name
        self.label = label  # the name shown for a home seed known by its key

    def frame(self, folded: str, spelled: str, eff: Effective) -> str:
        """A `presence` frame for a name (spelled as registered, else as watched)."""
        name = self.directory.display_name(folded) or spelled
        return dump(
            Presence(
                type="presence",
                name=name,
                online=eff.online,
                seed=self.label(eff.seed),
                last_seen=eff.last_seen,
            )
        )

    def changed(self, names: Iterable[str], now: int) -> Told[W]:
        """The effective presence of each watched name whose state changed, to its watchers."""
        told: Told[W] = Told()
        for folded in names:
            eff = self.directory.effective(folded, now)
            watchers = self.watchers.to_tell(folded, eff)
            if watchers:
                text = self.frame(folded, folded, eff)
                told.frames += [(watcher, text) for watcher in watchers]
        return told

    def watch(self, watcher: W, spellings: Mapping[str, str], now: int) -> Told[W] | None:
        """`watcher` watches more names (folded -> as spelled): each one's presence now, or None
        when that would take it past the cap (then it watches nothing more)."""
        if not self.watchers.add(watcher, spellings):
            return None
        told: Told[W] = Told()
        for folded, spelled in spellings.items():
            eff = self.directory.effective(folded, now)
            self.watchers.first_told(folded, eff)
            told.frames.append((watcher, self.frame(folded, spelled, eff)))
        return told

    def say(self, folded: str, auth: SessionAuth | None, now: int) -> Said[W]:
        """This seed's user `folded` is online with `auth`, or offline (None): record it, stamped
        after the last word on the name, and return the item for the mesh and the watchers'
        frames."""
        current = self.directory.item(folded, self.key)
        at = max(now, current[2] + 1 if current else 0)
        online = auth is not None
        self.directory.set_local(
            folded, self.key, online, at, auth.at if auth else (current[3] if current else 0)
        )
        item = PresenceItem(
            name=self.directory.display_name(folded) or folded,
            seed=self.name,
            seed_key=self.key,
            online=online,
            at=at,
            auth=auth,
        )
        return Said(folded, item, self.changed([folded], now))

    def online(
        self, sessions: Iterable[tuple[str, SessionAuth | None]], now: int
    ) -> list[PresenceItem]:
        """The items of the users bound here (folded name, session auth) that count as online:
        what a peer's sync is told. A stale session is left out (it renews, or shows offline)."""
        items = []
        for folded, auth in sessions:
            state = self.directory.item(folded, self.key)
            if state is None or not state[1] or auth is None:
                continue
            if self.directory.session_stale(auth.at, now):
                continue
            items.append(
                PresenceItem(
                    name=self.directory.display_name(folded) or folded,
                    seed=self.name,
                    seed_key=self.key,
                    online=True,
                    at=state[2],
                    auth=auth,
                )
            )
        return items

    def bind(self, session: W, folded: str, key: str, auth: SessionAuth, now: int) -> Said[W]:
        """`session` proved it holds the name under `key`: bind it (an older socket of the name
        here is let go and closed), and say it is online."""
        closed: list[tuple[W, int, str]] = []
        previous = self.bound.get(folded)
        if previous is not None and previous is not session:
            previous.folded = None
            closed.append((previous, CLOSE_REPLACED, REPLACED))
        self.bound[folded] = session
        session.folded, session.key, session.auth = folded, key, auth
        said = self.say(folded, auth, now)
        said.closed = closed
        return said

    def unbind(self, session: W, now: int) -> Said[W] | None:
        """`session` is gone: when it held its name here, say the name is offline."""
        folded = session.folded
        if folded is None or self.bound.get(folded) is not session:
            return None
        del self.bound[folded]
        return self.say(folded, None, now)

    def newer_elsewhere(self, folded: str, auth_at: int, now: int) -> Said[W] | None:
        """A peer holds a session of the name proven at `auth_at`: one here proven before is
        stale, let go and closed."""
        session = self.bound.get(folded)
        if session is None or session.auth is None or session.auth.at >= auth_at:
            return None
        return self._let_go(folded, session, CLOSE_REPLACED, REPLACED, now)

    def lost(self, folded: str, loser: str, now: int) -> Said[W] | None:
        """The name went to another key than `loser`: a socket here holding it under the losing
        key is let go and closed."""
        session = self.bound.get(folded)
        if session is None or session.key != loser:
            return None
        return self._let_go(folded, session, CLOSE_NAME_LOST, NAME_LOST, now)

    def _let_go(self, folded: str, session: W, code: int, reason: str, now: int) -> Said[W]:
        del self.bound[folded]
        session.folded = None
        said = self.say(folded, None, now)
        said.closed = [(session, code, reason)]
        return said

    def hear(
        self, items: Iterable[PresenceItem], link_key: str, now: int, checked: Mapping[int, str]
    ) -> Heard[W]:
        """A peer's items on its own users, under the presence rules (`checked`: the key each
        item's session auth was verified with already, by id of the item)."""
        heard: Heard[W] = Heard()
        for item in items:
            try:
                self.directory.check_presence(item, link_key, now, checked.get(id(item)))
            except ProtocolError as exc:
                heard.refused.append((item.name, exc))
                continue
            if self.directory.apply_presence(item):
                folded = fold_name(item.name)
                heard.moved.add(folded)
                if item.auth is not None:
                    said = self.newer_elsewhere(folded, item.auth.at, now)
                    if said is not None:
                        heard.said.append(said)
        if heard.moved:
            heard.told = self.changed(heard.moved, now)
        return heard
