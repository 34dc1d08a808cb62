"""Seed broadcast (r3): an epidemic broadcast tree (Plumtree) over the seed links. No I/O.

Flooding sends every change over every link, so on a complete mesh of S seeds each seed gets it
S-1 times. Plumtree (Leitão, Pereira, Rodrigues, 2007) pushes each change whole only along the
links of a spanning tree (eager) and its id alone on a few others (lazy): a duplicate prunes the
link it came on, and an id whose item does not follow within `GRAFT_AFTER` is asked for (a graft),
which makes that link eager again. A link to a seed that does not offer the tree (revision 2, or
the tree turned off) stays eager and never gets ids, prunes or grafts: it is flooded as before.

Ids go to at most `LAZY_FANOUT` lazy links: the first seed after this one in key order (a ring
over the seeds it links to), when that link is lazy. So on a complete mesh each seed hears of
each change from its ring predecessor (whole or as an id) besides its tree parent, one failure is
always covered (the ring re-forms over the live links), and ids cost one id a seed per change,
not S-2. Pure: the caller passes the time (monotonic seconds) and sends what is returned.
"""

from __future__ import annotations

import base64
import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from ..wire.protocol import MAX_BROADCAST_IDS

PROTOCOL = "plumtree-1"  # the capability named in seed_hello and seed_welcome
ID_BYTES = 6  # of SHA-256: 8 base64 characters; a collision only skips a graft (sync brings it)
MAX_IDS = MAX_BROADCAST_IDS  # ids in one ihave or graft frame (each at most 16 characters)
LAZY_FANOUT = 1  # ring successors an item goes to, whole or as an id (see the module's doc)
IHAVE_DELAY = 0.2  # seconds ids wait to go out together
GRAFT_AFTER = 0.75  # seconds an announced id may take to arrive whole before it is asked for
GRAFT_RETRY = 1.0  # seconds before the next announcer is asked
MAX_ANNOUNCERS = 4  # links remembered per missing id
MAX_MISSING = 10_000  # announced ids waited for at once; more are ignored (sync brings them)
MAX_SEEN = 16_384  # ids of items this seed has, newest kept (a duplicate is one of them)
MAX_HELD = 4_096  # items kept to answer grafts...
MAX_HELD_BYTES = 8 * 1024 * 1024  # ...within these bytes
MAX_ANSWERED = 4_096  # ids answered per link: a graft for one of them again gets nothing
TREE_KINDS = ("records", "mail", "taken")  # presence goes one hop, from its home only

Item = tuple[str, str, int]  # (list name, JSON text, change number)


def item_id(kind: str, text: str) -> str:
    """An item's id: its kind and its JSON text hashed, 8 base64 characters."""
    digest = hashlib.sha256(f"{kind}\n{text}".encode()).digest()[:ID_BYTES]
    return base64.b64encode(digest).decode()


@dataclass
class Peer:
    tree: bool  # it offered the tree: ids, prunes and grafts; else flooded
    eager: bool = True
    # the last change number up to which every change went whole to it (or came from it): set
    # when the first is withheld, so its sync point never passes a change it may lack
    cap: int | None = None
    answered: OrderedDict[str, None] = field(default_factory=OrderedDict)


@dataclass
class Missing:
    due: float
    announcers: list[str]


@dataclass
class Out:
    """What to send: items whole per link, ids per link, grafts per link, prunes."""

    eager: dict[str, list[Item]] = field(default_factory=dict)
    ihave: dict[str, list[str]] = field(default_factory=dict)
    graft: dict[str, list[str]] = field(default_factory=dict)
    prune: list[str] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.eager or self.ihave or self.graft or self.prune)


