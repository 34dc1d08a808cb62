"""Replication between linked seeds: the streamed sync, gossip received, checked and applied, and
changes spread along the broadcast tree.

What a peer sends is counted and kept within the link's budgets, its signatures are checked on
worker threads while earlier frames are applied, and each frame is applied in the order it came,
under the rules of a user's own requests (`ReplicaSeed.merge`). A change made here or applied
from a peer is spread through the broadcast core (`broadcast`): whole on eager tree links, as an
id on lazy ones, flooded on links to seeds that did not offer the tree. The mesh owns the sockets
and hands each link's frames here; this module sees a link only as `LinkSide`, never a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from ..clock import Now
from ..config import SeedConfig
from ..crypto.signing import verify_record, verify_session
from ..errors import ErrorCode, ProtocolError
from ..runtime import quiet_logger
from ..wire.names import fold_name
from ..wire.protocol import (
    MAX_FRAME,
    Gossip,
    Graft,
    Ihave,
    MailItem,
    PresenceItem,
    Prune,
    Record,
    SessionAuth,
    Sync,
    Taken,
    dump,
    error_frame,
)
from ..wire.sender import Sender
from . import broadcast, chunks

log = quiet_logger("p2p.replication")

SYNC_PAGE = 64  # mail items or takes read from the store at a time while a sync streams
PIPELINE = 8  # frames of one link parsed and being checked ahead of the one being applied
MAX_TALLIED = 1_024  # seeds whose counters /health keeps (a stranger can mint keys)
PRESENCE_WAIT = 5.0  # seconds a presence item may wait for its name's record (on its way by tree)
MAX_WAITING = 200  # presence items of one tree link waiting at once


@dataclass
class Merged:
    """What a batch from a peer changed here, and what was refused (counted, never forwarded)."""

    records: int = 0
    presence: int = 0
    mail: int = 0
    taken: int = 0
    refused: list[tuple[str, ProtocolError]] = field(default_factory=list)


class ReplicaSeed(Protocol):
    """What replication needs of its seed: the state it replicates, and the link budgets."""

    config: SeedConfig

    @property
    def key(self) -> str: ...

    def merge(
        self,
        link_key: str,
        now: int,
        records: list[Record],
        presence: list[PresenceItem],
        mail: list[MailItem],
        taken: list[Taken],
        verified: bool = False,
        auths_checked: dict[int, str] | None = None,
    ) -> Merged:
        """Apply what a peer sent under the rules of a user's own requests; what changed."""

    def merge_online_set(self, seed_key: str, online: dict[str, tuple[int, int]], now: int) -> None:
        """A peer's sync named its whole online set."""

    def local_online(self) -> list[PresenceItem]:
        """This seed's own online users, each with its session auth."""

    def record(self, name: str) -> Record | None: ...

    def holds(self, record: Record) -> bool:
        """True when this very record is held already (dropped before its signature is checked)."""

    def key_of(self, name: str) -> str | None:
        """The key of the record held for `name`."""

    def check_online(
        self, item: PresenceItem, link_key: str, now: int, verified_with: str | None = None
    ) -> ProtocolError | None:
        """Why a peer's online item may not count, or None."""

    def current_rev(self) -> tuple[str, int]: ...

    def records_since(self, rev: int) -> Iterator[tuple[int, str]]:
        """(rev, JSON) of the records changed after `rev`, oldest change first, encoded as read."""

    async def mail_page(self, kind: str, rev: int, limit: int) -> list[tuple[int, str]]:
        """(rev, JSON) of at most `limit` mail items ("mail") or takes ("taken") changed after
        `rev`, oldest first: a sync reads the store a page at a time."""

    def save_sync_point(self, key: str, epoch: str, since: int) -> None: ...

    def link_allows(self, link_key: str, kind: str, now: Now, cost: float = 1.0) -> bool:
        """Spend `cost` of the link's budget for `kind` (names, presence, ...) at `now`;
        False: dropped."""


@dataclass
class Checked:
    """Signatures in a frame, checked on a worker thread: which records and session auths hold."""

    records: list[Record]  # the records not held here already, each with its verdict
    records_ok: list[bool]
    auths_ok: dict[int, str]  # id(presence item) -> the record key its session auth verified with


