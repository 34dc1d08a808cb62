"""The seed server: serves users (register, lookup, seeds, watch) and hands seed links to the mesh."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Iterable
from pathlib import Path

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from .. import __version__
from ..clock import now_ms
from ..config import SeedConfig
from ..crypto.keys import Identity
from ..errors import ErrorCode, ProtocolError
from ..runtime import Service, Tasks
from ..storage.files import default_data_dir, secure_dir
from ..wire.limits import RateLimit, Verdict
from ..wire.names import fold_name
from ..wire.protocol import (
    TO_SEED,
    Found,
    Lookup,
    Presence,
    PresenceItem,
    Record,
    Register,
    Registered,
    SeedHello,
    SeedList,
    Seeds,
    Watch,
    Watching,
    dump,
    error_frame,
    parse,
    readable_id,
)
from ..wire.sender import FrameCounts, Sender
from ..wire.sockets import SERVER_OPTIONS, close_now, frames, listen_url
from .directory import Directory, Effective, Outcome
from .mesh import Merged, Mesh
from .store import SeedStore
from .watchers import Watchers

log = logging.getLogger("p2p.seed")

LISTENING = "seed %s listening on %s (key %s, %d records)"


def listening_url(line: str) -> str | None:
    """The URL in a seed's LISTENING log line (how tools that start a seed learn where it is)."""
    match = re.search(r" listening on (\S+) \(key ", line)
    return match.group(1) if match else None


class Session:
    """One user socket: its outgoing queue, its rate bucket, and the name it registered."""

    __slots__ = ("ws", "out", "limit", "folded", "pinged")

    def __init__(self, ws: ServerConnection, limit: RateLimit, counts: FrameCounts) -> None:
        self.ws = ws
        self.out = Sender(ws, counts=counts)
        self.limit = limit
        self.folded: str | None = None
        self.pinged: asyncio.Future[float] | None = None


