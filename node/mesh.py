"""Seed-to-seed links: dialling with backoff, hello/welcome, full sync, gossip, peer lookups.

Every seed dials every seed URL it learns, so the mesh becomes complete and a dead seed never
splits it; gossip is forwarded only when it changed this seed's state, so it ends on any mesh.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from .directory import Outcome
from .errors import ProtocolError
from .limits import RateLimit, Verdict
from .protocol import (
    SEED_LINK,
    SYNC_CHUNK,
    Error,
    Found,
    Gossip,
    Lookup,
    PresenceItem,
    Record,
    SeedHello,
    SeedInfo,
    SeedWelcome,
    Sync,
    dump,
    error_frame,
    name_key,
    parse,
    readable_id,
)
from .sender import FrameCounts, Sender
from .wire import close_now, dial, frames, now_ms

if TYPE_CHECKING:
    from .seed import Seed

log = logging.getLogger("p2p.mesh")

HANDSHAKE_TIMEOUT = 5.0
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0


class Link:
    """One live seed-to-seed socket and what is in flight on it."""

    def __init__(self, ws: Connection, name: str, url: str, key: str, dialed: bool, limit: RateLimit,
                 counts: FrameCounts | None = None) -> None:
        self.ws = ws
        self.out = Sender(ws, limit=100_000, counts=counts)
        self.name = name
        self.url = url
        self.key = key
        self.dialed = dialed
        self.limit = limit
        self.pending: dict[str, asyncio.Future[Record | None]] = {}
        self.sync_online: dict[str, int] = {}
        self.closed = asyncio.Event()

    def dialer(self, own_name: str) -> str:
        return own_name if self.dialed else self.name


class KnownSeed:
    __slots__ = ("name", "url", "key")

    def __init__(self, name: str, url: str, key: str) -> None:
        self.name, self.url, self.key = name, url, key


class Mesh:
    def __init__(self, seed: Seed) -> None:
        self.seed = seed
        self.links: dict[str, Link] = {}  # peer seed name -> link
        self.known: dict[str, KnownSeed] = {}  # peer seed name -> last hello/welcome
        self.urls: set[str] = set()
        self.self_urls: set[str] = set()
        self.dialers: dict[str, asyncio.Task[None]] = {}
        self.link_tasks: set[asyncio.Task[None]] = set()
        self.unreachable: dict[str, asyncio.TimerHandle] = {}
        self.outgoing: list[tuple[Link | None, list[Record], list[PresenceItem]]] = []
        self.flush_scheduled = False
        self.dropped = {"bad_signature": 0, "name_taken": 0}

    # ------------------------------------------------------------------ life cycle

    def start(self, urls: Iterable[str]) -> None:
        self.self_urls.add(self.seed.url)
        self.learn(urls)

    async def stop(self) -> None:
        for task in self.dialers.values():
            task.cancel()
        for handle in self.unreachable.values():
            handle.cancel()
        for link in list(self.links.values()):
            await link.ws.close(1001, "seed shutting down")
        for task in [*self.dialers.values(), *self.link_tasks]:
            task.cancel()
        await asyncio.gather(*self.dialers.values(), *self.link_tasks, return_exceptions=True)

    def learn(self, urls: Iterable[str]) -> None:
        """Dial every seed URL not known yet, and remember it across restarts."""
        for url in urls:
            url = url.rstrip("/")
            if url in self.urls or url in self.self_urls:
                continue
            self.urls.add(url)
            self.seed.store.add_seed_url(url)
            self.dialers[url] = asyncio.ensure_future(self._dial_loop(url))

    # ------------------------------------------------------------------ dialling

    def _linked_url(self, url: str) -> Link | None:
        for link in self.links.values():
            if link.url == url:
                return link
        return None

    async def _dial_loop(self, url: str) -> None:
        delay = BACKOFF_FIRST
        while True:
            existing = self._linked_url(url)
            if existing is not None:
                await existing.closed.wait()
                await asyncio.sleep(BACKOFF_FIRST)
                continue
            try:
                link = await self._dial(url)
            except _SelfDial:
                log.debug("%s is this seed's own URL; not dialling it", url)
                self.self_urls.add(url)
                return
            except (OSError, InvalidHandshake, InvalidURI, TimeoutError, ConnectionClosed, ProtocolError) as exc:
                log.debug("dial %s failed: %s; retry in %.1fs", url, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            delay = BACKOFF_FIRST
            await self._run(link)
            await asyncio.sleep(BACKOFF_FIRST)

    async def _dial(self, url: str) -> Link:
        ws = await dial(url, self.seed.config.max_frame, HANDSHAKE_TIMEOUT, ping_interval=5, ping_timeout=10)
        try:
            await ws.send(dump(self._intro(SeedHello, "seed_hello")))
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                reply = parse(SEED_LINK, await ws.recv())
            if not isinstance(reply, SeedWelcome):
                raise ProtocolError("bad_request", f"expected seed_welcome, got {reply.type}")
            if reply.name == self.seed.name:
                raise _SelfDial()
        except BaseException:
            await ws.close()
            raise
        self.learn(reply.seeds)
        return Link(ws, reply.name, url, reply.key, dialed=True, limit=self._limit(), counts=self.seed.frames)

    def _intro(self, cls, kind: str):
        return cls(
            type=kind, id=uuid.uuid4().hex, name=self.seed.name, url=self.seed.url,
            key=self.seed.identity.key, seeds=sorted(self.urls | {k.url for k in self.known.values()}),
        )

    def _limit(self) -> RateLimit:
        return RateLimit(self.seed.config.peer_rate, self.seed.config.peer_burst)

    async def accept(self, ws: Connection, hello: SeedHello) -> None:
        """A seed dialled us: answer with our welcome and run the link until it drops."""
        if hello.name == self.seed.name:
            await ws.send(dump(self._intro(SeedWelcome, "seed_welcome")))
            await ws.close(1000, "that is this seed")
            return
        welcome = self._intro(SeedWelcome, "seed_welcome").model_copy(update={"id": hello.id})
        await ws.send(dump(welcome))
        self.learn(hello.seeds)
        link = Link(ws, hello.name, hello.url.rstrip("/"), hello.key, dialed=False, limit=self._limit(),
                    counts=self.seed.frames)
        self.urls.add(link.url)
        await self._run(link)

    # ------------------------------------------------------------------ a live link

    async def _run(self, link: Link) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.link_tasks.add(task)
        if not self._adopt(link):
            await link.ws.close(1000, "duplicate link")
            link.closed.set()
            return
        try:
            self._send_sync(link)
            async for raw in frames(link.ws):
                self._on_frame(link, raw)
        except ConnectionClosed:
            pass
        finally:
            if task is not None:
                self.link_tasks.discard(task)
            self._release(link)

    def _adopt(self, link: Link) -> bool:
        """Register a link; of two links between the same pair, both sides keep the one the smaller name dialled."""
        existing = self.links.get(link.name)
        if existing is not None:
            keep_dialer = min(self.seed.name, link.name)
            if existing.dialer(self.seed.name) == keep_dialer or link.dialer(self.seed.name) != keep_dialer:
                return False
            asyncio.ensure_future(existing.ws.close(1000, "duplicate link"))
            self._release(existing, replaced=True)
        self.links[link.name] = link
        self.known[link.name] = KnownSeed(link.name, link.url, link.key)
        timer = self.unreachable.pop(link.name, None)
        if timer is not None:
            timer.cancel()
        if self.seed.directory.lost_seeds.pop(link.name, None) is not None:
            self.seed.presence_changed(self.seed.directory.names_homed_at(link.name))
        log.info("peer %s up (%s)", link.name, link.url)
        asyncio.ensure_future(self._measure(link))
        return True

    async def _measure(self, link: Link) -> None:
        try:
            await asyncio.wait_for(await link.ws.ping(), 5)
        except (ConnectionClosed, TimeoutError, RuntimeError):
            pass

    def _release(self, link: Link, replaced: bool = False) -> None:
        link.closed.set()
        for fut in link.pending.values():
            if not fut.done():
                fut.set_result(None)
        if self.links.get(link.name) is not link:
            return
        del self.links[link.name]
        if replaced:
            return
        log.info("peer %s down (%s)", link.name, link.url)
        self.watch_reachability(link.name)

    def watch_reachability(self, seed_name: str) -> None:
        """Presence from a seed we cannot reach counts as offline after `unreachable_after`."""
        if seed_name == self.seed.name or seed_name in self.links or seed_name in self.unreachable:
            return
        if seed_name in self.seed.directory.lost_seeds:
            return
        loop = asyncio.get_running_loop()
        self.unreachable[seed_name] = loop.call_later(
            self.seed.config.unreachable_after, self._lost, seed_name
        )

    def _lost(self, seed_name: str) -> None:
        self.unreachable.pop(seed_name, None)
        if seed_name in self.links:
            return
        self.seed.directory.lost_seeds[seed_name] = now_ms()
        self.seed.presence_changed(self.seed.directory.names_homed_at(seed_name))

    def _send_sync(self, link: Link) -> None:
        records = self.seed.directory.records()
        online = self.seed.local_online()
        chunks = max(1, -(-len(records) // SYNC_CHUNK), -(-len(online) // SYNC_CHUNK))
        for i in range(chunks):
            part = slice(i * SYNC_CHUNK, (i + 1) * SYNC_CHUNK)
            link.out.push(dump(Sync(
                type="sync", records=records[part], presence=online[part], done=i == chunks - 1
            )))

    def _on_frame(self, link: Link, raw: str | bytes) -> None:
        self.seed.frames.received += 1
        verdict = link.limit.check()
        if verdict is not Verdict.ALLOW:
            if verdict is Verdict.CUT:
                # what was dropped comes back with the full sync when the link is redialled
                log.warning("closing the link with %s: it kept flooding after rate_limited", link.name)
                asyncio.ensure_future(close_now(link.ws, 1008, "rate limit exceeded repeatedly"))
                return
            link.out.push(error_frame("rate_limited", "too many frames from this seed", readable_id(raw)))
            return
        try:
            frame = parse(SEED_LINK, raw)
        except ProtocolError as exc:
            log.warning("bad frame from peer %s: %s", link.name, exc.message)
            link.out.push(error_frame(exc.code, exc.message, exc.frame_id))
            return
        match frame:
            case Sync():
                self._apply(link, frame.records, [])
                for item in frame.presence:
                    if item.seed == link.name and item.online:
                        link.sync_online[name_key(item.name)] = item.at
                    else:
                        self._apply(link, [], [item])
                if frame.done:
                    touched = self.seed.directory.replace_seed_online_set(link.name, link.sync_online)
                    link.sync_online = {}
                    self.seed.presence_changed(touched)
            case Gossip():
                self._apply(link, frame.records, frame.presence)
            case Lookup():
                record = self.seed.directory.get(frame.name)
                link.out.push(
                    self.seed.found_frame(frame.id, record) if record else self.seed.not_found(frame)
                )
            case Found():
                ok = self._apply(link, [frame.record], [])
                fut = link.pending.pop(frame.id, None)
                if fut is not None and not fut.done():
                    fut.set_result(frame.record if ok else self.seed.directory.get(frame.record.name))
            case Error():
                fut = link.pending.pop(frame.id or "", None)
                if fut is not None and not fut.done():
                    fut.set_result(None)
                elif frame.code != "not_found":
                    log.warning("peer %s reports %s: %s", link.name, frame.code, frame.message)
            case SeedWelcome():
                link.out.push(error_frame("bad_request", "seed_welcome only answers seed_hello", frame.id))

    def _apply(self, link: Link, records: list[Record], presence: list[PresenceItem]) -> bool:
        """Accept what a peer sent under the same rules as a user's own registration."""
        directory = self.seed.directory
        now = now_ms()
        changed: list[Record] = []
        ok = True
        for record in records:
            try:
                outcome = directory.accept(record, now)
            except ProtocolError as exc:
                ok = False
                if exc.code in self.dropped:
                    self.dropped[exc.code] += 1
                    log.warning("dropped a record for %r from peer %s: %s", record.name, link.name, exc.message)
                continue
            if outcome is Outcome.NEW:
                changed.append(record)
                self.seed.persist(record, now)
        moved: list[PresenceItem] = []
        for item in presence:
            if item.seed == self.seed.name:
                continue  # we are the authority on our own users
            if directory.apply_presence(item):
                moved.append(item)
                self.watch_reachability(item.seed)
        if changed or moved:
            self.gossip(changed, moved, source=link)
        if moved:
            self.seed.presence_changed({name_key(i.name) for i in moved})
        return ok

    # ------------------------------------------------------------------ gossip and lookups

    def gossip(self, records: list[Record] | None = None, presence: list[PresenceItem] | None = None,
               source: Link | None = None) -> None:
        """Queue changes for every other peer; everything queued in one loop turn goes out as one frame."""
        self.outgoing.append((source, records or [], presence or []))
        if not self.flush_scheduled:
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_scheduled = False
        batch, self.outgoing = self.outgoing, []
        for link in self.links.values():
            records = [r for src, rs, _ in batch if src is not link for r in rs]
            presence = [p for src, _, ps in batch if src is not link for p in ps]
            for i in range(0, max(len(records), len(presence)), SYNC_CHUNK):
                link.out.push(dump(Gossip(
                    type="gossip", records=records[i : i + SYNC_CHUNK], presence=presence[i : i + SYNC_CHUNK]
                )))

    async def ask_peers(self, name: str) -> Record | None:
        """Ask every peer at once with hops 0; the first `found` wins, silence means not found."""
        loop = asyncio.get_running_loop()
        asked: list[tuple[Link, str, asyncio.Future[Record | None]]] = []
        for link in self.links.values():
            fid = uuid.uuid4().hex
            fut: asyncio.Future[Record | None] = loop.create_future()
            link.pending[fid] = fut
            link.out.push(dump(Lookup(type="lookup", id=fid, name=name, hops=0)))
            asked.append((link, fid, fut))
        try:
            async with asyncio.timeout(self.seed.config.lookup_timeout):
                for next_done in asyncio.as_completed([f for *_, f in asked]):
                    record = await next_done
                    if record is not None:
                        return record
        except TimeoutError:
            pass
        finally:
            for link, fid, _ in asked:
                link.pending.pop(fid, None)
        return None

    def seed_infos(self) -> list[SeedInfo]:
        me = SeedInfo(name=self.seed.name, url=self.seed.url, key=self.seed.identity.key, up=True, rtt_ms=0.0)
        infos = [me]
        for name, known in sorted(self.known.items()):
            link = self.links.get(name)
            rtt = round(link.ws.latency * 1000, 3) if link is not None and link.ws.latency else None
            infos.append(SeedInfo(name=name, url=known.url, key=known.key, up=link is not None, rtt_ms=rtt))
        return infos


class _SelfDial(Exception):
    """The URL we dialled is this seed."""
