"""The seed server: every socket gets a challenge; users register with a session proof, look names
up, watch presence, publish, relay and hold mail; a socket that says `seed_hello` becomes a link.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

from websockets.asyncio.server import Server, ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from .. import __version__
from ..clock import Now, now_ms
from ..config import SeedConfig
from ..crypto.keys import Identity, b64
from ..errors import ErrorCode, ProtocolError, StoreError
from ..runtime import LogLimiter, Service, Tasks, quiet_logger, quiet_loop_errors, raise_file_limit
from ..storage.files import default_data_dir, secure_dir
from ..wire.fastcodec import parse_to_seed, registered_text
from ..wire.limits import RateLimit, Verdict
from ..wire.names import fold_name
from ..wire.protocol import (
    REVISION,
    Deposit,
    Found,
    Lookup,
    MailItem,
    PeerRelay,
    PresenceItem,
    Publish,
    Published,
    Record,
    Register,
    Relay,
    SeedHello,
    SeedList,
    Seeds,
    SessionAuth,
    Take,
    Taken,
    Watch,
    Watching,
    dump,
    error_frame,
    readable_id,
)
from ..wire.relay_text import relay_text
from ..wire.sender import FrameCounts, Sender
from ..wire.sockets import (
    SERVER_OPTIONS,
    AddressGate,
    address_group,
    close_now,
    frames,
    gated,
    listen,
    listen_url,
    pong,
    shut,
)
from .admission import BEFORE_SYNC, Admission, Refused, Stage
from .budgets import DAY_MS, Budget, FirstSeen, LinkAccounts
from .directory import Directory, Outcome
from .fleet import Fleet
from .handshake import challenge_frame, new_nonce, session_auth_problem, session_claims_problem
from .mailbox import Mailbox, MailLimits
from .mesh import Link, Mesh
from .post import Post
from .presence import PresenceCore, Said, Told
from .replication import Merged
from .revs import Revs
from .storage.base import SeedStorage, Stored
from .storage.sqlite import SqliteStorage
from .store import SeedStore, SeedUrl
from .verifier import Signatures, Verifier
from .watchers import Watchers

log = quiet_logger("p2p.seed")

LISTENING = "seed %s listening on %s (key %s, %d records)"


# frames a socket may have waiting behind registers being checked before it is read no further
IN_FLIGHT = 64
# what a user's socket sends a seed, after the seed link's hello
Frame = Register | Lookup | Seeds | Watch | Publish | Relay | Deposit | Take


def listening_url(line: str) -> str | None:
    """The URL in a seed's LISTENING log line (how tools that start a seed learn where it is)."""
    match = re.search(r" listening on (\S+) \(key ", line)
    return match.group(1) if match else None


class Session:
    """One socket: its challenge, outgoing queue, rate bucket, and the name it proved it holds."""

    __slots__ = (
        "ws",
        "out",
        "limit",
        "nonce",
        "folded",
        "key",
        "auth",
        "pinged",
        "relay_budget",
        "publish_budget",
        "mail_backlog",
        "in_order",
    )

    def __init__(
        self, ws: ServerConnection, limit: RateLimit, counts: FrameCounts, queue_bytes: int
    ) -> None:
        self.ws = ws
        self.out = Sender(ws, max_bytes=queue_bytes, counts=counts)
        self.limit = limit
        self.nonce = new_nonce()
        self.folded: str | None = None  # set once a register's session auth verified
        self.key: str | None = None
        self.auth: SessionAuth | None = None
        self.pinged: asyncio.Future[float | None] | None = None
        self.relay_budget: RateLimit | None = None
        self.publish_budget: RateLimit | None = None  # records a second this socket may publish
        # mail committed for this user while what was held is being handed over: it goes after
        # that, so the user gets its mail oldest first (None once handed over)
        self.mail_backlog: list[str] | None = None
        # frames waiting behind a register whose signatures a worker thread checks, in the order
        # they came (None when nothing waits)
        self.in_order: deque[tuple[asyncio.Future[Signatures | None] | None, Frame]] | None = None

    @property
    def host(self) -> str:
        peer = self.ws.remote_address
        return str(peer[0]) if peer else ""