@dataclass
class Incoming:
    """A parsed frame waiting its turn, its signatures checked meanwhile."""

    frame: object
    checked: asyncio.Future[Checked] | None = None
    names: list[str] = field(default_factory=list)  # folded names of the records it brings
    ids: dict[int, str] = field(default_factory=dict)  # id(item) -> broadcast id, for a gossip
    duplicates: int = 0  # items of a gossip dropped on arrival: held here already


class Feed:
    """Replication's state with one linked seed: its frames in flight, what waits, how far it is."""

    def __init__(self, now: float) -> None:
        self.incoming: asyncio.Queue[Incoming] = asyncio.Queue(PIPELINE)
        self.sync_online: dict[str, tuple[int, int]] = {}
        # names of records received and not applied yet (their signatures are being checked)
        self.arriving: Counter[str] = Counter()
        self.inflight: Counter[str] = Counter()  # broadcast ids of items received, not applied
        # its presence items whose record is not held here yet (on its way by the tree), by name
        self.waiting: dict[str, list[tuple[PresenceItem, float]]] = {}
        self.synced = False  # its sync reached done: true
        self.since = now  # when the link came up
        self.intact = True  # nothing it sent was refused: its revs may advance our sync point


class LinkSide(Protocol):
    """One live link, as replication sees it: the peer's key and name, its queue out, whether it
    is in the broadcast tree, whether it closed, and replication's state with it."""

    @property
    def key(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def out(self) -> Sender: ...

    @property
    def tree(self) -> bool: ...

    @property
    def closed(self) -> asyncio.Event: ...

    @property
    def feed(self) -> Feed: ...


@dataclass
class Tally:
    """What came on the links with one seed, for /health: items whole (records, presence, mail
    items, takes) in gossip frames, of those the ones held already, ids announced, and bytes."""

    received: int = 0
    duplicates: int = 0
    ids: int = 0
    item_bytes: int = 0
    id_bytes: int = 0

    def fields(self) -> dict[str, int]:
        return {
            "received": self.received,
            "duplicates": self.duplicates,
            "ids": self.ids,
            "gossip_bytes": self.item_bytes,
            "ids_bytes": self.id_bytes,
        }


def check_signatures(records: list[Record], auths: list[tuple[int, SessionAuth, str]]) -> Checked:
    """Runs on a worker thread (Ed25519 verification releases the GIL): both cores check at once."""
    return Checked(
        records,
        [verify_record(r) for r in records],
        {ident: key for ident, auth, key in auths if verify_session(auth, key)},
    )


class Replication:
    """What this seed and its linked peers exchange of the replicated state, over `links` (the
    mesh's live links, by key). `drop` counts an item dropped; `reach` is told the home seed of
    each presence item applied (its users count as offline when it stays unreachable)."""

    def __init__(
        self,
        seed: ReplicaSeed,
        links: Mapping[str, LinkSide],
        drop: Callable[[str], None],
        reach: Callable[[str], None],
    ) -> None:
        self.seed = seed
        self.links = links
        self.drop = drop
        self.reach = reach
        self.sync_points: dict[str, tuple[str, int]] = {}
        self.outgoing: list[tuple[str, str, int, str | None]] = []
        self.outgoing_ids: list[str] = []  # the id of each, worked out once
        self.pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="verify")
        self.flush_scheduled = False
        self.applied = asyncio.Event()  # set (and replaced) each time a link applies records
        self.tree = broadcast.Broadcast(seed.key)
        self.tallies: dict[str, Tally] = {}
        self.ticking: asyncio.TimerHandle | None = None

    def stop(self) -> None:
        if self.ticking is not None:
            self.ticking.cancel()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def frame_limit(self) -> int:
        return min(self.seed.config.max_frame, MAX_FRAME)

    # ------------------------------------------------------------------ links up and down

    def link_up(self, link: LinkSide) -> None:
        self.tree.link_up(link.key, link.tree)

    def link_closed(self, link: LinkSide) -> None:
        """Its records in flight will not be applied: whoever waits on them stops waiting."""
        if link.feed.arriving:
            link.feed.arriving.clear()
            self._applied()

    def link_down(self, key: str) -> None:
        self._send(self.tree.link_down(key))

    def syncing(self, now: float) -> bool:
        """True while some linked peer's sync is not done (a miss here may be a name not synced yet).

        A peer whose sync has not ended within ten lookup timeouts of its link (`now` in the loop's
        monotonic seconds) no longer counts: a stranger that links and never finishes cannot make
        every miss wait on it.
        """
        patience = 10 * self.seed.config.lookup_timeout
        return any(
            not link.feed.synced and now - link.feed.since < patience
            for link in self.links.values()
        )

    # ------------------------------------------------------------------ the sync we send

    async def send_sync(self, link: LinkSide, since: tuple[str, int] | None) -> None:
        """What the peer lacks since its `since` (everything for another epoch), then our online set.

        Streamed: records are encoded and mail read from the store a page at a time, each frame
        queued only when the link's queue has room, so a peer that reads slowly, or never, holds
        one page here, never a copy of the directory or the mail.
        """
        epoch, _ = self.seed.current_rev()
        after = since[1] if since is not None and since[0] == epoch else 0
        assembler = chunks.Assembler("sync", self.seed.current_rev(), self.frame_limit(), True)
        async with contextlib.aclosing(self._sync_items(after)) as items:
            async for kind, text, rev in items:
                if link.closed.is_set():
                    return
                full = assembler.add(kind, text, rev)
                if full is not None and not await link.out.push_paced(full):
                    return
        last = assembler.finish()
        if last is not None and not link.closed.is_set():
            await link.out.push_paced(last)

    async def _sync_items(self, after: int) -> AsyncGenerator[tuple[str, str, int], None]:
        """(list name, JSON, rev) of what a sync carries: records, mail, takes, the online set."""
        for count, (rev, text) in enumerate(self.seed.records_since(after), 1):
            yield "records", text, rev
            if count % 256 == 0:
                await asyncio.sleep(0)  # encoding a big directory takes turns with the rest
        for kind in ("mail", "taken"):
            last = after
            while True:
                page = await self.seed.mail_page(kind, last, SYNC_PAGE)
                for rev, text in page:
                    yield kind, text, rev
                if len(page) < SYNC_PAGE:
                    break
                last = page[-1][0]
        for item in self.seed.local_online():
            yield "presence", item.model_dump_json(by_alias=True), 0

    # ------------------------------------------------------------------ frames received

    def receive(
        self, link: LinkSide, frame: Sync | Gossip | Ihave | Graft | Prune, size: int, now: Now
    ) -> Incoming | None:
        """A replication frame of `size` bytes, parsed at `now`: count it, keep it within the
        link's budgets, and start checking its signatures on a worker thread (None: dropped)."""
        if isinstance(frame, Ihave | Graft | Prune):
            return self._ids_frame(link, frame, size, now)
        ids: dict[int, str] = {}
        duplicates = 0
        if isinstance(frame, Gossip):
            frame, ids, duplicates = self._arrived(link, frame, size)
        unheld = [r for r in frame.records if not self.seed.holds(r)]
        fresh = self._within_budget(link, unheld, now)
        if frame.presence:
            kept = [p for p in frame.presence if self._allows(link, "presence", now)]
            if len(kept) < len(frame.presence):
                frame = frame.model_copy(update={"presence": kept})
        keys = {fold_name(r.name): r.key for r in frame.records}
        auths = []
        for item in frame.presence:
            if item.auth is not None:
                key = keys.get(fold_name(item.name)) or self.seed.key_of(item.name)
                if key is not None:
                    auths.append((id(item), item.auth, key))
        if not fresh and not auths:
            return Incoming(frame, ids=ids, duplicates=duplicates)
        loop = asyncio.get_running_loop()
        names = [fold_name(r.name) for r in fresh]
        link.feed.arriving.update(names)
        return Incoming(
            frame,
            loop.run_in_executor(self.pool, check_signatures, fresh, auths),
            names,
            ids,
            duplicates,
        )

    def _tally(self, key: str) -> Tally:
        tally = self.tallies.get(key)
        if tally is None:
            if len(self.tallies) >= MAX_TALLIED:
                idle = next((k for k in self.tallies if k not in self.links), None)
                self.tallies.pop(idle if idle is not None else next(iter(self.tallies)))
            tally = self.tallies[key] = Tally()
        return tally

    def tally_of(self, key: str) -> dict[str, int | str]:
        """/health's counters for the link with `key`, and its mode in the broadcast tree."""
        return {**self.tallies.get(key, Tally()).fields(), "broadcast": self.tree.mode(key)}

    def _arrived(
        self, link: LinkSide, frame: Gossip, size: int
    ) -> tuple[Gossip, dict[int, str], int]:
        """Count a gossip's items; records, mail items and takes held here already (a record
        held, or an id seen) are duplicates, dropped before their signatures are checked. The ids
        of the rest, by item. Presence comes once, from its home: it is counted, never dropped."""
        tally = self._tally(link.key)
        tally.item_bytes += size
        ids: dict[int, str] = {}
        kept: dict[str, list[object]] = {}
        duplicates = 0
        for kind in chunks.KINDS:
            items = getattr(frame, kind)
            tally.received += len(items)
            if kind not in broadcast.TREE_KINDS:
                continue
            keep = []
            for item in items:
                ident = broadcast.item_id(kind, dump(item))
                if self.tree.has(ident) or (isinstance(item, Record) and self.seed.holds(item)):
                    duplicates += 1
                    continue
                ids[id(item)] = ident
                keep.append(item)
            if len(keep) < len(items):
                kept[kind] = keep
        if kept:
            frame = frame.model_copy(update=kept)
        link.feed.inflight.update(ids.values())
        return frame, ids, duplicates

    def _ids_frame(
        self, link: LinkSide, frame: Ihave | Graft | Prune, size: int, now: Now
    ) -> Incoming | None:
        """Tree frames only on a tree link. An ihave or graft spends the link's budget of ids (a
        stranger's is small); over it, the frame is dropped (the items still come by the tree,
        or by the next sync)."""
        if not link.tree:
            link.out.push(
                error_frame(ErrorCode.BAD_REQUEST, f"{frame.type} is for a broadcast tree link")
            )
            return None
        if isinstance(frame, Ihave):
            tally = self._tally(link.key)
            tally.ids += len(frame.ids)
            tally.id_bytes += size
        if isinstance(frame, Prune):
            return Incoming(frame)
        if frame.ids and not self._allows(link, "ids", now, float(len(frame.ids))):
            return None
        return Incoming(frame)

    def _allows(self, link: LinkSide, kind: str, now: Now, cost: float = 1.0) -> bool:
        """Spend `cost` of the link's `kind` budget; what is over it is dropped before its
        signatures are checked, and the link's sync point stays (it comes again with a sync)."""
        if self.seed.link_allows(link.key, kind, now, cost):
            return True
        link.feed.intact = False
        self.drop("over_link_budget")
        return False

    def _within_budget(self, link: LinkSide, records: list[Record], now: Now) -> list[Record]:
        """The records to check: updates of names held here, and new names within the link's
        budget of new names."""
        return [
            r
            for r in records
            if self.seed.key_of(r.name) is not None or self._allows(link, "names", now)
        ]

    def apply(self, link: LinkSide, incoming: Incoming, checked: Checked | None, now: Now) -> None:
        """Apply a link's replication frame in its turn at `now`, its signatures `checked`."""
        frame = incoming.frame
        match frame:
            case Gossip():
                self._gossip_arrived(link, frame, incoming, checked, now)
            case Sync():
                self._apply_frame(link, frame, checked, now)
            case Ihave():
                self.tree.announced(link.key, frame.ids, now.mono)
                self._schedule()
            case Graft():
                items = self.tree.grafted(link.key, frame.ids)
                self._push_items(link, items)
            case Prune():
                self._send(self.tree.pruned(link.key))
        if incoming.names:
            link.feed.arriving.subtract(incoming.names)
            link.feed.arriving += Counter()  # drops the names that reached zero
            self._applied()

    def arriving(self, name: str) -> bool:
        """True while a peer's record for `name` is being checked: a miss now may be a name
        registered at another seed a moment ago, so the answer waits for it."""
        folded = fold_name(name)
        return any(link.feed.arriving[folded] > 0 for link in self.links.values())

    async def settled(self, name: str) -> None:
        """Wait until the name is held here or no link is checking a record for it (at most one
        lookup timeout: a peer that keeps sending bad records for a name cannot hold it longer)."""
        try:
            async with asyncio.timeout(self.seed.config.lookup_timeout):
                while self.seed.record(name) is None and self.arriving(name):
                    await self.applied.wait()
        except TimeoutError:
            pass

    def _applied(self) -> None:
        """Wake whoever waits on `settled`; the next wait is on a fresh event."""
        self.applied.set()
        self.applied = asyncio.Event()

    def _apply_frame(
        self, link: LinkSide, frame: Sync | Gossip, checked: Checked | None, now: Now
    ) -> None:
        feed = link.feed
        if isinstance(frame, Sync):
            self._apply(link, frame, checked, now, sync=True)
            if frame.done:
                self.seed.merge_online_set(link.key, feed.sync_online, now.wall)
                feed.sync_online = {}
                feed.synced = True
                self._advance(link, frame.rev)
        else:
            self._apply(link, frame, checked, now, sync=False)
            if feed.synced:
                self._advance(link, frame.rev)

    def _gossip_arrived(
        self, link: LinkSide, frame: Gossip, incoming: Incoming, checked: Checked | None, now: Now
    ) -> None:
        """Apply a gossip in its turn. An item whose id was seen since it arrived (it came on
        another link meanwhile) is a duplicate too; a tree link that brought one is pruned."""
        duplicates = incoming.duplicates
        kept: dict[str, list[object]] = {}
        for kind in broadcast.TREE_KINDS:
            items = getattr(frame, kind)
            keep = [i for i in items if not self.tree.has(incoming.ids.get(id(i), ""))]
            if len(keep) < len(items):
                duplicates += len(items) - len(keep)
                kept[kind] = keep
        if kept:
            frame = frame.model_copy(update=kept)
        self._tally(link.key).duplicates += duplicates
        link.feed.inflight.subtract(incoming.ids.values())
        link.feed.inflight += Counter()  # drops the ids that reached zero
        self._apply_frame(link, frame, checked, now)
        self._send(self.tree.received(link.key, duplicates))

    def _advance(self, link: LinkSide, rev: tuple[str, int]) -> None:
        """Everything of the peer up to `rev` is applied here: resume from there next time."""
        if not link.feed.intact:
            return
        self.sync_points[link.key] = rev
        self.seed.save_sync_point(link.key, rev[0], rev[1])

    def _apply(
        self, link: LinkSide, frame: Sync | Gossip, checked: Checked | None, now: Now, sync: bool
    ) -> None:
        """Hand what a peer sent to the seed, with the signatures already checked; count refusals."""
        verified: list[Record] = []
        auths_ok: dict[int, str] = {}
        if checked is not None:
            auths_ok = checked.auths_ok
            for record, ok in zip(checked.records, checked.records_ok, strict=True):
                if ok:
                    verified.append(record)
                else:
                    self._refused(
                        link,
                        record.name,
                        ProtocolError(ErrorCode.BAD_SIGNATURE, "record signature does not verify"),
                    )
        presence = frame.presence
        mine: list[PresenceItem] = []
        if sync:
            # the peer's own online set is replaced as a whole at done: true
            mine = [p for p in presence if p.online and p.seed_key == link.key]
            presence = [p for p in presence if not (p.online and p.seed_key == link.key)]
        presence = self._wait_for_records(link, presence, verified, now.mono)
        merged = self.seed.merge(
            link.key, now.wall, verified, presence, frame.mail, frame.taken, True, auths_ok
        )
        for name, exc in merged.refused:
            self._refused(link, name, exc)
        if merged.records:
            self._records_came(now.wall)
        for item in mine:
            problem = self.seed.check_online(item, link.key, now.wall, auths_ok.get(id(item)))
            if problem is not None:
                self._refused(link, item.name, problem)
                continue
            if item.auth is None:  # check_online refuses an online item without its auth
                continue
            link.feed.sync_online[fold_name(item.name)] = (item.at, item.auth.at)
        for item in presence:
            self.reach(item.seed_key)

    def _wait_for_records(
        self, link: LinkSide, presence: list[PresenceItem], records: list[Record], now: float
    ) -> list[PresenceItem]:
        """Presence goes one hop from its home, a new name's record along the tree: on a tree
        link, the home's own item whose record is not held yet waits for it (up to
        PRESENCE_WAIT, MAX_WAITING items a link), instead of being refused as not_found."""
        if not presence or not link.tree:
            return presence
        coming = {fold_name(r.name) for r in records}
        self._expire_waiting(link, now)
        held = sum(len(v) for v in link.feed.waiting.values())
        ready = []
        for item in presence:
            folded = fold_name(item.name)
            if (
                item.seed_key != link.key
                or folded in coming
                or self.seed.key_of(item.name) is not None
                or held >= MAX_WAITING
            ):
                ready.append(item)
                continue
            link.feed.waiting.setdefault(folded, []).append((item, now))
            held += 1
        return ready

    def _expire_waiting(self, link: LinkSide, now: float) -> None:
        for folded, items in list(link.feed.waiting.items()):
            kept = [w for w in items if now - w[1] < PRESENCE_WAIT]
            for _ in range(len(items) - len(kept)):
                self.drop(str(ErrorCode.NOT_FOUND))
            if kept:
                link.feed.waiting[folded] = kept
            else:
                del link.feed.waiting[folded]

    def _records_came(self, now: int) -> None:
        """Records were applied: presence that waited for them is applied now, as from the link
        it came on (its session auth is checked then)."""
        for link in list(self.links.values()):
            for folded in [f for f in link.feed.waiting if self.seed.key_of(f) is not None]:
                items = [item for item, _ in link.feed.waiting.pop(folded)]
                merged = self.seed.merge(link.key, now, [], items, [], [])
                for name, exc in merged.refused:
                    self._refused(link, name, exc)

    def _refused(self, link: LinkSide, name: str, exc: ProtocolError) -> None:
        if exc.code == ErrorCode.RATE_LIMITED:  # over the link's budget: it comes again by sync
            link.feed.intact = False
        self.drop(str(exc.code))
        log.debug("dropped an item for %r from peer %s: %s", name, link.name, exc.message)

    # ------------------------------------------------------------------ spreading changes

    def gossip(self, kind: str, text: str, rev: int, source: str | None = None) -> None:
        """Queue a change for every peer but its source (whole on tree links that are eager, as
        an id on a few lazy ones); a loop turn's changes go out together. It is seen here from
        now: another copy arriving counts as a duplicate."""
        ident = broadcast.item_id(kind, text)
        self.tree.see(ident)
        self.outgoing.append((kind, text, rev, source))
        self.outgoing_ids.append(ident)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_scheduled = False
        batch, self.outgoing = self.outgoing, []
        idents, self.outgoing_ids = self.outgoing_ids, []
        self._send(self.tree.spread(batch, asyncio.get_running_loop().time(), idents))

    def _push_items(self, link: LinkSide, items: list[broadcast.Item]) -> None:
        """Gossip frames to one link; on a tree link that was sent ids instead of some changes,
        their `rev` stays below the first such change, so its sync point never passes it."""
        epoch, current = self.seed.current_rev()
        cap = self.tree.cap(link.key)
        if cap is not None:
            items = [(kind, text, min(n, cap)) for kind, text, n in items]
            current = min(current, cap)
        rev = (epoch, current)
        for text in chunks.frames("gossip", items, rev, self.frame_limit(), last_done=None):
            link.out.push(text)

    def _send(self, out: broadcast.Out) -> None:
        """Send what the broadcast core returned: items whole, ids, grafts and prunes."""
        for key, items in out.eager.items():
            link = self.links.get(key)
            if link is not None:
                self._push_items(link, items)
        for table, kind in ((out.ihave, "ihave"), (out.graft, "graft")):
            for key, ids in table.items():
                link = self.links.get(key)
                if link is None or not link.tree:
                    continue
                step = broadcast.MAX_IDS
                for start in range(0, max(len(ids), 1), step):
                    part = ids[start : start + step]
                    link.out.push(json.dumps({"type": kind, "ids": part}, separators=(",", ":")))
        for key in out.prune:
            link = self.links.get(key)
            if link is not None and link.tree:
                link.out.push('{"type":"prune"}')
        self._schedule()

    def _schedule(self) -> None:
        """Wake `_tick` when the broadcast core next has something to do."""
        due = self.tree.due()
        if due is None:
            return
        if self.ticking is not None and self.ticking.when() <= due:
            return
        if self.ticking is not None:
            self.ticking.cancel()
        self.ticking = asyncio.get_running_loop().call_at(due, self._tick)

    def _tick(self) -> None:
        self.ticking = None
        now = asyncio.get_running_loop().time()
        self._send(self.tree.tick(now, self._on_its_way))

    def _on_its_way(self, ident: str) -> bool:
        return any(link.feed.inflight[ident] > 0 for link in self.links.values())
