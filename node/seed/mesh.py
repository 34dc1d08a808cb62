"""Seed-to-seed links: dialling with backoff, hello/welcome, full sync, gossip, peer lookups.

Every seed dials every seed URL it learns, so the mesh becomes complete and a dead seed never
splits it; gossip is forwarded only when it changed this seed's state, so it ends on any mesh.
The mesh holds links, never directory state: what it receives goes to its seed (`SeedSide`),
which applies the directory rules and says what changed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from ..config import SeedConfig
from ..errors import ConnectionLost, ErrorCode, ProtocolError
from ..runtime import Tasks
from ..wire.backoff import Backoff
from ..wire.correlator import Correlator
from ..wire.limits import RateLimit, Verdict
from ..wire.names import fold_name
from ..wire.protocol import (
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
    parse,
    readable_id,
)
from ..wire.sender import FrameCounts, Sender
from ..wire.sockets import close_now, dial, frames

log = logging.getLogger("p2p.mesh")

HANDSHAKE_TIMEOUT = 5.0
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0


@dataclass
class Merged:
    """What a batch from a peer changed here, and what was refused (counted, never forwarded)."""

    records: list[Record] = field(default_factory=list)
    presence: list[PresenceItem] = field(default_factory=list)
    refused: list[tuple[Record, ProtocolError]] = field(default_factory=list)


class SeedSide(Protocol):
    """What the mesh needs of its seed: who it is, and the directory it replicates."""

    name: str
    url: str
    config: SeedConfig
    frames: FrameCounts

    @property
    def key(self) -> str: ...

    def merge(self, records: list[Record], presence: list[PresenceItem]) -> Merged:
        """Apply records and presence from a peer under the rules of a user's own registration."""

    def merge_online_set(self, seed: str, online: dict[str, int]) -> None:
        """A peer's sync named its whole online set."""

    def sync_items(self) -> tuple[list[Record], list[PresenceItem]]:
        """Everything a new link is sent: every record and this seed's own online set."""

    def record(self, name: str) -> Record | None: ...

    def lookup_reply(self, frame: Lookup) -> str:
        """The answer to a peer's `hops: 0` lookup, from this seed's own directory."""

    def home_lost(self, seed: str) -> None:
        """A home seed was unreachable for too long: its users now count as offline."""

    def home_back(self, seed: str) -> None:
        """A lost home seed linked again."""

    def remember_url(self, url: str) -> None:
        """Keep a seed URL across restarts."""


class Link:
    """One live seed-to-seed socket and what is in flight on it."""

    def __init__(
        self,
        ws: Connection,
        name: str,
        url: str,
        key: str,
        dialed: bool,
        limit: RateLimit,
        counts: FrameCounts | None = None,
    ) -> None:
        self.ws = ws
        self.out = Sender(ws, limit=100_000, counts=counts)
        self.name = name
        self.url = url
        self.key = key
        self.dialed = dialed
        self.limit = limit
        self.lookups: Correlator[Found | None] = Correlator()
        self.sync_online: dict[str, int] = {}
        self.closed = asyncio.Event()

    def dialer(self, own_name: str) -> str:
        return own_name if self.dialed else self.name


class KnownSeed:
    __slots__ = ("name", "url", "key")

    def __init__(self, name: str, url: str, key: str) -> None:
        self.name, self.url, self.key = name, url, key


class _SelfDial(Exception):
    """The URL we dialled is this seed."""


