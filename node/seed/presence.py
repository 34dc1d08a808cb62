"""Presence authority and watchers as a pure core: it takes `now` and returns what to send.

A seed is the authority on its own users' presence: each change is stamped later than the last
word it gave on the name, and goes to the mesh as an item. Whoever watches a name hears its
effective presence when it is news (`Watchers`). The core keeps no socket: it returns the frames
for each watcher and the item to spread, and the server pushes, gossips and stores them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ..wire.protocol import Presence, PresenceItem, SessionAuth, dump
from .directory import Directory, Effective
from .watchers import Watchers

W = TypeVar("W", bound=Hashable)


@dataclass
class Told(Generic[W]):
    """Frames to push, each to one watcher, in order."""

    frames: list[tuple[W, str]] = field(default_factory=list)


@dataclass
class Said(Generic[W]):
    """This seed's new word on one of its users: the item to spread, and whom to tell."""

    item: PresenceItem
    told: Told[W]


class PresenceCore(Generic[W]):
    """This seed's word on its users, and what each watcher is told of the names it watches."""

    def __init__(
        self,
        directory: Directory,
        watchers: Watchers[W],
        key: str,
        name: str,
        label: Callable[[str | None], str | None],
    ) -> None:
        self.directory = directory
        self.watchers = watchers
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
        return Said(item, self.changed([folded], now))

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
