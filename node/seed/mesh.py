"""Seed-to-seed links: dialling, the authenticated handshake, sync from `since`, gossip, peer lookups, relay.

Every seed dials every seed URL it learns from an authenticated peer, so the mesh becomes
complete and a dead seed never splits it; gossip is forwarded only when it changed this seed's
state, so it ends on any mesh. Between seeds that offer it, a change travels whole only along a
broadcast tree and as an id on a few other links (`broadcast`): each seed gets it about once.
A seed is its key: links, presence and sync points are kept by key, and a link exists only after
both sides signed the other's nonce. The mesh holds links, never directory state: what it
receives goes to its seed (`SeedSide`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections import Counter
from collections.abc import AsyncGenerator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed

from ..clock import now_ms
from ..config import SeedConfig
from ..crypto.keys import Identity
from ..crypto.signing import sign_seed_auth, verify_record, verify_session
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
    MailItem,
    PeerRelay,
    PresenceItem,
    Prune,
    Record,
    SeedHello,
    SeedInfo,
    SeedWelcome,
    SessionAuth,
    Sync,
    Taken,
    dump,
    error_frame,
    parse,
    readable_id,
)
from ..wire.sender import LINK_QUEUE_FRAMES, FrameCounts, Sender
from ..wire.sockets import DIAL_FAILED, address_group, close_now, dial, frames, pong
from . import broadcast, chunks
from .handshake import hello_problem, new_nonce, welcome_problem
from .store import SeedUrl
from .urls import UrlBook

log = quiet_logger("p2p.mesh")

HANDSHAKE_TIMEOUT = 5.0
SYNC_PAGE = 64  # mail items or takes read from the store at a time while a sync streams
PIPELINE = 8  # frames of one link parsed and being checked ahead of the one being applied
PEER_LOOKUP_RATE, PEER_LOOKUP_BURST = 20.0, 40.0  # lookups a second asked of one peer
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
DAY_MS = 86_400_000


@dataclass
class Merged:
    """What a batch from a peer changed here, and what was refused (counted, never forwarded)."""

    records: int = 0
    presence: int = 0
    mail: int = 0
    taken: int = 0
    refused: list[tuple[str, ProtocolError]] = field(default_factory=list)


class SeedSide(Protocol):
    """What the mesh needs of its seed: who it is, and the state it replicates."""

    name: str
    url: str
    config: SeedConfig
    frames: FrameCounts
    identity: Identity

    @property
    def key(self) -> str: ...

    def merge(
        self,
        link_key: str,
        records: list[Record],
        presence: list[PresenceItem],
        mail: list[MailItem],
        taken: list[Taken],
        verified: bool = False,
        auths_checked: dict[int, str] | None = None,
    ) -> Merged:
        """Apply what a peer sent under the rules of a user's own requests; what changed."""

    def merge_online_set(self, seed_key: str, online: dict[str, tuple[int, int]]) -> None:
        """A peer's sync named its whole online set."""

    def local_online(self) -> list[PresenceItem]:
        """This seed's own online users, each with its session auth."""

    def record(self, name: str) -> Record | None: ...

    def holds(self, record: Record) -> bool:
        """True when this very record is held already (dropped before its signature is checked)."""

    def key_of(self, name: str) -> str | None:
        """The key of the record held for `name`."""

    def check_online(
        self, item: PresenceItem, link_key: str, verified_with: str | None = None
    ) -> ProtocolError | None:
        """Why a peer's online item may not count, or None."""

    def lookup_reply(self, frame: Lookup) -> str:
        """The answer to a peer's `hops: 0` lookup, from this seed's own directory."""

    def home_lost(self, seed_key: str) -> None:
        """A home seed was unreachable for too long: its users now count as offline."""

    def home_back(self, seed_key: str) -> None:
        """A lost home seed linked again."""

    def current_rev(self) -> tuple[str, int]: ...

    def records_since(self, rev: int) -> Iterator[tuple[int, str]]:
        """(rev, JSON) of the records changed after `rev`, oldest change first, encoded as read."""

    async def mail_page(self, kind: str, rev: int, limit: int) -> list[tuple[int, str]]:
        """(rev, JSON) of at most `limit` mail items ("mail") or takes ("taken") changed after
        `rev`, oldest first: a sync reads the store a page at a time."""

    def peer_relay(self, frame: PeerRelay, link_key: str) -> None: ...

    def save_url(self, seed: SeedUrl) -> None: ...

    def forget_url(self, url: str) -> None: ...

    def save_sync_point(self, key: str, epoch: str, since: int) -> None: ...

    def count(self, what: str) -> None: ...

    def link_allows(self, link_key: str, kind: str, cost: float = 1.0) -> bool:
        """Spend `cost` of the link's budget for `kind` (names, presence, ...); False: dropped."""

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
        self.asks = RateLimit(
            PEER_LOOKUP_RATE, PEER_LOOKUP_BURST, asyncio.get_running_loop().time()
        )
        self.sync_online: dict[str, tuple[int, int]] = {}
        self.incoming: asyncio.Queue[Incoming] = asyncio.Queue(PIPELINE)
        # names of records received and not applied yet (their signatures are being checked)
        self.arriving: Counter[str] = Counter()
        self.inflight: Counter[str] = Counter()  # broadcast ids of items received, not applied
        # its presence items whose record is not held here yet (on its way by the tree), by name
        self.waiting: dict[str, list[tuple[PresenceItem, float]]] = {}
        self.synced = False  # its sync reached done: true
        self.since = asyncio.get_running_loop().time()  # when the link came up
        self.intact = True  # nothing it sent was refused: its revs may advance our sync point
        self.closed = asyncio.Event()
        self.revision = 2  # what the peer announced in its hello or welcome (r3)
        self.tree = False  # both sides offered the broadcast tree (r3): else it is flooded
        self.pinged: asyncio.Future[float | None] | None = None  # the seed's keepalive sweep

    def dialer_key(self, own_key: str) -> str:
        return own_key if self.dialed else self.key


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


