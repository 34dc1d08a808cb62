"""The seed server: serves users (register, lookup, seeds, watch) and hands seed links to the mesh."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from pathlib import Path

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from . import __version__
from .config import SeedConfig, default_data_dir
from .directory import Directory, Effective, Outcome
from .errors import ProtocolError
from .identity import Identity, secure_dir
from .limits import RateLimit, Verdict
from .mesh import Mesh
from .protocol import (
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
    name_key,
    parse,
    readable_id,
)
from .sender import FrameCounts, Sender
from .store import SeedStore
from .wire import SERVER_OPTIONS, Service, close_now, frames, listen_url, now_ms

log = logging.getLogger("p2p.seed")

LISTENING = "seed %s listening on %s (key %s, %d records)"


def listening_url(line: str) -> str | None:
    """The URL in a seed's LISTENING log line (how tools that start a seed learn where it is)."""
    match = re.search(r" listening on (\S+) \(key ", line)
    return match.group(1) if match else None


class Session:
    """One user socket: its rate bucket, the name it registered, the names it watches.

    Most sockets never watch or wait on anything, so those sets are made on first use: a seed
    holding thousands of idle sockets pays for what they do, not for what they might do.
    """

    __slots__ = ("ws", "out", "limit", "key", "watched", "tasks", "pinged")

    EMPTY: frozenset = frozenset()

    def __init__(self, ws: ServerConnection, limit: RateLimit, counts: FrameCounts) -> None:
        self.ws = ws
        self.out = Sender(ws, counts=counts)
        self.limit = limit
        self.key: str | None = None
        self.watched: set[str] | frozenset = self.EMPTY
        self.tasks: set[asyncio.Task[None]] | frozenset = self.EMPTY
        self.pinged: asyncio.Future | None = None