class Seed(Service):
    """A seed node; `async with Seed(config) as seed:` serves until the block ends."""

    def __init__(self, config: SeedConfig) -> None:
        self.config = config
        self.directory = Directory(
            lease_ms=int(config.lease_days * 86_400_000),
            claim_window_ms=int(config.claim_window * 1000),
            max_items_per_seed=config.max_presence_per_peer,
            session_max_age_ms=int(config.session_max_age * 1000),
        )
        self.sessions: set[Session] = set()
        self.bound: dict[str, Session] = {}  # folded name -> the socket that proved it holds it
        self.watchers: Watchers[Session] = Watchers(config.max_watch)
        self.unsynced: dict[str, asyncio.Future[None]] = {}
        self.gate = AddressGate(config.max_connections_per_address)
        self.started = time.monotonic()
        # r3: a seed with peers configured takes no name it cannot check before a first sync
        self.admission = Admission(
            self.directory,
            config.new_names_per_minute,
            config.first_sync_wait,
            self.started,  # the loop's clock is time.monotonic()
            synced=not config.peers,
        )
        self.frames = FrameCounts()
        self.tasks = Tasks(log)
        self.quiet = LogLimiter()
        self.refused: dict[str, int] = {}
        self.links = LinkAccounts(
            _budget(config, "peer_link"),
            _budget(config, "stranger_link"),
            (config.relay_rate, config.relay_burst),
        )
        self.publish_verified = 0  # records of publishes whose signature was checked
        self.active = 0
        self.server: Server | None = None
        self.fleet: Fleet | None = None  # set when the state lives in a fleet's NATS cluster
        # where records and mail live: this seed's SQLite database, or the fleet's cluster
        self.storage: SeedStorage
        self.name = ""
        self.url = ""
        self.port = 0

    @property
    def key(self) -> str:
        return self.identity.key

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        cfg = self.config
        raise_file_limit()
        quiet_loop_errors(asyncio.get_running_loop(), self.quiet)
        self.server = await listen(
            self._handle,
            cfg.host,
            cfg.port,
            process_request=self._process_request,
            max_size=cfg.max_frame,
            ping_interval=None,  # one sweeper pings every socket instead of a task per socket
            open_timeout=5,
            **{**SERVER_OPTIONS, "create_connection": gated(self.gate)},
        )
        self.port, bound_url = listen_url(self.server, cfg.host)
        self.url = cfg.url or bound_url
        self.name = cfg.seed_name(self.port)
        self.data_dir: Path = cfg.data_dir or default_data_dir("seeds", self.name)
        secure_dir(self.data_dir)
        self.identity = Identity.load_or_create(self.data_dir)
        self.store = SeedStore(self.data_dir / "directory.sqlite3")
        epoch, reserved = self.store.epoch_and_reserved()
        self.revs = Revs(epoch, reserved)
        self.presence = PresenceCore(
            self.directory, self.watchers, self.bound, self.key, self.name, self.seed_label
        )
        loaded = 0
        for record, renewed, claimed, rev in self.store.load_records():
            self.directory.load(record, renewed, claimed, rev)
            loaded += 1
        self.store.save_reserved_now(self.revs.first_reservation())
        limits = MailLimits(
            per_recipient_items=cfg.mail_per_recipient,
            per_recipient_bytes=cfg.mail_per_recipient_bytes,
            per_sender_items=cfg.mail_per_sender,
            per_sender_bytes=cfg.mail_per_sender_bytes,
            per_pair_items=cfg.mail_per_pair,
            per_pair_bytes=cfg.mail_per_pair_bytes,
            seed_bytes=cfg.mail_max_bytes,
            days=cfg.mail_days,
            new_sender_items=cfg.mail_new_sender,
            new_sender_bytes=cfg.mail_new_sender_bytes,
            sender_grown_days=cfg.mail_sender_grown_days,
        )
        self.first_seen = FirstSeen(self.store.load_first_seen(), int(cfg.stranger_days * DAY_MS))
        self.mailbox = Mailbox(self.store, limits)
        self.mailbox.load()
        # read before the commit thread starts: it shares this connection (a fleet's start awaits)
        seed_urls, sync_points = self.store.load_seed_urls(), self.store.load_sync_points()
        self.store.start()
        self.storage = SqliteStorage(self.store, self.mailbox, self.next_rev)
        self.mesh = Mesh(self)
        # registrations' signatures, off the loop, on the pool that checks what peers send
        self.verifier = Verifier(self.mesh.replication.pool)
        self.post = Post(self)
        if cfg.storage != "sqlite":
            self.fleet = await Fleet.join(self, cfg.storage, limits)
            self.storage = self.fleet.storage
            await self.fleet.start()
        self.mesh.start(cfg.peers, seed_urls, sync_points)
        for url in self.mesh.urls.configured:  # keys proven at configured URLs before first-seen
            known = self.mesh.urls.known.get(url)  # was kept (a store from before revision 3)
            if known is not None and known.key and known.verified:
                self.first_proven(known.key, url, known.verified)
        self.tasks.spawn(self._keepalive(), "keepalive sweeper")
        self.tasks.spawn(self._housekeeping(), "housekeeping")
        log.info(LISTENING, self.name, self.url, self.identity.fingerprint, loaded)

    async def _keepalive(self) -> None:
        """Every `ping_interval` seconds, drop the sockets (users' and seed links') that did not
        answer the previous ping, and ping the others.

        Each ping runs on its own (`pong`), so a socket whose write buffer is full holds up only
        its own ping: the sweep never waits on a socket, and that one is dropped at the next.
        """
        while True:
            await asyncio.sleep(self.config.ping_interval)
            holders: list[Session | Link] = [*self.sessions, *self.mesh.links.values()]
            for holder in holders:
                if holder.pinged is not None and not holder.pinged.done():
                    # a dead peer cannot answer a close handshake either: drop the connection now
                    log.debug("closing %s: keepalive ping timeout", holder.ws.remote_address)
                    holder.pinged = None
                    holder.ws.transport.abort()
                    continue
                holder.pinged = asyncio.ensure_future(pong(holder.ws))

    async def _housekeeping(self) -> None:
        """Once a minute: expire mail and takes, forget idle per-address buckets."""
        while True:
            await asyncio.sleep(60)
            now = Now.read()
            self.presence_changed(self.directory.expire_sessions(now.wall, self.key), now.wall)
            self.links.forget_idle(now.mono)
            self.admission.forget_idle(now.mono)
            if self.fleet is None or self.fleet.sweeps():
                try:
                    await self.storage.mail.expire(now.wall)
                except StoreError as exc:
                    log.warning("mail expiry: %s", exc)

    async def stop(self) -> None:
        """Close every socket with 1001, stop dialling, and flush the store."""
        await self.tasks.cancel_all()
        if self.fleet is not None:
            await self.fleet.stop()
        await self.mesh.stop()
        if self.server is not None:
            await shut(self.server, 1001, "seed shutting down")
        await self.store.close()
        log.info("seed %s stopped", self.name)

    def next_rev(self) -> int:
        """The next change number, reserving a higher ceiling on disk when half the block is used."""
        rev = self.revs.next()
        ceiling = self.revs.reservation_due()
        if ceiling is not None:
            fut = self.store.save_reserved(ceiling)
            fut.add_done_callback(
                lambda f: (
                    self.revs.reserved(ceiling)
                    if not f.cancelled() and f.exception() is None
                    else None
                )
            )
        return rev

    def count(self, what: str) -> None:
        """Count something refused or dropped (shown in /health)."""
        self.refused[what] = self.refused.get(what, 0) + 1

    def trusted(self, key: str, now: int | None = None) -> bool:
        """Whether a linked seed gets a configured peer's budgets (else a stranger's): its key
        was proven at a URL in `peers`, and it is the first key proven there or was first
        proven more than `stranger_days` ago (at `now`, default the clock's). This seed itself
        is trusted."""
        if key == self.key:
            return True
        at = now_ms() if now is None else now
        return self.first_seen.trusted(key, self.mesh.configured_keys(), at)

    def first_proven(self, key: str, url: str, at: int | None = None) -> None:
        """A dial of configured `url` proved `key` (at `at`, default now): note when, the first
        time."""
        at = now_ms() if at is None else at
        if self.first_seen.note(key, url, at):
            self.store.save_first_seen(key, url, at)

    def link_budgets(self) -> dict[str, object]:
        """Per linked seed (and each that had something dropped lately): its tier and drops."""
        keys = list(self.mesh.links) + [k for k in self.links.dropped if k not in self.mesh.links]
        return {
            key: {
                "name": self.mesh.name_of(key),
                "up": key in self.mesh.links,
                "stranger": not self.trusted(key),
                "over_budget": dict(self.links.dropped.get(key, {})),
            }
            for key in keys
        }

    # ------------------------------------------------------------------ HTTP side

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?", 1)[0] == "/health":
            response = connection.respond(200, json.dumps(self.health()) + "\n")
            response.headers["Content-Type"] = "application/json"
            return response
        if self.active >= self.config.max_connections:
            return connection.respond(
                503,
                f"seed {self.name} is at its limit of {self.config.max_connections} "
                "connections; try another seed\n",
            )
        return None

    def health(self) -> dict[str, object]:
        return {
            "name": self.name,
            "url": self.url,
            "key": self.key,
            "version": __version__,
            "users_known": len(self.directory),
            "users_online": self.directory.online_count(),
            "users_here": len(self.bound),
            "connections": self.active,
            "peers": [
                {"name": s.name, "url": s.url, "key": s.key, "up": s.up}
                | {"revision": self.mesh.revision_of(s.key)}
                | self.mesh.tally_of(s.key)
                for s in self.mesh.seed_infos()[1:]
            ],
            "revision": REVISION,
            "synced": self.synced_once,
            "seed_urls": self.mesh.urls.summary(),
            "mail_held": self.mailbox.held_count(),
            "storage": "sqlite" if self.fleet is None else "nats",
            "fleet_seeds": sorted(self.fleet.members) if self.fleet is not None else [],
            "dropped_records": {str(code): n for code, n in self.mesh.dropped.items()},
            "refused": dict(self.refused),
            "link_budgets": self.link_budgets(),
            "publish_verified": self.publish_verified,
            "sockets_refused_per_address": self.gate.refused,
            "rev": list(self.revs.current()),
            "frames": {"received": self.frames.received, "sent": self.frames.sent},
            "closed_too_slow": self.frames.too_slow,
            "uptime_s": round(time.monotonic() - self.started, 1),
        }

    # ------------------------------------------------------------------ sockets

    async def _handle(self, ws: ServerConnection) -> None:
        self.active += 1
        loop = asyncio.get_running_loop()
        session = Session(
            ws,
            RateLimit(self.config.rate, self.config.burst, loop.time()),
            self.frames,
            self.config.queue_bytes,
        )
        self.sessions.add(session)
        session.out.push(challenge_frame(session.nonce, self.name, self.key))
        try:
            async for raw in frames(ws):
                self.frames.received += 1
                now = Now.read()  # the one reading of the clocks this frame is handled at
                verdict = session.limit.check(now.mono)
                if verdict is not Verdict.ALLOW:
                    if verdict is Verdict.CUT:
                        log.warning(
                            "closing %s: kept flooding after %d rate_limited answers",
                            ws.remote_address,
                            session.limit.refused - 1,
                        )
                        await session.out.flush(1.0)  # its answers so far, if it reads them
                        await close_now(ws, 1008, "rate limit exceeded repeatedly")
                        return
                    session.out.push(
                        error_frame(
                            ErrorCode.RATE_LIMITED, "too many frames; slow down", readable_id(raw)
                        )
                    )
                    continue
                if session.in_order is None and self.fleet is None:
                    fast = relay_text(raw)  # a relay forwarded as it came, when it is exact
                    if fast is not None:
                        self.post.relay_text(session, fast)
                        continue
                try:
                    frame = parse_to_seed(raw)
                except ProtocolError as exc:
                    session.out.push(error_frame(exc.code, exc.message, exc.frame_id))
                    continue
                if isinstance(frame, SeedHello):
                    await self._settled(session, 1)
                    if session.folded is not None:
                        session.out.push(
                            error_frame(
                                ErrorCode.BAD_REQUEST,
                                "a user's socket cannot become a seed link",
                                frame.id,
                            )
                        )
                        continue
                    self._drop(session)
                    await self.mesh.accept(ws, frame, session.nonce, session.out)
                    return
                self._in_order(session, frame, now)
                await self._settled(session, IN_FLIGHT)
        except ConnectionClosed:
            pass
        finally:
            self.active -= 1
            self._drop(session)

    def _dispatch(
        self,
        session: Session,
        frame: Register | Lookup | Seeds | Watch | Publish | Relay | Deposit | Take,
        now: Now,
    ) -> None:
        if self.fleet is not None:
            # a fleet's records are read fresh from its bucket before the frame is handled
            names = {
                Register: lambda f: [f.record.name],
                Lookup: lambda f: [f.name],
                Relay: lambda f: [f.to],
                Deposit: lambda f: [f.item.to, f.item.from_],
                Take: lambda f: [f.taken.to],
                Publish: lambda f: [r.name for r in f.records[:64]],
                Seeds: lambda f: [],
                Watch: lambda f: [],
            }[type(frame)](frame)
            # handled when they are read: the time is read again then
            self.fleet.then(names, lambda: self._handle_frame(session, frame, Now.read()), session)
            return
        self._handle_frame(session, frame, now)

    def _handle_frame(
        self,
        session: Session,
        frame: Register | Lookup | Seeds | Watch | Publish | Relay | Deposit | Take,
        now: Now,
    ) -> None:
        match frame:
            case Register():
                self._register(session, frame, now)
            case Lookup():
                self._lookup(session, frame, now)
            case Seeds():
                session.out.push(
                    dump(SeedList(type="seed_list", id=frame.id, seeds=self.mesh.seed_infos()))
                )
            case Watch():
                self._watch(session, frame, now)
            case Publish():
                self._publish(session, frame, now)
            case Relay():
                self.post.relay(session, frame)
            case Deposit():
                self.post.deposit(session, frame)
            case Take():
                self.post.take(session, frame)

    def _drop(self, session: Session) -> None:
        if session not in self.sessions:
            return
        self.sessions.discard(session)
        self.watchers.drop(session)
        self._spread(self.presence.unbind(session, now_ms()))

    # ------------------------------------------------------------------ register

    @property
    def synced_once(self) -> bool:
        """A sync with a peer reached its end (or no peers are configured): new names are
        checked against what the mesh holds."""
        return self.admission.synced_once

    def _auth_problem(
        self,
        session: Session,
        record: Record,
        auth: SessionAuth,
        now: int,
        signed: bool | None = None,
    ) -> str | None:
        """Why the session auth does not prove this socket holds the record's key, or None
        (`signed`: its signature was checked already, off the loop)."""
        last_at = session.auth.at if session.auth is not None else None
        return session_auth_problem(auth, record, self.key, session.nonce, last_at, now, signed)

    def _auth_claims_problem(
        self, session: Session, record: Record, auth: SessionAuth, now: int
    ) -> str | None:
        """Why the session auth's claims (name, seed, challenge, time) do not fit, or None."""
        last_at = session.auth.at if session.auth is not None else None
        return session_claims_problem(auth, record, self.key, session.nonce, last_at, now)

    def _in_order(self, session: Session, frame: Frame, now: Now) -> None:
        """Handle a frame now, or after the registers before it on this socket: a register's
        signatures are checked on a worker thread while the socket's next frames are read."""
        fut = self._signatures(session, frame, now) if isinstance(frame, Register) else None
        if session.in_order is None:
            if fut is None:
                self._dispatch(session, frame, now)
                return
            session.in_order = deque()
        session.in_order.append((fut, frame))
        if fut is not None:
            fut.add_done_callback(lambda _: self._run_in_order(session))

    def _run_in_order(self, session: Session) -> None:
        """Handle the frames waiting on this socket up to the first whose signatures are not
        checked yet (a closed socket's are dropped), at the time they are handled."""
        waiting = session.in_order
        now = Now.read()
        while waiting:
            fut, frame = waiting[0]
            if fut is not None and not fut.done():
                return
            waiting.popleft()
            if session not in self.sessions:
                continue
            if isinstance(frame, Register):
                signed = None if fut is None or fut.cancelled() else fut.result()
                self._register(session, frame, now, signed)
            else:
                self._dispatch(session, frame, now)
        if session.in_order is waiting:
            session.in_order = None

    async def _settled(self, session: Session, most: int) -> None:
        """Wait until fewer than `most` frames wait on this socket (it reads no more until then)."""
        while session.in_order is not None and len(session.in_order) >= most:
            head = session.in_order[0][0]
            if head is not None:
                await asyncio.shield(head)
            self._run_in_order(session)

    def _signatures(
        self, session: Session, frame: Register, now: Now
    ) -> asyncio.Future[Signatures | None] | None:
        """A register's signatures, being checked on a worker thread (None: checked inline, as a
        register that fails on a cheaper rule never costs a signature check)."""
        record, auth = frame.record, frame.auth
        if session.folded is not None and (
            session.folded != fold_name(record.name) or session.key != record.key
        ):
            return None
        if self._auth_claims_problem(session, record, auth, now.wall) is not None:
            return None
        return self.verifier.check(None if self.holds(record) else record, auth, record.key)

    def _register(
        self, session: Session, frame: Register, now: Now, signed: Signatures | None = None
    ) -> None:
        record, auth = frame.record, frame.auth
        folded = fold_name(record.name)
        if session.folded is not None and (session.folded != folded or session.key != record.key):
            bound = self.directory.display_name(session.folded)
            session.out.push(
                error_frame(
                    ErrorCode.BAD_REQUEST,
                    f"this socket is registered as {bound!r} under its key; open another socket "
                    "to register another name or key",
                    frame.id,
                )
            )
            return
        problem = self._auth_problem(
            session, record, auth, now.wall, None if signed is None else signed.session
        )
        if problem is not None:
            self.count("bad_session_auth")
            session.out.push(error_frame(ErrorCode.BAD_SIGNATURE, problem, frame.id))
            return
        verified = signed is not None and signed.record is True
        group = address_group(session.host)
        taken = self.admission.admit(record, group, now, self.mesh.syncing(now.mono), verified)
        if isinstance(taken, Refused):
            if taken.stage is not Stage.DIRECTORY:
                self.count(taken.stage.value)
            session.out.push(error_frame(taken.code, taken.message, frame.id))
            return
        if taken.changed:
            self.record_changed(record, now.wall, taken.loser)
        first = session.auth is None
        if first:
            session.mail_backlog = []
        self._bind(session, folded, record.key, auth, now.wall)
        reply = registered_text(frame.id, self.name)
        pending = self.unsynced.get(folded)
        if pending is None:
            self._registered(session, reply, first)
            return

        def durable(fut: asyncio.Future[None]) -> None:
            """Answer once the record is on disk (an identical resend waits for the first copy's commit)."""
            if fut.cancelled() or fut.exception() is not None:
                session.mail_backlog = None
                exc = None if fut.cancelled() else fut.exception()
                if isinstance(exc, ProtocolError):  # a fleet's bucket held a newer record
                    session.out.push(error_frame(exc.code, exc.message, frame.id))
                    return
                session.out.push(
                    error_frame(
                        ErrorCode.INTERNAL,
                        "the record could not be stored; retry",  # why is in the log
                        frame.id,
                    )
                )
            else:
                self._registered(session, reply, first)

        pending.add_done_callback(durable)

    def _registered(self, session: Session, reply: str, first: bool) -> None:
        """Answer a registration; a session's first one is followed by the mail held for it."""
        session.out.push(reply)
        if first and session.folded is not None and session in self.sessions:
            self.tasks.spawn(self.post.hand_over_mail(session), f"mail for {session.folded}")

    def _bind(self, session: Session, folded: str, key: str, auth: SessionAuth, now: int) -> None:
        """This socket proved it holds the name: bind it, replacing an older session here."""
        self._spread(self.presence.bind(session, folded, key, auth, now))

    def record_changed(
        self, record: Record, now: int, loser: str | None, source: str | None = None
    ) -> None:
        """A record was accepted: number it, persist it, gossip it; tell a local loser of the name."""
        folded = fold_name(record.name)
        rev = self.next_rev()
        self.directory.stamp(folded, rev)
        entry = self.directory.entries[folded]
        self.persist(record, folded, entry.renewed, entry.claimed, rev, now)
        self.mesh.gossip("records", dump(record), rev, source)
        if loser is not None:
            self._spread(self.presence.lost(folded, loser, now))

    def persist(
        self, record: Record, folded: str, renewed: int, claimed: int, rev: int, now: int
    ) -> None:
        """Hand a record to the storage; replies for it wait on `unsynced` until it is durable."""
        accepted = Stored(record, renewed, claimed, rev)
        fut = self.storage.records.save(folded, accepted, now, self.directory.lease_ms)
        self.unsynced[folded] = fut

        def done(f: asyncio.Future[None]) -> None:
            if self.unsynced.get(folded) is f:
                del self.unsynced[folded]
            if not f.cancelled():
                f.exception()  # retrieved: failures are logged by the committer

        fut.add_done_callback(done)

    def _publish(self, session: Session, frame: Publish, now: Now) -> None:
        """Records a socket holds (a user's contacts' last records): the record rules, not the
        session's. Each record spends the socket's publish budget; one held already (the same
        bytes) or older than the one held costs no signature check."""
        loop_now = now.mono
        if session.publish_budget is None:
            cfg = self.config
            session.publish_budget = RateLimit(cfg.publish_rate, cfg.publish_burst, loop_now)
        if not session.publish_budget.allows(loop_now, len(frame.records)):
            # and its records are charged to the socket's frame budget: a socket that keeps on
            # has its next frames refused before they are parsed, then is cut like any flooder
            session.limit.check(loop_now, float(len(frame.records)))
            self.count("publish_rate_limited")
            session.out.push(
                error_frame(
                    ErrorCode.RATE_LIMITED, "publish budget spent; publish less often", frame.id
                )
            )
            return
        accepted = 0
        unchecked = 0
        group = address_group(session.host)
        syncing = self.mesh.syncing(now.mono)
        for record in frame.records:
            entry = self.directory.entries.get(fold_name(record.name))
            if entry is not None and entry.same_as(record):
                accepted += 1
                continue
            if entry is not None and b64(entry.key) == record.key and record.seq <= entry.seq:
                self.count("published_refused")  # stale: refused before its signature is checked
                continue
            taken = self.admission.admit(record, group, now, syncing)
            if isinstance(taken, Refused) and taken.stage is not Stage.DIRECTORY:
                self.count(taken.stage.value)  # refused before its signature is checked
                unchecked += taken.stage is Stage.BEFORE_SYNC
                continue
            self.publish_verified += 1
            if isinstance(taken, Refused):
                self.count("published_refused")
                continue
            if taken.changed:
                self.record_changed(record, now.wall, taken.loser)
            accepted += 1
        if unchecked:
            # the records it holds were taken; the rest are worth handing over again shortly
            session.out.push(error_frame(ErrorCode.OFFLINE, BEFORE_SYNC, frame.id))
            return
        session.out.push(dump(Published(type="published", id=frame.id, accepted=accepted)))

    # ------------------------------------------------------------------ presence

    def _spread(self, said: Said[Session] | None) -> None:
        """This seed is the authority for its own users: apply its word on one (`PresenceCore`):
        close the sockets let go, spread the item to the mesh (and the fleet), tell the watchers."""
        if said is None:
            return
        for session, code, reason in said.closed:
            self.tasks.spawn(close_now(session.ws, code, reason), f"close: {reason}")
        item = said.item
        self.mesh.gossip("presence", dump(item), self.next_rev())
        if self.fleet is not None:
            self.fleet.presence(said.folded, item.online, item.at, item.auth.at if item.auth else 0)
        self._tell(said.told)

    def local_online(self) -> list[PresenceItem]:
        sessions = ((folded, session.auth) for folded, session in self.bound.items())
        return self.presence.online(sessions, now_ms())

    def presence_changed(self, names: Iterable[str], now: int | None = None) -> None:
        """Push the effective presence of each watched name whose state changed (as of `now`,
        default the clock's)."""
        self._tell(self.presence.changed(names, now_ms() if now is None else now))

    def _tell(self, told: Told[Session]) -> None:
        for session, text in told.frames:
            session.out.push(text)

    def seed_label(self, key: str | None) -> str | None:
        """The name shown for a home seed known by its key."""
        if key is None:
            return None
        if key == self.key:
            return self.name
        if self.fleet is not None and key in self.fleet.members:
            return self.fleet.storage.presence.name_of(key)
        return self.mesh.name_of(key)

    def _watch(self, session: Session, frame: Watch, now: Now) -> None:
        spellings = {fold_name(n): n for n in frame.names}
        told = self.presence.watch(session, spellings, now.wall)
        if told is None:
            session.out.push(
                error_frame(
                    ErrorCode.BAD_REQUEST,
                    f"a connection may watch at most {self.config.max_watch} names "
                    f"(this one watches {self.watchers.count(session)})",
                    frame.id,
                )
            )
            return
        session.out.push(dump(Watching(type="watching", id=frame.id)))
        self._tell(told)

    def newer_session_elsewhere(self, folded: str, auth_at: int, now: int) -> None:
        """A peer holds a newer session of a name bound here: this one is stale, tell it and let go."""
        self._spread(self.presence.newer_elsewhere(folded, auth_at, now))

    # ------------------------------------------------------------------ lookup

    def _lookup(self, session: Session, frame: Lookup, now: Now) -> None:
        record = self.directory.get(frame.name)
        if record is None and (
            self.mesh.arriving(frame.name) or (frame.hops >= 1 and self.mesh.syncing(now.mono))
        ):
            self.tasks.spawn(self._lookup_later(session, frame), f"lookup {frame.name}")
            return
        session.out.push(self._lookup_answer(frame, record, now.wall))

    async def _lookup_later(self, session: Session, frame: Lookup) -> None:
        """A miss that may not be one: wait for a peer's record of the name being checked, then,
        while a peer's sync is not done, ask the peers."""
        if self.mesh.arriving(frame.name):
            await self.mesh.settled(frame.name)
        record = self.directory.get(frame.name)
        if record is None and frame.hops >= 1 and self.mesh.syncing():
            record = await self.mesh.ask_peers(frame.name)
        if session in self.sessions:
            session.out.push(self._lookup_answer(frame, record, now_ms()))

    def _lookup_answer(self, frame: Lookup, record: Record | None, now: int) -> str:
        if record is not None:
            return self.found_frame(frame.id, record, now)
        return error_frame(
            ErrorCode.NOT_FOUND, f"no user named {frame.name!r} is registered", frame.id
        )

    def found_frame(self, frame_id: str, record: Record, now: int) -> str:
        eff = self.directory.effective(fold_name(record.name), now)
        return dump(
            Found(
                type="found",
                id=frame_id,
                record=record,
                online=eff.online,
                seed=self.seed_label(eff.seed),
                last_seen=eff.last_seen,
            )
        )

    # ------------------------------------------------------------------ what the mesh asks of us

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
        merged = Merged()
        checked = auths_checked or {}
        for record in records:
            try:
                outcome, loser = self.directory.accept(record, now, verified, from_peer=True)
            except ProtocolError as exc:
                merged.refused.append((record.name, exc))
                continue
            if outcome is not Outcome.SAME:
                self.record_changed(record, now, loser, link_key)
                merged.records += 1
        heard = self.presence.hear(presence, link_key, now, checked)
        merged.refused += heard.refused
        for said in heard.said:
            self._spread(said)
        self._tell(heard.told)
        merged.presence = len(heard.moved)
        for mail_item in mail:
            try:
                merged.mail += self.post.accept_replica(mail_item, now, link_key)
            except ProtocolError as exc:
                merged.refused.append((mail_item.to, exc))
        for take in taken:
            try:
                merged.taken += self.post.accept_take_replica(take, now, link_key)
            except ProtocolError as exc:
                merged.refused.append((take.to, exc))
        return merged

    def merge_online_set(self, seed_key: str, online: dict[str, tuple[int, int]], now: int) -> None:
        """A peer's sync reached done: its online set replaces what it said before, and this
        seed can check names against the mesh from now on (the names it took before are its own
        where no peer's record contradicted them)."""
        self.admission.synced()
        self.presence_changed(self.directory.replace_seed_online_set(seed_key, online), now)

    def record(self, name: str) -> Record | None:
        return self.directory.get(name)

    def key_of(self, name: str) -> str | None:
        return self.directory.key_of(name)

    def holds(self, record: Record) -> bool:
        entry = self.directory.entries.get(fold_name(record.name))
        return entry is not None and entry.same_as(record)

    def check_online(
        self, item: PresenceItem, link_key: str, now: int, verified_with: str | None = None
    ) -> ProtocolError | None:
        try:
            self.directory.check_presence(item, link_key, now, verified_with)
        except ProtocolError as exc:
            return exc
        if item.auth is not None:
            self.newer_session_elsewhere(fold_name(item.name), item.auth.at, now)
        return None

    def current_rev(self) -> tuple[str, int]:
        return self.revs.current()

    def records_since(self, rev: int) -> Iterator[tuple[int, str]]:
        entries = self.directory.entries
        for n, folded in self.directory.changed_since(rev):
            entry = entries.get(folded)
            if entry is not None:  # encoded as the sync reaches it, not all at once
                yield n, dump(entry.record())

    async def mail_page(self, kind: str, rev: int, limit: int) -> list[tuple[int, str]]:
        return await self.storage.mail.changes(kind, rev, limit)

    def peer_relay(self, frame: PeerRelay, link_key: str) -> None:
        self.post.peer_relay(frame, link_key)

    def link_allows(self, link_key: str, kind: str, now: Now, cost: float = 1.0) -> bool:
        """Spend `cost` of what the link with `link_key` may bring of `kind` (see budgets)."""
        trusted = self.trusted(link_key, now.wall)
        return self.links.allows(link_key, kind, trusted, now.mono, cost)

    def save_url(self, seed: SeedUrl) -> None:
        self.store.save_seed_url(seed)

    def forget_url(self, url: str) -> None:
        self.store.forget_seed_url(url)

    def save_sync_point(self, key: str, epoch: str, since: int) -> None:
        self.store.save_sync_point(key, epoch, since)

    def lookup_reply(self, frame: Lookup, now: int) -> str:
        return self._lookup_answer(frame, self.directory.get(frame.name), now)

    def home_lost(self, seed_key: str) -> None:
        now = now_ms()
        self.presence_changed(self.directory.seed_lost(seed_key, now), now)

    def home_back(self, seed_key: str) -> None:
        self.presence_changed(self.directory.seed_back(seed_key))


def _budget(cfg: SeedConfig, tier: str) -> Budget:
    """A tier's per-link budgets from the `[seed]` table (`peer_link_*` or `stranger_link_*`)."""

    def pair(kind: str) -> tuple[float, float]:
        return getattr(cfg, f"{tier}_{kind}"), getattr(cfg, f"{tier}_{kind}_burst")

    return Budget(
        names=pair("names"),
        presence=pair("presence"),
        mail=pair("mail_bytes"),
        takes=pair("takes"),
        relay=pair("relay_bytes"),
        ids=pair("ids"),
    )