class Mesh:
    """This seed's links to the others: dialling, the handshake, sync, gossip and peer lookups."""

    def __init__(self, seed: SeedSide) -> None:
        self.seed = seed
        self.links: dict[str, Link] = {}
        self.known: dict[str, KnownSeed] = {}
        self.urls: set[str] = set()
        self.self_urls: set[str] = set()
        self.dialers: dict[str, asyncio.Task[None]] = {}
        self.tasks = Tasks(log)
        self.unreachable: dict[str, asyncio.TimerHandle] = {}
        self.outgoing: list[tuple[Link | None, list[Record], list[PresenceItem]]] = []
        self.flush_scheduled = False
        self.dropped = {ErrorCode.BAD_SIGNATURE: 0, ErrorCode.NAME_TAKEN: 0}

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
        await asyncio.gather(*self.dialers.values(), return_exceptions=True)
        await self.tasks.cancel_all()

    def learn(self, urls: Iterable[str]) -> None:
        """Dial every seed URL not known yet, and remember it across restarts."""
        for url in urls:
            url = url.rstrip("/")
            if url in self.urls or url in self.self_urls:
                continue
            self.urls.add(url)
            self.seed.remember_url(url)
            self.dialers[url] = asyncio.get_running_loop().create_task(
                self._dial_loop(url), name=f"dial {url}"
            )

    # ------------------------------------------------------------------ dialling

    def _linked_url(self, url: str) -> Link | None:
        for link in self.links.values():
            if link.url == url:
                return link
        return None

    async def _dial_loop(self, url: str) -> None:
        backoff = Backoff(BACKOFF_FIRST, BACKOFF_MAX)
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
            except (
                OSError,
                InvalidHandshake,
                InvalidURI,
                TimeoutError,
                ConnectionClosed,
                ProtocolError,
            ) as exc:
                delay = backoff.next()
                log.debug("dial %s failed: %s; retry in %.1fs", url, exc, delay)
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            await self._run(link)
            await asyncio.sleep(BACKOFF_FIRST)

    async def _dial(self, url: str) -> Link:
        ws = await dial(
            url, self.seed.config.max_frame, HANDSHAKE_TIMEOUT, ping_interval=5, ping_timeout=10
        )
        try:
            await ws.send(dump(self._intro(SeedHello, "seed_hello")))
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                reply = parse(SEED_LINK, await ws.recv())
            if not isinstance(reply, SeedWelcome):
                raise ProtocolError(
                    ErrorCode.BAD_REQUEST, f"expected seed_welcome, got {reply.type}"
                )
            if reply.name == self.seed.name:
                raise _SelfDial()
        except BaseException:
            await ws.close()
            raise
        self.learn(reply.seeds)
        return Link(
            ws,
            reply.name,
            url,
            reply.key,
            dialed=True,
            limit=self._limit(),
            counts=self.seed.frames,
        )

    def _intro(
        self, cls: type[SeedHello] | type[SeedWelcome], kind: str
    ) -> SeedHello | SeedWelcome:
        seeds = sorted(self.urls | {k.url for k in self.known.values()})
        return cls(
            type=kind,  # type: ignore[arg-type]
            id=uuid.uuid4().hex,
            name=self.seed.name,
            url=self.seed.url,
            key=self.seed.key,
            seeds=seeds,
        )

    def _limit(self) -> RateLimit:
        cfg = self.seed.config
        return RateLimit(cfg.peer_rate, cfg.peer_burst, asyncio.get_running_loop().time())

    async def accept(self, ws: Connection, hello: SeedHello) -> None:
        """A seed dialled us: answer with our welcome and run the link until it drops."""
        if hello.name == self.seed.name:
            await ws.send(dump(self._intro(SeedWelcome, "seed_welcome")))
            await ws.close(1000, "that is this seed")
            return
        welcome = self._intro(SeedWelcome, "seed_welcome").model_copy(update={"id": hello.id})
        await ws.send(dump(welcome))
        self.learn(hello.seeds)
        link = Link(
            ws,
            hello.name,
            hello.url.rstrip("/"),
            hello.key,
            dialed=False,
            limit=self._limit(),
            counts=self.seed.frames,
        )
        self.urls.add(link.url)
        await self._run(link)

    # ------------------------------------------------------------------ a live link

    async def _run(self, link: Link) -> None:
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
            self._release(link)

    def _adopt(self, link: Link) -> bool:
        """Register a link; of two links between the same pair, both keep the one the smaller name dialled."""
        existing = self.links.get(link.name)
        if existing is not None:
            keep_dialer = min(self.seed.name, link.name)
            if (
                existing.dialer(self.seed.name) == keep_dialer
                or link.dialer(self.seed.name) != keep_dialer
            ):
                return False
            self.tasks.spawn(existing.ws.close(1000, "duplicate link"), "close duplicate link")
            self._release(existing, replaced=True)
        self.links[link.name] = link
        self.known[link.name] = KnownSeed(link.name, link.url, link.key)
        timer = self.unreachable.pop(link.name, None)
        if timer is not None:
            timer.cancel()
        self.seed.home_back(link.name)
        log.info("peer %s up (%s)", link.name, link.url)
        self.tasks.spawn(self._measure(link), f"ping {link.name}")
        return True

    async def _measure(self, link: Link) -> None:
        try:
            await asyncio.wait_for(await link.ws.ping(), 5)
        except (ConnectionClosed, TimeoutError, RuntimeError):
            pass

    def _release(self, link: Link, replaced: bool = False) -> None:
        link.closed.set()
        link.lookups.close("the link closed")
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
        loop = asyncio.get_running_loop()
        self.unreachable[seed_name] = loop.call_later(
            self.seed.config.unreachable_after, self._lost, seed_name
        )

    def _lost(self, seed_name: str) -> None:
        self.unreachable.pop(seed_name, None)
        if seed_name not in self.links:
            self.seed.home_lost(seed_name)

    def _send_sync(self, link: Link) -> None:
        records, online = self.seed.sync_items()
        chunks = max(1, -(-len(records) // SYNC_CHUNK), -(-len(online) // SYNC_CHUNK))
        for i in range(chunks):
            part = slice(i * SYNC_CHUNK, (i + 1) * SYNC_CHUNK)
            link.out.push(
                dump(
                    Sync(
                        type="sync",
                        records=records[part],
                        presence=online[part],
                        done=i == chunks - 1,
                    )
                )
            )

    def _on_frame(self, link: Link, raw: str | bytes) -> None:
        self.seed.frames.received += 1
        verdict = link.limit.check(asyncio.get_running_loop().time())
        if verdict is not Verdict.ALLOW:
            if verdict is Verdict.CUT:
                # what was dropped comes back with the full sync when the link is redialled
                log.warning(
                    "closing the link with %s: it kept flooding after rate_limited", link.name
                )
                self.tasks.spawn(
                    close_now(link.ws, 1008, "rate limit exceeded repeatedly"), "cut a peer"
                )
                return
            link.out.push(
                error_frame(
                    ErrorCode.RATE_LIMITED, "too many frames from this seed", readable_id(raw)
                )
            )
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
                        link.sync_online[fold_name(item.name)] = item.at
                    else:
                        self._apply(link, [], [item])
                if frame.done:
                    self.seed.merge_online_set(link.name, link.sync_online)
                    link.sync_online = {}
            case Gossip():
                self._apply(link, frame.records, frame.presence)
            case Lookup():
                link.out.push(self.seed.lookup_reply(frame))
            case Found():
                self._apply(link, [frame.record], [])
                link.lookups.resolve(frame.id, frame)
            case Error():
                if not link.lookups.resolve(frame.id, None) and frame.code != ErrorCode.NOT_FOUND:
                    log.warning("peer %s reports %s: %s", link.name, frame.code, frame.message)
            case SeedWelcome():
                link.out.push(
                    error_frame(
                        ErrorCode.BAD_REQUEST, "seed_welcome only answers seed_hello", frame.id
                    )
                )

    def _apply(self, link: Link, records: list[Record], presence: list[PresenceItem]) -> None:
        """Hand what a peer sent to the seed; forward what changed, count what was refused."""
        merged = self.seed.merge(records, presence)
        for record, exc in merged.refused:
            if exc.code in self.dropped:
                self.dropped[exc.code] += 1
                log.warning(
                    "dropped a record for %r from peer %s: %s", record.name, link.name, exc.message
                )
        for item in merged.presence:
            self.watch_reachability(item.seed)
        if merged.records or merged.presence:
            self.gossip(merged.records, merged.presence, source=link)

    # ------------------------------------------------------------------ gossip and lookups

    def gossip(
        self,
        records: list[Record] | None = None,
        presence: list[PresenceItem] | None = None,
        source: Link | None = None,
    ) -> None:
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
                link.out.push(
                    dump(
                        Gossip(
                            type="gossip",
                            records=records[i : i + SYNC_CHUNK],
                            presence=presence[i : i + SYNC_CHUNK],
                        )
                    )
                )

    async def ask_peers(self, name: str) -> Record | None:
        """Ask every peer at once with hops 0; the first `found` that holds here wins, silence means not found."""
        asked: list[tuple[Link, str, asyncio.Future[Found | None]]] = []
        for link in self.links.values():
            fid = uuid.uuid4().hex
            asked.append((link, fid, link.lookups.expect(fid)))
            link.out.push(dump(Lookup(type="lookup", id=fid, name=name, hops=0)))
        try:
            async with asyncio.timeout(self.seed.config.lookup_timeout):
                for next_done in asyncio.as_completed([fut for *_, fut in asked]):
                    try:
                        found = await next_done
                    except ConnectionLost:
                        continue
                    if found is not None:
                        # the peer's record went through the directory rules as it arrived
                        record = self.seed.record(found.record.name)
                        if record is not None:
                            return record
        except TimeoutError:
            pass
        finally:
            for link, fid, _ in asked:
                link.lookups.forget(fid)
        return None

    def seed_infos(self) -> list[SeedInfo]:
        me = SeedInfo(
            name=self.seed.name, url=self.seed.url, key=self.seed.key, up=True, rtt_ms=0.0
        )
        infos = [me]
        for name, known in sorted(self.known.items()):
            link = self.links.get(name)
            rtt = round(link.ws.latency * 1000, 3) if link is not None and link.ws.latency else None
            infos.append(
                SeedInfo(name=name, url=known.url, key=known.key, up=link is not None, rtt_ms=rtt)
            )
        return infos