class Seed(Service):
    """A seed node; `async with Seed(config) as seed:` serves until the block ends."""

    def __init__(self, config: SeedConfig) -> None:
        self.config = config
        self.directory = Directory(lease_ms=int(config.lease_days * 86_400_000))
        self.sessions: set[Session] = set()
        self.bound: dict[str, Session] = {}  # name key -> the socket registered for it here
        self.watchers: dict[str, set[Session]] = {}
        self.pushed: dict[str, Effective] = {}
        self.unsynced: dict[str, asyncio.Future[None]] = {}
        self.started = time.monotonic()
        self.frames = FrameCounts()
        self.active = 0
        self.server: Server | None = None
        self.name = ""
        self.url = ""
        self.port = 0

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
        self.sweeper = asyncio.ensure_future(self._keepalive())
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
                    session.pinged = await session.ws.ping()
                except ConnectionClosed:
                    pass

    async def stop(self) -> None:
        """Close every socket with 1001, stop dialling, and flush the store."""
        self.sweeper.cancel()
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
                503, f"seed {self.name} is at its limit of {self.config.max_connections} "
                "connections; try another seed\n"
            )
        return None

    def health(self) -> dict[str, object]:
        online = sum(1 for key in self.directory.presence if self.directory.is_online(key))
        return {
            "name": self.name,
            "url": self.url,
            "version": __version__,
            "users_known": len(self.directory),
            "users_online": online,
            "users_here": len(self.bound),
            "connections": self.active,
            "peers": [{"name": s.name, "url": s.url, "up": s.up} for s in self.mesh.seed_infos()[1:]],
            "dropped_records": self.mesh.dropped,
            "frames": {"received": self.frames.received, "sent": self.frames.sent},
            "uptime_s": round(time.monotonic() - self.started, 1),
        }

    # ------------------------------------------------------------------ user sockets

    async def _handle(self, ws: ServerConnection) -> None:
        self.active += 1
        session = Session(ws, RateLimit(self.config.rate, self.config.burst), self.frames)
        self.sessions.add(session)
        try:
            async for raw in frames(ws):
                self.frames.received += 1
                verdict = session.limit.check()
                if verdict is not Verdict.ALLOW:
                    if verdict is Verdict.CUT:
                        log.warning("closing %s: kept flooding after %d rate_limited answers",
                                    ws.remote_address, session.limit.refused - 1)
                        await session.out.flush(1.0)  # its answers so far, if it reads them
                        await close_now(ws, 1008, "rate limit exceeded repeatedly")
                        return
                    session.out.push(error_frame(
                        "rate_limited", "too many frames; slow down", readable_id(raw)
                    ))
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
                session.out.push(dump(SeedList(type="seed_list", id=frame.id, seeds=self.mesh.seed_infos())))
            case Watch():
                self._watch(session, frame)

    def _spawn(self, session: Session, coro) -> None:
        task = asyncio.ensure_future(coro)
        if not session.tasks:
            session.tasks = set()
        session.tasks.add(task)
        task.add_done_callback(session.tasks.discard)

    def _drop(self, session: Session) -> None:
        if session not in self.sessions:
            return
        self.sessions.discard(session)
        for task in session.tasks:
            task.cancel()
        for key in session.watched:
            watchers = self.watchers.get(key)
            if watchers is not None:
                watchers.discard(session)
                if not watchers:
                    del self.watchers[key]
                    self.pushed.pop(key, None)
        if session.key is not None and self.bound.get(session.key) is session:
            del self.bound[session.key]
            self._set_local_presence(session.key, online=False)

    # ------------------------------------------------------------------ register

    def _register(self, session: Session, frame: Register) -> None:
        record = frame.record
        key = name_key(record.name)
        if session.key is not None and session.key != key:
            bound = self.directory.display_name(session.key)
            session.out.push(error_frame(
                "bad_request", f"this socket is registered as {bound!r}; open another socket "
                "to register another name", frame.id,
            ))
            return
        now = now_ms()
        try:
            outcome = self.directory.accept(record, now)
        except ProtocolError as exc:
            session.out.push(error_frame(exc.code, exc.message, frame.id))
            return
        previous = self.bound.get(key)
        if previous is not session:
            if previous is not None:
                previous.key = None
                asyncio.ensure_future(previous.ws.close(1000, "the name registered on a newer socket"))
            self.bound[key] = session
            session.key = key
            self._set_local_presence(key, online=True)
        if outcome is Outcome.NEW:
            self.persist(record, now)
            self.mesh.gossip(records=[record])
        reply = dump(Registered(type="registered", id=frame.id, seed=self.name))
        pending = self.unsynced.get(key)
        if pending is None:
            session.out.push(reply)
            return

        def durable(fut: asyncio.Future[None]) -> None:
            """Answer once the record is on disk (an identical resend waits for the first copy's commit)."""
            if fut.cancelled() or fut.exception() is not None:
                session.out.push(error_frame("internal", f"the record could not be stored: {fut.exception()}", frame.id))
            else:
                session.out.push(reply)

        pending.add_done_callback(durable)

    def persist(self, record: Record, now: int) -> None:
        """Queue a record for the disk; replies for it wait on `unsynced` until it is committed."""
        key = name_key(record.name)
        fut = self.store.save(record, now, key)
        self.unsynced[key] = fut

        def done(f: asyncio.Future[None]) -> None:
            if self.unsynced.get(key) is f:
                del self.unsynced[key]
            if not f.cancelled():
                f.exception()  # retrieved: failures are logged by the store

        fut.add_done_callback(done)

    # ------------------------------------------------------------------ presence

    def _set_local_presence(self, key: str, online: bool) -> None:
        """This seed is the authority for its own users: record the change and tell everyone."""
        current = self.directory.item(key, self.name)
        at = max(now_ms(), current[1] + 1 if current else 0)
        item = PresenceItem(name=self.directory.display_name(key), seed=self.name, online=online, at=at)
        self.directory.apply_presence(item)
        self.mesh.gossip(presence=[item])
        self.presence_changed([key])

    def local_online(self) -> list[PresenceItem]:
        items = []
        for key in self.bound:
            online, at = self.directory.item(key, self.name)
            items.append(PresenceItem(name=self.directory.display_name(key), seed=self.name, online=online, at=at))
        return items

    def presence_changed(self, keys) -> None:
        """Push the effective presence of each watched name whose state changed."""
        now = now_ms()
        for key in keys:
            watchers = self.watchers.get(key)
            if not watchers:
                continue
            eff = self.directory.effective(key, now)
            if eff.changed_from(self.pushed.get(key)):
                self.pushed[key] = eff
                text = self._presence_frame(key, key, eff)
                for session in watchers:
                    session.out.push(text)

    def _presence_frame(self, key: str, spelled: str, eff: Effective) -> str:
        name = self.directory.display_name(key) or spelled
        return dump(Presence(type="presence", name=name, online=eff.online, seed=eff.seed, last_seen=eff.last_seen))

    def _watch(self, session: Session, frame: Watch) -> None:
        keys = {name_key(n): n for n in frame.names}
        new = [k for k in keys if k not in session.watched]
        if len(session.watched) + len(new) > self.config.max_watch:
            session.out.push(error_frame(
                "bad_request", f"a connection may watch at most {self.config.max_watch} names "
                f"(this one watches {len(session.watched)})", frame.id,
            ))
            return
        session.out.push(dump(Watching(type="watching", id=frame.id)))
        now = now_ms()
        if not session.watched:
            session.watched = set()
        for key, spelled in keys.items():
            session.watched.add(key)
            watchers = self.watchers.setdefault(key, set())
            watchers.add(session)
            eff = self.directory.effective(key, now)
            self.pushed.setdefault(key, eff)
            session.out.push(self._presence_frame(key, spelled, eff))

    # ------------------------------------------------------------------ lookup

    def _lookup(self, session: Session, frame: Lookup) -> None:
        record = self.directory.get(frame.name)
        if record is not None:
            session.out.push(self.found_frame(frame.id, record))
        elif frame.hops >= 1 and self.mesh.links:
            self._spawn(session, self._lookup_peers(session, frame))
        else:
            session.out.push(self.not_found(frame))

    def not_found(self, frame: Lookup) -> str:
        return error_frame("not_found", f"no user named {frame.name!r} is registered", frame.id)

    async def _lookup_peers(self, session: Session, frame: Lookup) -> None:
        record = await self.mesh.ask_peers(frame.name)
        session.out.push(self.found_frame(frame.id, record) if record else self.not_found(frame))

    def found_frame(self, frame_id: str, record: Record) -> str:
        eff = self.directory.effective(name_key(record.name), now_ms())
        return dump(Found(
            type="found", id=frame_id, record=record, online=eff.online, seed=eff.seed,
            last_seen=eff.last_seen,
        ))