MAX_TALLIED = 1_024  # seeds whose counters /health keeps (a stranger can mint keys)
PRESENCE_WAIT = 5.0  # seconds a presence item may wait for its name's record (on its way by tree)
MAX_WAITING = 200  # presence items of one tree link waiting at once


def check_signatures(records: list[Record], auths: list[tuple[int, SessionAuth, str]]) -> Checked:
    """Runs on a worker thread (Ed25519 verification releases the GIL): both cores check at once."""
    return Checked(
        records,
        [verify_record(r) for r in records],
        {ident: key for ident, auth, key in auths if verify_session(auth, key)},
    )


@dataclass
class KnownSeed:
    name: str
    url: str
    key: str
    seen: int  # when a handshake with it last succeeded (ms)


class _SelfDial(Exception):
    """The URL we dialled is this seed."""


class Mesh:
    """This seed's links to the others: dialling, the handshake, sync, gossip, lookups and relay."""

    def __init__(self, seed: SeedSide) -> None:
        self.seed = seed
        self.links: dict[str, Link] = {}  # by key
        self.known: dict[str, KnownSeed] = {}  # by key
        self.urls = UrlBook.create([], [], seed.config.max_seed_urls)
        self.self_urls: set[str] = set()
        self.dialers: dict[str, asyncio.Task[None]] = {}
        self.sync_points: dict[str, tuple[str, int]] = {}
        self.tasks = Tasks(log)
        self.unreachable: dict[str, asyncio.TimerHandle] = {}
        self.outgoing: list[tuple[str, str, int, str | None]] = []
        self.asking: dict[str, asyncio.Future[Record | None]] = {}
        self.pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="verify")
        self.flush_scheduled = False
        self.applied = asyncio.Event()  # set (and replaced) each time a link applies records
        self.dropped: dict[str, int] = {}
        self.tree = broadcast.Broadcast(seed.key)
        self.tallies: dict[str, Tally] = {}
        self.ticking: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ life cycle

    def start(
        self, configured: list[str], stored: list[SeedUrl], sync_points: dict[str, tuple[str, int]]
    ) -> None:
        self.self_urls.add(self.seed.url)
        self.sync_points = dict(sync_points)
        self.urls = UrlBook.create(configured, stored, self.seed.config.max_seed_urls)
        for seed in self.urls.known.values():
            if seed.learned == 0 and seed.url in self.urls.configured:
                self.seed.save_url(seed)
        for url in list(self.urls.known):
            self._dial_soon(url)

    async def stop(self) -> None:
        if self.ticking is not None:
            self.ticking.cancel()
        for task in self.dialers.values():
            task.cancel()
        for handle in self.unreachable.values():
            handle.cancel()
        for link in list(self.links.values()):
            await close_now(link.ws, 1001, "seed shutting down")
        await asyncio.gather(*self.dialers.values(), return_exceptions=True)
        await self.tasks.cancel_all()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def drop(self, what: str) -> None:
        self.dropped[what] = self.dropped.get(what, 0) + 1

    def learn(self, urls: Iterable[str], own_of: str | None = None) -> None:
        """URLs an authenticated peer passed on: keep within the bounds, dial the new ones."""
        wanted = [u for u in urls if u.rstrip("/") not in self.self_urls]
        added, evicted = self.urls.learn(wanted, now_ms(), own_of)
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
                auth = sign_seed_auth(
                    self.seed.identity,
                    True,
                    now_ms(),
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
                    seeds=self._passed_on(),
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
            problem = welcome_problem(reply, self.seed.key, challenge, hello_nonce, now_ms())
            if problem is not None:
                self.drop("bad_seed_auth")
                await close_now(ws, 1008, problem)
                raise ProtocolError(ErrorCode.BAD_SIGNATURE, problem)
        except BaseException:
            await close_now(ws, 1000, "")  # never waits for ever on a peer that does not read
            raise
        news = not self.urls.fresh(url, now_ms())
        self.urls.verified(url, reply.key, now_ms())
        if url in self.urls.configured:
            self.seed.first_proven(reply.key, url)
        self.seed.save_url(self.urls.known[url])
        self.learn(reply.seeds)
        if news:
            self._introduce(reply.key)
        link = Link(
            ws,
            Sender(
                ws, self.seed.config.link_queue_bytes, LINK_QUEUE_FRAMES, counts=self.seed.frames
            ),
            reply.name,
            url,
            reply.key,
            dialed=True,
            limit=self._limit(),
        )
        link.revision = reply.revision
        link.tree = self._offer() is not None and reply.broadcast == broadcast.PROTOCOL
        return link

    def _introduce(self, new_key: str) -> None:
        """A URL was proven for the first time: the seeds linked before learn it from a fresh hello
        (URL lists travel only in hellos and welcomes; the duplicate link is closed by the rule)."""
        for link in list(self.links.values()):
            if link.key != new_key and self.urls.fresh(link.url, now_ms()):
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

    def _passed_on(self) -> list[str]:
        """The URLs a hello or welcome carries: those configured, and those this seed dialled and
        found a seed's key at within a day. A URL a stranger merely claims is dialled here first.
        At most MAX_SEEDS_LISTED, configured and most recently proven first, within half a frame."""
        urls = [u for u in self.urls.listed(now_ms()) if u not in self.self_urls]
        encoded = (json.dumps(u) for u in urls)
        return urls[: fitting(encoded, self.frame_limit() // 2, MAX_SEEDS_LISTED)]

    def _offer(self) -> str | None:
        """The broadcast this seed offers in its hello and welcome (None: it floods, as r2)."""
        return broadcast.PROTOCOL if self.seed.config.broadcast_tree else None

    def _since(self, key: str) -> tuple[str, int] | None:
        return self.sync_points.get(key)

    def _limit(self) -> RateLimit:
        cfg = self.seed.config
        return RateLimit(cfg.peer_rate, cfg.peer_burst, asyncio.get_running_loop().time())

    async def accept(self, ws: Connection, hello: SeedHello, nonce: str, out: Sender) -> None:
        """A seed dialled us and answered our challenge: check its proof, welcome it, run the link."""
        problem = hello_problem(hello, self.seed.key, nonce, now_ms())
        if problem is not None:
            self.drop("bad_seed_auth")
            log.warning("refused a seed link from %s: %s", ws.remote_address, problem)
            await out.flush(1.0)
            await close_now(ws, 1008, problem)
            return
        auth = sign_seed_auth(
            self.seed.identity, False, now_ms(), hello.key, self.seed.key, nonce, hello.nonce
        )
        welcome = SeedWelcome(
            type="seed_welcome",
            id=hello.id,
            name=self.seed.name,
            url=self.seed.url,
            key=self.seed.key,
            seeds=self._passed_on(),
            since=self._since(hello.key),
            auth=auth,
            revision=REVISION,
            broadcast=self._offer(),
        )
        out.push(dump(welcome))
        # its own URL too: dialling it proves the URL reaches that key, then it is passed on
        peer = ws.remote_address
        self.learn([hello.url], own_of=address_group(str(peer[0])) if peer else "")
        self.learn(hello.seeds)
        out.bound(self.seed.config.link_queue_bytes, LINK_QUEUE_FRAMES)  # a link's, either way
        link = Link(
            ws, out, hello.name, hello.url.rstrip("/"), hello.key, dialed=False, limit=self._limit()
        )
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
            self.tasks.spawn(self._send_sync(link, since), f"sync to {link.name}")
            async for raw in frames(link.ws):
                incoming = self._receive(link, raw)
                if incoming is not None:
                    await link.incoming.put(incoming)
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
        self.tree.link_up(link.key, link.tree)
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
        if link.arriving:
            link.arriving.clear()
            self._applied()
        if self.links.get(link.key) is not link:
            return
        del self.links[link.key]
        if replaced:
            return
        self._send(self.tree.link_down(link.key))
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

    def syncing(self) -> bool:
        """True while some linked peer's sync is not done (a miss here may be a name not synced yet).

        A peer whose sync has not ended within ten lookup timeouts of its link no longer counts: a
        stranger that links and never finishes cannot make every miss wait on it.
        """
        now = asyncio.get_running_loop().time()
        patience = 10 * self.seed.config.lookup_timeout
        return any(not link.synced and now - link.since < patience for link in self.links.values())

    def frame_limit(self) -> int:
        return min(self.seed.config.max_frame, MAX_FRAME)

    async def _send_sync(self, link: Link, since: tuple[str, int] | None) -> None:
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

    def _receive(self, link: Link, raw: str | bytes) -> Incoming | None:
        """Count, rate-limit and parse a frame; start checking its signatures on a worker thread."""
        self.seed.frames.received += 1
        verdict = link.limit.check(asyncio.get_running_loop().time())
        if verdict is not Verdict.ALLOW:
            link.intact = False
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
            link.intact = False
            log.warning("bad frame from peer %s: %s", link.name, exc.message)
            link.out.push(error_frame(exc.code, exc.message, exc.frame_id))
            return None
        if isinstance(frame, Ihave | Graft | Prune):
            return self._ids_frame(link, frame, len(raw))
        if not isinstance(frame, Sync | Gossip):
            return Incoming(frame)
        ids: dict[int, str] = {}
        duplicates = 0
        if isinstance(frame, Gossip):
            frame, ids, duplicates = self._arrived(link, frame, len(raw))
        fresh = self._within_budget(link, [r for r in frame.records if not self.seed.holds(r)])
        if frame.presence:
            kept = [p for p in frame.presence if self._allows(link, "presence")]
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
        link.arriving.update(names)
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

    def _arrived(self, link: Link, frame: Gossip, size: int) -> tuple[Gossip, dict[int, str], int]:
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
        link.inflight.update(ids.values())
        return frame, ids, duplicates

    def _ids_frame(self, link: Link, frame: Ihave | Graft | Prune, size: int) -> Incoming | None:
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
        if frame.ids and not self._allows(link, "ids", float(len(frame.ids))):
            return None
        return Incoming(frame)

    def _allows(self, link: Link, kind: str, cost: float = 1.0) -> bool:
        """Spend `cost` of the link's `kind` budget; what is over it is dropped before its
        signatures are checked, and the link's sync point stays (it comes again with a sync)."""
        if self.seed.link_allows(link.key, kind, cost):
            return True
        link.intact = False
        self.drop("over_link_budget")
        return False

    def _within_budget(self, link: Link, records: list[Record]) -> list[Record]:
        """The records to check: updates of names held here, and new names within the link's
        budget of new names."""
        return [
            r
            for r in records
            if self.seed.key_of(r.name) is not None or self._allows(link, "names")
        ]

    async def _applier(self, link: Link) -> None:
        """Apply a link's frames in the order they came, each once its signatures are checked."""
        while True:
            incoming = await link.incoming.get()
            checked = await incoming.checked if incoming.checked is not None else None
            if isinstance(incoming.frame, Gossip):
                self._gossip_arrived(link, incoming.frame, incoming, checked)
            else:
                self._apply_frame(link, incoming.frame, checked)
            if incoming.names:
                link.arriving.subtract(incoming.names)
                link.arriving += Counter()  # drops the names that reached zero
                self._applied()

    def arriving(self, name: str) -> bool:
        """True while a peer's record for `name` is being checked: a miss now may be a name
        registered at another seed a moment ago, so the answer waits for it."""
        folded = fold_name(name)
        return any(link.arriving[folded] > 0 for link in self.links.values())

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

    def _apply_frame(self, link: Link, frame: object, checked: Checked | None) -> None:
        match frame:
            case Sync():
                self._apply(link, frame, checked, sync=True)
                if frame.done:
                    self.seed.merge_online_set(link.key, link.sync_online)
                    link.sync_online = {}
                    link.synced = True
                    self._advance(link, frame.rev)
            case Gossip():
                self._apply(link, frame, checked, sync=False)
                if link.synced:
                    self._advance(link, frame.rev)
            case Ihave():
                self.tree.announced(link.key, frame.ids, asyncio.get_running_loop().time())
                self._schedule()
            case Graft():
                items = self.tree.grafted(link.key, frame.ids)
                self._push_items(link, items)
            case Prune():
                self._send(self.tree.pruned(link.key))
            case Lookup():
                link.out.push(self.seed.lookup_reply(frame))
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

    def _gossip_arrived(
        self, link: Link, frame: Gossip, incoming: Incoming, checked: Checked | None
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
        link.inflight.subtract(incoming.ids.values())
        link.inflight += Counter()  # drops the ids that reached zero
        self._apply_frame(link, frame, checked)
        self._send(self.tree.received(link.key, duplicates))

    def _advance(self, link: Link, rev: tuple[str, int]) -> None:
        """Everything of the peer up to `rev` is applied here: resume from there next time."""
        if not link.intact:
            return
        self.sync_points[link.key] = rev
        self.seed.save_sync_point(link.key, rev[0], rev[1])

    def _apply(self, link: Link, frame: Sync | Gossip, checked: Checked | None, sync: bool) -> None:
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
        presence = self._wait_for_records(link, presence, verified)
        merged = self.seed.merge(
            link.key, verified, presence, frame.mail, frame.taken, True, auths_ok
        )
        for name, exc in merged.refused:
            self._refused(link, name, exc)
        if merged.records:
            self._records_came()
        for item in mine:
            problem = self.seed.check_online(item, link.key, auths_ok.get(id(item)))
            if problem is not None:
                self._refused(link, item.name, problem)
                continue
            if item.auth is None:  # check_online refuses an online item without its auth
                continue
            link.sync_online[fold_name(item.name)] = (item.at, item.auth.at)
        for item in presence:
            self.watch_reachability(item.seed_key)

    def _wait_for_records(
        self, link: Link, presence: list[PresenceItem], records: list[Record]
    ) -> list[PresenceItem]:
        """Presence goes one hop from its home, a new name's record along the tree: on a tree
        link, the home's own item whose record is not held yet waits for it (up to
        PRESENCE_WAIT, MAX_WAITING items a link), instead of being refused as not_found."""
        if not presence or not link.tree:
            return presence
        coming = {fold_name(r.name) for r in records}
        now = asyncio.get_running_loop().time()
        self._expire_waiting(link, now)
        held = sum(len(v) for v in link.waiting.values())
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
            link.waiting.setdefault(folded, []).append((item, now))
            held += 1
        return ready

    def _expire_waiting(self, link: Link, now: float) -> None:
        for folded, items in list(link.waiting.items()):
            kept = [w for w in items if now - w[1] < PRESENCE_WAIT]
            for _ in range(len(items) - len(kept)):
                self.drop(str(ErrorCode.NOT_FOUND))
            if kept:
                link.waiting[folded] = kept
            else:
                del link.waiting[folded]

    def _records_came(self) -> None:
        """Records were applied: presence that waited for them is applied now, as from the link
        it came on (its session auth is checked then)."""
        for link in list(self.links.values()):
            for folded in [f for f in link.waiting if self.seed.key_of(f) is not None]:
                items = [item for item, _ in link.waiting.pop(folded)]
                merged = self.seed.merge(link.key, [], items, [], [])
                for name, exc in merged.refused:
                    self._refused(link, name, exc)

    def _refused(self, link: Link, name: str, exc: ProtocolError) -> None:
        if exc.code == ErrorCode.RATE_LIMITED:  # over the link's budget: it comes again by sync
            link.intact = False
        self.drop(str(exc.code))
        log.debug("dropped an item for %r from peer %s: %s", name, link.name, exc.message)

    # ------------------------------------------------------------------ gossip, lookups, relay

    def gossip(self, kind: str, text: str, rev: int, source: str | None = None) -> None:
        """Queue a change for every peer but its source (whole on tree links that are eager, as
        an id on a few lazy ones); a loop turn's changes go out together. It is seen here from
        now: another copy arriving counts as a duplicate."""
        self.tree.see(broadcast.item_id(kind, text))
        self.outgoing.append((kind, text, rev, source))
        if not self.flush_scheduled:
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_scheduled = False
        batch, self.outgoing = self.outgoing, []
        self._send(self.tree.spread(batch, asyncio.get_running_loop().time()))

    def _push_items(self, link: Link, items: list[broadcast.Item]) -> None:
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
        return any(link.inflight[ident] > 0 for link in self.links.values())

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
        merged = self.seed.merge(key, [record], [], [], [], verified=True)
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
