"""Who watches which name, and what each name's watchers were last told. No I/O.

The seed asks it whom a presence change must reach; a watcher hears about a name only when
what it would be told differs from what it was told last.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

from .directory import Effective

W = TypeVar("W", bound=Hashable)


class Watchers(Generic[W]):
    """Watchers by folded name, capped per watcher; most sockets never watch, and cost nothing here."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.by_name: dict[str, set[W]] = {}
        self.names: dict[W, set[str]] = {}
        self.told: dict[str, Effective] = {}

    def count(self, watcher: W) -> int:
        return len(self.names.get(watcher, ()))

    def add(self, watcher: W, folded_names: Iterable[str]) -> bool:
        """Watch more names (watching is cumulative); False, and nothing added, past the cap."""
        wanted = set(folded_names)
        mine = self.names.get(watcher, set())
        if len(mine) + len(wanted - mine) > self.cap:
            return False
        if wanted:
            self.names[watcher] = mine | wanted
        for folded in wanted:
            self.by_name.setdefault(folded, set()).add(watcher)
        return True

    def first_told(self, folded: str, eff: Effective) -> None:
        """A new watcher was told `eff`: the baseline for later changes, unless one is set."""
        self.told.setdefault(folded, eff)

    def drop(self, watcher: W) -> None:
        """The watcher is gone: forget it, and the names nobody watches any more."""
        for folded in self.names.pop(watcher, ()):
            watchers = self.by_name.get(folded)
            if watchers is None:
                continue
            watchers.discard(watcher)
            if not watchers:
                del self.by_name[folded]
                self.told.pop(folded, None)

    def to_tell(self, folded: str, eff: Effective) -> set[W]:
        """The watchers to push `eff` to: all of them when it is news, none otherwise."""
        watchers = self.by_name.get(folded)
        if not watchers or not eff.changed_from(self.told.get(folded)):
            return set()
        self.told[folded] = eff
        return watchers