class Seed(Service):
    """A seed node; `async with Seed(config) as seed:` serves until the block ends."""

    def __init__(self, config: SeedConfig) -> None:
        self.config = config
        self.directory = Directory(lease_ms=int(config.lease_days * 86_400_000))
        self.sessions: set[Session] = set()
        self.bound: dict[str, Session] = {}  # folded name -> the socket registered for it here
        self.watchers: Watchers[Session] = Watchers(config.max_watch)
        self.unsynced: dict[str, asyncio.Future[None]] = {}
        self.started = time.monotonic()
        self.frames = FrameCounts()
        self.tasks = Tasks(log)
        self.active = 0
        self.server: Server | None = None
        self.name = ""
        self.url = ""
        self.port = 0

    @property
    def key(self) -> str:
        return self.identity.key

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        cfg = self.config
        self.server = await serve(
            self._handle,
            cfg.host,
            cfg.port,
            process_request=self._process_request,
            max_size=cfg.max_frame,
            ping_interval=None,  # one sweeper pings every socket instead of a task per socket
            **SERVER_OPTIONS,
        )
        self.tasks.spawn(self._keepalive(), "keepalive sweeper")
        self.port, bound_url = listen_url(self.server, cfg.host)
        self.url = cfg.url or bound_url
        self.name = cfg.seed_name(self.port)
        self.data_dir: Path = cfg.data_dir or default_data_dir("seeds", self.name)
        secure_dir(self.data_dir)
        self.identity = Identity.load_or_create(self.data_dir)
        self.store = SeedStore(self.data_dir / "directory.sqlite3")
        loaded = 0
        for record, renewed in self.store.load_records():
            self.directory.load(record, renewed)
            loaded += 1
        self.store.start()
        self.mesh = Mesh(self)
        self.mesh.start([*cfg.peers, *self.store.load_seed_urls()])
        log.info(LISTENING, self.name, self.url, self.identity.fingerprint, loaded)

    async def _keepalive(self) -> None:
        """Every `ping_interval` seconds, close the user sockets that did not answer the previous ping."""
        while True:
            await asyncio.sleep(self.config.ping_interval)
            for session in list(self.sessions):
                if session.pinged is not None and not session.pinged.done():
                    # a dead peer cannot answer a close handshake either: drop the connection now
                    log.debug("closing %s: keepalive ping timeout", session.ws.remote_address)
                    session.ws.transport.abort()
                    continue
                try:
                    session.pinged = asyncio.ensure_future(await session.ws.ping())
                except ConnectionClosed:
                    pass

    async def stop(self) -> None:
        """Close every socket with 1001, stop dialling, and flush the store."""
        await self.tasks.cancel_all()
        await self.mesh.stop()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        await self.store.close()
        log.info("seed %s stopped", self.name)

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
        online = sum(1 for folded in self.directory.presence if self.directory.is_online(folded))
        return {
            "name": self.name,
            "url": self.url,
            "version": __version__,
            "users_known": len(self.directory),
            "users_online": online,
            "users_here": len(self.bound),
            "connections": self.active,
            "peers": [
                {"name": s.name, "url": s.url, "up": s.up} for s in self.mesh.seed_infos()[1:]
            ],
            "dropped_records": {str(code): n for code, n in self.mesh.dropped.items()},
            "frames": {"received": self.frames.received, "sent": self.frames.sent},
            "uptime_s": round(time.monotonic() - self.started, 1),
        }

    # ------------------------------------------------------------------ user sockets

    async def _handle(self, ws: ServerConnection) -> None:
        self.active += 1
        loop = asyncio.get_running_loop()
        session = Session(
            ws, RateLimit(self.config.rate, self.config.burst, loop.time()), self.frames
        )
        self.sessions.add(session)
        try:
            async for raw in frames(ws):
                self.frames.received += 1
                verdict = session.limit.check(loop.time())
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
                try:
                    frame = parse(TO_SEED, raw)
                except ProtocolError as exc:
                    session.out.push(error_frame(exc.code, exc.message, exc.frame_id))
                    continue
                if isinstance(frame, SeedHello):
                    self._drop(session)
                    await self.mesh.accept(ws, frame)
                    return
                self._dispatch(session, frame)
        except ConnectionClosed:
            pass
        finally:
            self.active -= 1
            self._drop(session)

    def _dispatch(self, session: Session, frame: Register | Lookup | Seeds | Watch) -> None:
        match frame:
            case Register():
                self._register(session, frame)
            case Lookup():
                self._lookup(session, frame)
            case Seeds():
                session.out.push(
                    dump(SeedList(type="seed_list", id=frame.id, seeds=self.mesh.seed_infos()))
                )
            case Watch():
                self._watch(session, frame)

    def _drop(self, session: Session) -> None:
        if session not in self.sessions:
            return
        self.sessions.discard(session)
        self.watchers.drop(session)
        if session.folded is not None and self.bound.get(session.folded) is session:
            del self.bound[session.folded]
            self._set_local_presence(session.folded, online=False)

    # ------------------------------------------------------------------ register

    def _register(self, session: Session, frame: Register) -> None:
        record = frame.record
        folded = fold_name(record.name)
        if session.folded is not None and session.folded != folded:
            bound = self.directory.display_name(session.folded)
            session.out.push(
                error_frame(
                    ErrorCode.BAD_REQUEST,
                    f"this socket is registered as {bound!r}; open another socket "
                    "to register another name",
                    frame.id,
                )
            )
            return
        now = now_ms()
        try:
            outcome = self.directory.accept(record, now)
        except ProtocolError as exc:
            session.out.push(error_frame(exc.code, exc.message, frame.id))
            return
        previous = self.bound.get(folded)
        if previous is not session:
            if previous is not None:
                previous.folded = None
                self.tasks.spawn(
                    previous.ws.close(1000, "the name registered on a newer socket"),
                    "close a replaced session",
                )
            self.bound[folded] = session
            session.folded = folded
            self._set_local_presence(folded, online=True)
        if outcome is Outcome.NEW:
            self.persist(record, now)
            self.mesh.gossip(records=[record])
        reply = dump(Registered(type="registered", id=frame.id, seed=self.name))
        pending = self.unsynced.get(folded)
        if pending is None:
            session.out.push(reply)
            return

        def durable(fut: asyncio.Future[None]) -> None:
            """Answer once the record is on disk (an identical resend waits for the first copy's commit)."""
            if fut.cancelled() or fut.exception() is not None:
                session.out.push(
                    error_frame(
                        ErrorCode.INTERNAL,
                        f"the record could not be stored: {fut.exception()}",
                        frame.id,
                    )
                )
            else:
                session.out.push(reply)

        pending.add_done_callback(durable)

    def persist(self, record: Record, now: int) -> None:
        """Queue a record for the disk; replies for it wait on `unsynced` until it is committed."""
        folded = fold_name(record.name)
        fut = self.store.save(record, now, folded)
        self.unsynced[folded] = fut

        def done(f: asyncio.Future[None]) -> None:
            if self.unsynced.get(folded) is f:
                del self.unsynced[folded]
            if not f.cancelled():
                f.exception()  # retrieved: failures are logged by the store

        fut.add_done_callback(done)

    # ------------------------------------------------------------------ presence

    def _set_local_presence(self, folded: str, online: bool) -> None:
        """This seed is the authority for its own users: record the change and tell everyone."""
        current = self.directory.item(folded, self.name)
        at = max(now_ms(), current[1] + 1 if current else 0)
        item = PresenceItem(
            name=self.directory.display_name(folded) or folded,
            seed=self.name,
            online=online,
            at=at,
        )
        self.directory.apply_presence(item)
        self.mesh.gossip(presence=[item])
        self.presence_changed([folded])

    def local_online(self) -> list[PresenceItem]:
        items = []
        for folded in self.bound:
            state = self.directory.item(folded, self.name)
            assert state is not None, "a bound name always has a presence item here"
            online, at = state
            name = self.directory.display_name(folded) or folded
            items.append(PresenceItem(name=name, seed=self.name, online=online, at=at))
        return items

    def presence_changed(self, names: Iterable[str]) -> None:
        """Push the effective presence of each watched name whose state changed."""
        now = now_ms()
        for folded in names:
            eff = self.directory.effective(folded, now)
            sessions = self.watchers.to_tell(folded, eff)
            if sessions:
                text = self._presence_frame(folded, folded, eff)
                for session in sessions:
                    session.out.push(text)

    def _presence_frame(self, folded: str, spelled: str, eff: Effective) -> str:
        name = self.directory.display_name(folded) or spelled
        return dump(
            Presence(
                type="presence",
                name=name,
                online=eff.online,
                seed=eff.seed,
                last_seen=eff.last_seen,
            )
        )

    def _watch(self, session: Session, frame: Watch) -> None:
        spellings = {fold_name(n): n for n in frame.names}
        if not self.watchers.add(session, spellings):
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
        now = now_ms()
        for folded, spelled in spellings.items():
            eff = self.directory.effective(folded, now)
            self.watchers.first_told(folded, eff)
            session.out.push(self._presence_frame(folded, spelled, eff))

    # ------------------------------------------------------------------ lookup

    def _lookup(self, session: Session, frame: Lookup) -> None:
        record = self.directory.get(frame.name)
        if record is not None:
            session.out.push(self.found_frame(frame.id, record))
        elif frame.hops >= 1 and self.mesh.links:
            self.tasks.spawn(self._lookup_peers(session, frame), f"lookup {frame.name}")
        else:
            session.out.push(self.not_found(frame))

    def not_found(self, frame: Lookup) -> str:
        return error_frame(
            ErrorCode.NOT_FOUND, f"no user named {frame.name!r} is registered", frame.id
        )

    async def _lookup_peers(self, session: Session, frame: Lookup) -> None:
        record = await self.mesh.ask_peers(frame.name)
        if session in self.sessions:
            session.out.push(
                self.found_frame(frame.id, record) if record else self.not_found(frame)
            )

    def found_frame(self, frame_id: str, record: Record) -> str:
        eff = self.directory.effective(fold_name(record.name), now_ms())
        return dump(
            Found(
                type="found",
                id=frame_id,
                record=record,
                online=eff.online,
                seed=eff.seed,
                last_seen=eff.last_seen,
            )
        )

    # ------------------------------------------------------------------ what the mesh asks of us

    def merge(self, records: list[Record], presence: list[PresenceItem]) -> Merged:
        now = now_ms()
        merged = Merged()
        for record in records:
            try:
                outcome = self.directory.accept(record, now)
            except ProtocolError as exc:
                merged.refused.append((record, exc))
                continue
            if outcome is Outcome.NEW:
                merged.records.append(record)
                self.persist(record, now)
        for item in presence:
            if item.seed == self.name:
                continue  # we are the authority on our own users
            if self.directory.apply_presence(item):
                merged.presence.append(item)
        if merged.presence:
            self.presence_changed({fold_name(i.name) for i in merged.presence})
        return merged

    def merge_online_set(self, seed: str, online: dict[str, int]) -> None:
        self.presence_changed(self.directory.replace_seed_online_set(seed, online))

    def sync_items(self) -> tuple[list[Record], list[PresenceItem]]:
        return self.directory.records(), self.local_online()

    def record(self, name: str) -> Record | None:
        return self.directory.get(name)

    def lookup_reply(self, frame: Lookup) -> str:
        record = self.directory.get(frame.name)
        return self.found_frame(frame.id, record) if record else self.not_found(frame)

    def home_lost(self, seed: str) -> None:
        self.presence_changed(self.directory.seed_lost(seed, now_ms()))

    def home_back(self, seed: str) -> None:
        self.presence_changed(self.directory.seed_back(seed))

    def remember_url(self, url: str) -> None:
        self.store.add_seed_url(url)