class Broadcast:
    """The tree state of one seed: its peers' link modes, ids seen, items held for grafts, ids
    missing, and ids waiting to go out."""

    def __init__(self, own_key: str) -> None:
        self.own_key = own_key
        self.peers: dict[str, Peer] = {}
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.held: OrderedDict[str, Item] = OrderedDict()
        self.held_bytes = 0
        self.missing: dict[str, Missing] = {}
        self.lazy: dict[str, list[str]] = {}  # ids waiting for IHAVE_DELAY, per link
        self.lazy_due: float | None = None

    # ------------------------------------------------------------------ links

    def link_up(self, key: str, tree: bool) -> None:
        """A link came up (or was replaced): eager, as every link starts."""
        self.peers[key] = Peer(tree)

    def link_down(self, key: str) -> Out:
        """A link died: forget it; a seed left without an eager tree link grafts its lazy ones,
        so the next change reaches it whole (the duplicates that follow prune the extra links)."""
        self.peers.pop(key, None)
        self.lazy.pop(key, None)
        for missing in self.missing.values():
            if key in missing.announcers:
                missing.announcers.remove(key)
        out = Out()
        tree = [k for k, p in self.peers.items() if p.tree]
        if tree and not any(self.peers[k].eager for k in tree):
            for k in tree:
                self.peers[k].eager = True
                out.graft[k] = []
        return out

    def cap(self, key: str) -> int | None:
        """The highest change number a gossip frame on this link may name as its `rev` (None: any):
        up to it, every change of this seed went to the peer whole or came from it."""
        peer = self.peers.get(key)
        return peer.cap if peer is not None else None

    def mode(self, key: str) -> str:
        """ "eager" or "lazy" for a tree link, "flood" for another, "" when not linked."""
        peer = self.peers.get(key)
        if peer is None:
            return ""
        if not peer.tree:
            return "flood"
        return "eager" if peer.eager else "lazy"

    # ------------------------------------------------------------------ items

    def has(self, ident: str) -> bool:
        return ident in self.seen

    def _see(self, ident: str) -> None:
        self.seen[ident] = None
        self.seen.move_to_end(ident)
        while len(self.seen) > MAX_SEEN:
            self.seen.popitem(last=False)
        self.missing.pop(ident, None)

    def _hold(self, ident: str, item: Item) -> None:
        if ident in self.held:
            return
        self.held[ident] = item
        self.held_bytes += len(item[1])
        while len(self.held) > MAX_HELD or self.held_bytes > MAX_HELD_BYTES:
            _, old = self.held.popitem(last=False)
            self.held_bytes -= len(old[1])

    def see(self, ident: str) -> None:
        """This seed has the item with this id (it accepted it): a copy that comes later is a
        duplicate, and its id is not waited for."""
        self._see(ident)

    def spread(
        self,
        items: list[tuple[str, str, int, str | None]],
        now: float,
        idents: list[str] | None = None,
    ) -> Out:
        """Changes this seed accepted ((list name, JSON text, change number, source link key or
        None for its own)): each goes whole to the eager links and the flooded ones but its
        source, its id to the first lazy links of the ring; presence goes whole to every link.
        `idents`: each item's `item_id`, when the caller worked them out already."""
        out = Out()
        for n, (kind, text, rev, source) in enumerate(items):
            ident = item_id(kind, text) if idents is None else idents[n]
            self._see(ident)
            if kind in TREE_KINDS:
                self._hold(ident, (kind, text, rev))
            lazy = self._ring_lazy(source) if kind in TREE_KINDS else []
            for key, peer in self.peers.items():
                if key == source:
                    continue
                if not peer.tree or peer.eager or kind not in TREE_KINDS:
                    out.eager.setdefault(key, []).append((kind, text, rev))
                elif peer.cap is None:
                    peer.cap = rev - 1
            for key in lazy:
                self.lazy.setdefault(key, []).append(ident)
        if self.lazy and self.lazy_due is None:
            self.lazy_due = now + IHAVE_DELAY
        return out

    def _ring(self, leave_out: list[str | None]) -> list[str]:
        """The tree links in key order starting after this seed's own key (a ring)."""
        ring = sorted(k for k, p in self.peers.items() if p.tree and k not in leave_out)
        return [k for k in ring if k > self.own_key] + [k for k in ring if k < self.own_key]

    def _ring_lazy(self, source: str | None) -> list[str]:
        """The lazy links among the first LAZY_FANOUT tree links after this seed in key order,
        the source left out."""
        return [k for k in self._ring([source])[:LAZY_FANOUT] if not self.peers[k].eager]

    def received(self, key: str, duplicates: int) -> Out:
        """Items came whole on a link, `duplicates` of them held already: a tree link that brings
        a duplicate is pruned (it becomes lazy both ways), unless it is this seed's last eager
        tree link (then the copy came first another way: a graft's answer, or a flooded link)."""
        out = Out()
        peer = self.peers.get(key)
        if (
            duplicates
            and peer is not None
            and peer.tree
            and peer.eager
            and self._eager_besides(key)
        ):
            peer.eager = False
            out.prune.append(key)
        return out

    def _eager_besides(self, key: str) -> bool:
        return any(p.tree and p.eager for k, p in self.peers.items() if k != key)

    def pruned(self, key: str) -> Out:
        """The peer pruned its link: send it ids, not items. A seed left without an eager tree
        link grafts the next one in its ring, so it stays in the tree."""
        out = Out()
        peer = self.peers.get(key)
        if peer is None or not peer.tree:
            return out
        peer.eager = False
        if not self._eager_besides(key):
            ring = self._ring([key])
            if ring:
                self.peers[ring[0]].eager = True
                out.graft[ring[0]] = []
        return out

    def announced(self, key: str, ids: list[str], now: float) -> None:
        """Ids a peer has: those not seen here are waited for, then asked of it."""
        if key not in self.peers:
            return
        for ident in ids:
            if ident in self.seen:
                continue
            missing = self.missing.get(ident)
            if missing is None:
                if len(self.missing) >= MAX_MISSING:
                    continue
                self.missing[ident] = Missing(now + GRAFT_AFTER, [key])
            elif key not in missing.announcers and len(missing.announcers) < MAX_ANNOUNCERS:
                missing.announcers.append(key)

    def grafted(self, key: str, ids: list[str]) -> list[Item]:
        """A peer asks for ids (and makes its link eager): the items held here, each at most once
        per link; ids not held, or answered before, get nothing."""
        peer = self.peers.get(key)
        if peer is None or not peer.tree:
            return []
        peer.eager = True
        items = []
        for ident in ids:
            item = self.held.get(ident)
            if item is None or ident in peer.answered:
                continue
            peer.answered[ident] = None
            while len(peer.answered) > MAX_ANSWERED:
                peer.answered.popitem(last=False)
            items.append(item)
        return items

    # ------------------------------------------------------------------ timers

    def due(self) -> float | None:
        """When `tick` next has something to do."""
        times = [m.due for m in self.missing.values()]
        if self.lazy_due is not None:
            times.append(self.lazy_due)
        return min(times) if times else None

    def tick(self, now: float, arriving: Callable[[str], bool] | None = None) -> Out:
        """Ids that waited long enough go out; missing ids past their time are grafted from
        their first announcer still linked, whose link becomes eager. An id `arriving` says is
        on its way (received whole, its signatures being checked) waits GRAFT_RETRY more."""
        out = Out()
        if self.lazy_due is not None and now >= self.lazy_due:
            for key, ids in self.lazy.items():
                if key in self.peers:
                    out.ihave[key] = list(dict.fromkeys(ids))
            self.lazy, self.lazy_due = {}, None
        for ident, missing in list(self.missing.items()):
            if now < missing.due:
                continue
            if arriving is not None and arriving(ident):
                missing.due = now + GRAFT_RETRY
                continue
            while missing.announcers and missing.announcers[0] not in self.peers:
                missing.announcers.pop(0)
            if not missing.announcers:
                del self.missing[ident]
                continue
            key = missing.announcers.pop(0)
            self.peers[key].eager = True
            out.graft.setdefault(key, []).append(ident)
            missing.due = now + GRAFT_RETRY
            if not missing.announcers:
                del self.missing[ident]
        return out
