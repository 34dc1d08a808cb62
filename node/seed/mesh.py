"""Seed-to-seed links: dialling, the authenticated handshake, reachability, peer lookups, relay.

Every seed dials every seed URL it learns from an authenticated peer, so the mesh becomes
complete and a dead seed never splits it. A seed is its key: links and presence are kept by key,
and a link exists only after both sides signed the other's nonce. The mesh holds links, never
directory state: what a link carries of the replicated state (sync, gossip, the broadcast tree)
goes to `replication`, the rest to its seed (`SeedSide`).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed

from ..clock import Now, now_ms
from ..crypto.keys import Identity
from ..crypto.signing import sign_seed_auth, verify_record
from ..errors import ConnectionLost, ErrorCode, ProtocolError
from ..runtime import Tasks, quiet_logger
from ..wire.backoff import Backoff
from ..wire.correlator import Correlator
from ..wire.fit import ENVELOPE, MAX_SEEDS_LISTED, fitting
from ..wire.limits import RateLimit, Verdict
from ..wire.names import fold_name
from ..wire.protocol import (
    FROM_SEED,
    MAX_FRAME,
    REVISION,
    SEED_LINK,
    ChallengeFrame,
    Error,
    Found,
    Gossip,
    Graft,
    Ihave,
    Lookup,
    PeerRelay,
    Prune,
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
from ..wire.sender import LINK_QUEUE_FRAMES, FrameCounts, Sender
from ..wire.sockets import DIAL_FAILED, address_group, close_now, dial, frames, pong
from . import broadcast
from .handshake import hello_problem, new_nonce, welcome_problem
from .replication import Feed, Incoming, ReplicaSeed, Replication
from .store import SeedUrl
from .urls import UrlBook

log = quiet_logger("p2p.mesh")

HANDSHAKE_TIMEOUT = 5.0
PEER_LOOKUP_RATE, PEER_LOOKUP_BURST = 20.0, 40.0  # lookups a second asked of one peer
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
DAY_MS = 86_400_000


class SeedSide(ReplicaSeed, Protocol):
    """What the mesh needs of its seed: who it is, and the state it replicates."""

    name: str
    url: str
    frames: FrameCounts
    identity: Identity

    def lookup_reply(self, frame: Lookup, now: int) -> str:
        """The answer to a peer's `hops: 0` lookup, from this seed's own directory."""

    def home_lost(self, seed_key: str) -> None:
        """A home seed was unreachable for too long: its users now count as offline."""

    def home_back(self, seed_key: str) -> None:
        """A lost home seed linked again."""

    def peer_relay(self, frame: PeerRelay, link_key: str) -> None: ...

    def save_url(self, seed: SeedUrl) -> None: ...

    def forget_url(self, url: str) -> None: ...

    def count(self, what: str) -> None: ...

    def first_proven(self, key: str, url: str) -> None:
        """A dial of a configured URL proved `key` there."""


class Link:
    """One live, authenticated seed-to-seed socket and what is in flight on it."""

    def __init__(
        self,
        ws: Connection,
        out: Sender,
        name: str,
        url: str,
        key: str,
        dialed: bool,
        limit: RateLimit,
        now: float,
    ) -> None:
        self.ws = ws
        self.out = out
        self.name = name
        self.url = url
        self.key = key
        self.dialed = dialed
        self.limit = limit
        self.lookups: Correlator[Found | None] = Correlator()
        # lookups this seed may ask of the peer: what users ask must never get us cut for flooding
        self.asks = RateLimit(PEER_LOOKUP_RATE, PEER_LOOKUP_BURST, now)
        self.feed = Feed(now)  # what replication keeps of it
        self.closed = asyncio.Event()
        self.revision = 2  # what the peer announced in its hello or welcome (r3)
        self.tree = False  # both sides offered the broadcast tree (r3): else it is flooded
        self.pinged: asyncio.Future[float | None] | None = None  # the seed's keepalive sweep

    def dialer_key(self, own_key: str) -> str:
        return own_key if self.dialed else self.key


@dataclass
class KnownSeed:
    name: str
    url: str
    key: str
    seen: int  # when a handshake with it last succeeded (ms)


class _SelfDial(Exception):
    """The URL we dialled is this seed."""


class Mesh:
    """This seed's links to the others: dialling, the handshake, lookups and relay; what the links
    carry of the replicated state goes to `replication`."""

    def __init__(self, seed: SeedSide) -> None:
        self.seed = seed
        self.links: dict[str, Link] = {}  # by key
        self.known: dict[str, KnownSeed] = {}  # by key
        self.urls = UrlBook.create([], [], seed.config.max_seed_urls)
        self.self_urls: set[str] = set()
        self.dialers: dict[str, asyncio.Task[None]] = {}
        self.tasks = Tasks(log)
        self.unreachable: dict[str, asyncio.TimerHandle] = {}
        self.asking: dict[str, asyncio.Future[Record | None]] = {}
        self.dropped: dict[str, int] = {}
        self.replication = Replication(seed, self.links, self.drop, self.watch_reachability)

    # ------------------------------------------------------------------ life cycle

    def start(
        self, configured: list[str], stored: list[SeedUrl], sync_points: dict[str, tuple[str, int]]
    ) -> None:
        self.self_urls.add(self.seed.url)
        self.replication.sync_points = dict(sync_points)
        self.urls = UrlBook.create(configured, stored, self.seed.config.max_seed_urls)
        for seed in self.urls.known.values():
            if seed.learned == 0 and seed.url in self.urls.configured:
                self.seed.save_url(seed)
        for url in list(self.urls.known):
            self._dial_soon(url)

    async def stop(self) -> None:
        for task in self.dialers.values():
            task.cancel()
        for handle in self.unreachable.values():
            handle.cancel()
        for link in list(self.links.values()):
            await close_now(link.ws, 1001, "seed shutting down")
        await asyncio.gather(*self.dialers.values(), return_exceptions=True)
        await self.tasks.cancel_all()
        self.replication.stop()

    def drop(self, what: str) -> None:
        self.dropped[what] = self.dropped.get(what, 0) + 1

    def learn(self, urls: Iterable[str], now: int, own_of: str | None = None) -> None:
        """URLs an authenticated peer passed on: keep within the bounds, dial the new ones."""
        wanted = [u for u in urls if u.rstrip("/") not in self.self_urls]
        added, evicted = self.urls.learn(wanted, now, own_of)
        for url in evicted:
            self.seed.forget_url(url)
            task = self.dialers.pop(url, None)
            if task is not None:
                task.cancel()
        for seed in added:
            self.seed.save_url(seed)
            self._dial_soon(seed.url)

    def _dial_soon(self, url: str) -> None:
        if url in self.self_urls or url in self.dialers:
            return
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
        """Dial `url` until it is forgotten; nothing that happens on one attempt ends the loop."""
        backoff = Backoff(BACKOFF_FIRST, BACKOFF_MAX)
        try:
            while url in self.urls.known:
                existing = self._linked_url(url)
                if existing is not None and self.urls.fresh(url, now_ms()):
                    await existing.closed.wait()
                    await asyncio.sleep(BACKOFF_FIRST)
                    continue
                # a link that came in claiming this URL proves nothing about it: dial it once to
                # see which key answers there (a duplicate link is then closed by the rule)
                try:
                    link = await self._dial(url)
                except _SelfDial:
                    log.debug("%s is this seed's own URL; not dialling it", url)
                    self.self_urls.add(url)
                    return
                except (*DIAL_FAILED, ProtocolError) as exc:
                    if self.urls.failed(url, now_ms()):
                        log.info("forgetting %s: it never completed a handshake", url)
                        self.seed.forget_url(url)
                        return
                    delay = backoff.next()
                    log.debug("dial %s failed: %s; retry in %.1fs", url, exc, delay)
                    await asyncio.sleep(delay)
                    continue
                except Exception:
                    log.exception("dialling %s failed unexpectedly; retrying", url)
                    await asyncio.sleep(backoff.next())
                    continue
                backoff.reset()
                await self._run(link)
                await asyncio.sleep(BACKOFF_FIRST)
        finally:
            if self.dialers.get(url) is asyncio.current_task():
                del self.dialers[url]

    async def _dial(self, url: str) -> Link:
        # pinged by the seed's keepalive sweep like every socket it accepted (websockets' own
        # keepalive waits on a full write buffer before its timeout starts)
        ws = await dial(url, self.seed.config.max_frame, HANDSHAKE_TIMEOUT, ping_interval=None)
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                challenge = parse(FROM_SEED, await ws.recv())
                if not isinstance(challenge, ChallengeFrame):
                    raise ProtocolError(
                        ErrorCode.BAD_REQUEST, f"expected a challenge, got {challenge.type}"
                    )
                if challenge.seed_key == self.seed.key:
                    raise _SelfDial()
                hello_nonce = new_nonce()
                at = now_ms()
                auth = sign_seed_auth(
                    self.seed.identity,
                    True,
                    at,
                    self.seed.key,
                    challenge.seed_key,
                    challenge.nonce,
                    hello_nonce,
                )
                hello = SeedHello(
                    type="seed_hello",
                    id=uuid.uuid4().hex,
                    name=self.seed.name,
                    url=self.seed.url,
                    key=self.seed.key,
                    seeds=self._passed_on(at),
                    since=self._since(challenge.seed_key),
                    nonce=hello_nonce,
                    auth=auth,
                    revision=REVISION,
                    broadcast=self._offer(),
                )
                await ws.send(dump(hello))
                reply = parse(SEED_LINK, await ws.recv())
            if not isinstance(reply, SeedWelcome):
                raise ProtocolError(
                    ErrorCode.BAD_REQUEST, f"expected seed_welcome, got {reply.type}"
                )
            now = Now.read()
            problem = welcome_problem(reply, self.seed.key, challenge, hello_nonce, now.wall)
            if problem is not None:
                self.drop("bad_seed_auth")
                await close_now(ws, 1008, problem)
                raise ProtocolError(ErrorCode.BAD_SIGNATURE, problem)
        except BaseException:
            await close_now(ws, 1000, "")  # never waits for ever on a peer that does not read
            raise
        news = not self.urls.fresh(url, now.wall)
        self.urls.verified(url, reply.key, now.wall)
        if url in self.urls.configured:
            self.seed.first_proven(reply.key, url)
        self.seed.save_url(self.urls.known[url])
        self.learn(reply.seeds, now.wall)
        if news:
            self._introduce(reply.key, now.wall)
        link = Link(
            ws,
            Sender(
                ws, self.seed.config.link_queue_bytes, LINK_QUEUE_FRAMES, counts=self.seed.frames
            ),
            reply.name,
            url,
            reply.key,
            dialed=True,
            limit=self._limit(now.mono),
            now=now.mono,
        )
        link.revision = reply.revision
        link.tree = self._offer() is not None and reply.broadcast == broadcast.PROTOCOL
        return link

    def _introduce(self, new_key: str, now: int) -> None:
        """A URL was proven for the first time: the seeds linked before learn it from a fresh hello
        (URL lists travel only in hellos and welcomes; the duplicate link is closed by the rule)."""
        for link in list(self.links.values()):
            if link.key != new_key and self.urls.fresh(link.url, now):
                self.tasks.spawn(self._redial(link.url), f"introduce to {link.name}")

    async def _redial(self, url: str) -> None:
        try:
            link = await self._dial(url)
        except _SelfDial:
            return
        except (*DIAL_FAILED, ProtocolError) as exc:
            log.debug("re-dialling %s to pass on a new URL failed: %s", url, exc)
            return
        await self._run(link)

    def _passed_on(self, now: int) -> list[str]:
        """The URLs a hello or welcome carries: those configured, and those this seed dialled and
        found a seed's key at within a day. A URL a stranger merely claims is dialled here first.
        At most MAX_SEEDS_LISTED, configured and most recently proven first, within half a frame."""
        urls = [u for u in self.urls.listed(now) if u not in self.self_urls]
        encoded = (json.dumps(u) for u in urls)
        return urls[: fitting(encoded, self.frame_limit() // 2, MAX_SEEDS_LISTED)]

    def _offer(self) -> str | None:
        """The broadcast this seed offers in its hello and welcome (None: it floods, as r2)."""
        return broadcast.PROTOCOL if self.seed.config.broadcast_tree else None

    def _since(self, key: str) -> tuple[str, int] | None:
        return self.replication.sync_points.get(key)

    def _limit(self, now: float) -> RateLimit:
        cfg = self.seed.config
        return RateLimit(cfg.peer_rate, cfg.peer_burst, now)

    async def accept(self, ws: Connection, hello: SeedHello, nonce: str, out: Sender) -> None:
        """A seed dialled us and answered our challenge: check its proof, welcome it, run the link."""
        now = Now.read()
        problem = hello_problem(hello, self.seed.key, nonce, now.wall)
        if problem is not None:
            self.drop("bad_seed_auth")
            log.warning("refused a seed link from %s: %s", ws.remote_address, problem)
            await out.flush(1.0)
            await close_now(ws, 1008, problem)
            return
        auth = sign_seed_auth(
            self.seed.identity, False, now.wall, hello.key, self.seed.key, nonce, hello.nonce
        )
        welcome = SeedWelcome(
            type="seed_welcome",
            id=hello.id,
            name=self.seed.name,
            url=self.seed.url,
            key=self.seed.key,
            seeds=self._passed_on(now.wall),
            since=self._since(hello.key),
            auth=auth,
            revision=REVISION,
            broadcast=self._offer(),
        )
        out.push(dump(welcome))
        # its own URL too: dialling it proves the URL reaches that key, then it is passed on
        peer = ws.remote_address
        self.learn([hello.url], now.wall, own_of=address_group(str(peer[0])) if peer else "")
        self.learn(hello.seeds, now.wall)
        out.bound(self.seed.config.link_queue_bytes, LINK_QUEUE_FRAMES)  # a link's, either way
        url = hello.url.rstrip("/")
        limit = self._limit(now.mono)
        link = Link(ws, out, hello.name, url, hello.key, False, limit, now.mono)
        link.revision = hello.revision
        link.tree = self._offer() is not None and hello.broadcast == broadcast.PROTOCOL
        await self._run(link, hello.since)

    # ------------------------------------------------------------------ a live link

    async def _run(self, link: Link, since: tuple[str, int] | None = None) -> None:
        if not self._adopt(link):
            await link.out.flush(1.0)  # the welcome first: the other side learns our key and URLs
            await close_now(link.ws, 1000, "duplicate link")
            link.closed.set()
            return
        applier = self.tasks.spawn(self._applier(link), f"apply from {link.name}")
        try:
            self.tasks.spawn(self.replication.send_sync(link, since), f"sync to {link.name}")
            async for raw in frames(link.ws):
                incoming = self._receive(link, raw)
                if incoming is not None:
                    await link.feed.incoming.put(incoming)
        except ConnectionClosed:
            pass
        finally:
            applier.cancel()
            self._release(link)

    def _adopt(self, link: Link) -> bool:
        """Register a link; of two links with one seed, both keep the one the smaller key dialled
        (and of two dialled by the same side, the newer: the older is a dead socket not noticed yet)."""
        existing = self.links.get(link.key)
        if existing is not None:
            keep = min(self.seed.key, link.key)
            new_dialer, old_dialer = (
                link.dialer_key(self.seed.key),
                existing.dialer_key(self.seed.key),
            )
            if new_dialer != old_dialer and old_dialer == keep:
                return False
            self.tasks.spawn(close_now(existing.ws, 1000, "duplicate link"), "close duplicate link")
            self._release(existing, replaced=True)
        self.links[link.key] = link
        self.replication.link_up(link)
        self.known[link.key] = KnownSeed(link.name, link.url, link.key, now_ms())
        timer = self.unreachable.pop(link.key, None)
        if timer is not None:
            timer.cancel()
        self.seed.home_back(link.key)
        log.info("peer %s up (%s)", link.name, link.url)
        self.tasks.spawn(self._measure(link), f"ping {link.name}")
        return True

    async def _measure(self, link: Link) -> None:
        try:
            async with asyncio.timeout(5):
                await pong(link.ws)
        except (TimeoutError, RuntimeError):
            pass

    def _release(self, link: Link, replaced: bool = False) -> None:
        link.closed.set()
        link.lookups.close("the link closed")
        self.replication.link_closed(link)
        if self.links.get(link.key) is not link:
            return
        del self.links[link.key]
        if replaced:
            return
        self.replication.link_down(link.key)
        log.info("peer %s down (%s)", link.name, link.url)
        self.watch_reachability(link.key)

    def watch_reachability(self, seed_key: str) -> None:
        """Presence from a seed we cannot reach counts as offline after `unreachable_after`."""
        if seed_key == self.seed.key or seed_key in self.links or seed_key in self.unreachable:
            return
        loop = asyncio.get_running_loop()
        self.unreachable[seed_key] = loop.call_later(
            self.seed.config.unreachable_after, self._lost, seed_key
        )

    def _lost(self, seed_key: str) -> None:
        self.unreachable.pop(seed_key, None)
        if seed_key not in self.links:
            self.seed.home_lost(seed_key)

    def syncing(self, now: float | None = None) -> bool:
        """True while some linked peer's sync is not done at `now` (the loop's monotonic seconds,
        read here when not given; see `Replication.syncing`)."""
        return self.replication.syncing(asyncio.get_running_loop().time() if now is None else now)

    def frame_limit(self) -> int:
        return self.replication.frame_limit()

    def _receive(self, link: Link, raw: str | bytes) -> Incoming | None:
        """Count, rate-limit and parse a frame; start checking its signatures on a worker thread."""
        self.seed.frames.received += 1
        now = Now.read()
        verdict = link.limit.check(now.mono)
        if verdict is not Verdict.ALLOW:
            link.feed.intact = False
            if verdict is Verdict.CUT:
                # what was dropped comes back with the next sync, when the link is redialled
                log.warning(
                    "closing the link with %s: it kept flooding after rate_limited", link.name
                )
                self.tasks.spawn(
                    close_now(link.ws, 1008, "rate limit exceeded repeatedly"), "cut a peer"
                )
                return None
            link.out.push(
                error_frame(
                    ErrorCode.RATE_LIMITED, "too many frames from this seed", readable_id(raw)
                )
            )
            return None
        try:
            frame = parse(SEED_LINK, raw)
        except ProtocolError as exc:
            link.feed.intact = False
            log.warning("bad frame from peer %s: %s", link.name, exc.message)
            link.out.push(error_frame(exc.code, exc.message, exc.frame_id))
            return None
        if isinstance(frame, Sync | Gossip | Ihave | Graft | Prune):
            return self.replication.receive(link, frame, len(raw), now)
        return Incoming(frame)

    async def _applier(self, link: Link) -> None:
        """Take a link's frames in the order they came: replication's once their signatures are
        checked, and lookups, answers and relays in their turn among them."""
        while True:
            incoming = await link.feed.incoming.get()
            checked = await incoming.checked if incoming.checked is not None else None
            now = Now.read()  # the frame's turn: what it is applied at
            if isinstance(incoming.frame, Sync | Gossip | Ihave | Graft | Prune):
                self.replication.apply(link, incoming, checked, now)
            else:
                self._answer(link, incoming.frame, now)

    def arriving(self, name: str) -> bool:
        """True while a peer's record for `name` is being checked (see `Replication.arriving`)."""
        return self.replication.arriving(name)

    async def settled(self, name: str) -> None:
        """Wait until the name is held here or no link is checking a record for it."""
        await self.replication.settled(name)

    def tally_of(self, key: str) -> dict[str, int | str]:
        """/health's counters for the link with `key`, and its mode in the broadcast tree."""
        return self.replication.tally_of(key)

    def _answer(self, link: Link, frame: object, now: Now) -> None:
        """A frame of the link itself: a peer's lookup, an answer to ours, a relay."""
        match frame:
            case Lookup():
                link.out.push(self.seed.lookup_reply(frame, now.wall))
            case Found():
                link.lookups.resolve(frame.id, frame)
            case Error():
                if not link.lookups.resolve(frame.id, None) and frame.code != ErrorCode.NOT_FOUND:
                    log.warning("peer %s reports %s: %s", link.name, frame.code, frame.message)
            case PeerRelay():
                self.seed.peer_relay(frame, link.key)
            case SeedWelcome():
                link.out.push(
                    error_frame(
                        ErrorCode.BAD_REQUEST, "seed_welcome only answers seed_hello", frame.id
                    )
                )

    # ------------------------------------------------------------------ gossip, lookups, relay

    def gossip(self, kind: str, text: str, rev: int, source: str | None = None) -> None:
        """Pass a change on to every peer but its source (see `Replication.gossip`)."""
        self.replication.gossip(kind, text, rev, source)

    async def ask_peers(self, name: str) -> Record | None:
        """Ask every peer at once with hops 0; the first `found` for that very name, whose record
        holds here, wins; silence means not found. One ask per name is in flight at a time, and
        each peer is asked within a budget well under its rate limit."""
        folded = fold_name(name)
        asking = self.asking.get(folded)
        if asking is not None:
            return await asyncio.shield(asking)
        fut: asyncio.Future[Record | None] = asyncio.get_running_loop().create_future()
        self.asking[folded] = fut
        try:
            record = await self._ask_peers(name)
            fut.set_result(record)
            return record
        except BaseException as exc:
            fut.set_exception(exc if isinstance(exc, Exception) else ConnectionLost("cancelled"))
            fut.exception()
            raise
        finally:
            del self.asking[folded]

    async def _ask_peers(self, name: str) -> Record | None:
        asked: list[tuple[Link, str, asyncio.Future[Found | None]]] = []
        now = asyncio.get_running_loop().time()
        for link in self.links.values():
            if not link.asks.allows(now):
                self.drop("peer_lookup_budget")
                continue
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
                    if found is None:
                        continue
                    if fold_name(found.record.name) != fold_name(name):
                        self.drop("wrong_name")
                        continue
                    record = await self._accept_found(found.record)
                    if record is not None:
                        return record
        except TimeoutError:
            pass
        finally:
            for link, fid, _ in asked:
                link.lookups.forget(fid)
        return None

    async def _accept_found(self, record: Record) -> Record | None:
        """A peer's answer goes through the directory rules before it is believed."""
        if not verify_record(record):
            self.drop(str(ErrorCode.BAD_SIGNATURE))
            return None
        key = self.seed.key
        merged = self.seed.merge(key, now_ms(), [record], [], [], [], verified=True)
        if merged.refused:
            self.drop(str(merged.refused[0][1].code))
        held = self.seed.record(record.name)
        return held if held is not None and held.key == record.key else None

    def relay(self, home_key: str, frame: PeerRelay) -> int:
        """Hand a relayed frame to the recipient's home seed; 1 when there is a link to it."""
        link = self.links.get(home_key)
        if link is None:
            return 0
        link.out.push(dump(frame))
        return 1

    def configured_keys(self) -> set[str]:
        """The keys this seed's own dials proved at the URLs of `peers`."""
        urls = self.urls
        return {s.key for u, s in urls.known.items() if u in urls.configured and s.key}

    def peer_names(self) -> set[str]:
        """The names of the seeds linked now (for people and tests; seeds are their keys)."""
        return {link.name for link in self.links.values()}

    def revision_of(self, key: str) -> int | None:
        """The revision a linked seed announced (None when it is not linked now)."""
        link = self.links.get(key)
        return link.revision if link is not None else None

    def name_of(self, key: str) -> str | None:
        known = self.known.get(key)
        return known.name if known is not None else None

    def seed_infos(self, room: int = MAX_FRAME - ENVELOPE) -> list[SeedInfo]:
        """This seed, then the seeds authenticated within a day, up or down: linked ones first,
        then the most recently proven; at most MAX_SEEDS_LISTED, within `room` bytes encoded."""
        now = now_ms()
        me = SeedInfo(
            name=self.seed.name, url=self.seed.url, key=self.seed.key, up=True, rtt_ms=0.0
        )
        listed: list[tuple[tuple[bool, int, str, str], SeedInfo]] = []
        for key, known in self.known.items():
            link = self.links.get(key)
            proven = self.urls.known.get(known.url)
            if proven is None or proven.key != key or not self.urls.fresh(known.url, now):
                continue  # listed only where this seed found that key itself, within a day
            rtt = round(link.ws.latency * 1000, 3) if link is not None and link.ws.latency else None
            info = SeedInfo(
                name=known.name, url=known.url, key=key, up=link is not None, rtt_ms=rtt
            )
            listed.append(((link is None, -proven.verified, known.name, key), info))
        listed.sort(key=lambda pair: pair[0])
        infos = [me, *(info for _, info in listed)]
        encoded = (info.model_dump_json() for info in infos)
        return infos[: max(1, fitting(encoded, room, MAX_SEEDS_LISTED))]
