"""A user's link to the seed mesh: one registered socket, failover to another seed when it drops.

The link picks a random seed among those configured and learned, registers, re-sends the watch
list, and answers requests by id. When the socket drops it tries the other seeds at once, then
backs off while none answers; callers' requests wait for the next home seed instead of failing.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from ..errors import ConnectionLost, ErrorCode, ProtocolError, RemoteError, SeedUnavailable
from ..runtime import Tasks
from ..wire.backoff import Backoff
from ..wire.correlator import Correlator
from ..wire.protocol import (
    FROM_SEED,
    Error,
    Found,
    Lookup,
    Presence,
    Record,
    Register,
    Registered,
    SeedList,
    Seeds,
    Watch,
    dump,
    parse,
)
from ..wire.sockets import dial, frames
from .events import ConnState, SeedState

log = logging.getLogger("p2p.user.seed")

DIAL_TIMEOUT = 1.5
BACKOFF_FIRST = 0.25
BACKOFF_MAX = 10.0
STATUS_EVERY = 2.0
RENEW_EVERY = 6 * 3600.0  # re-sign the record well inside the 30-day name lease
FATAL = (ErrorCode.NAME_TAKEN, ErrorCode.INVALID_NAME, ErrorCode.BAD_SIGNATURE)

Reply = Registered | Found | SeedList | Error | object


class SeedClient:
    """Keeps one registered socket to some seed of the mesh, and speaks the user-seed protocol."""

    def __init__(
        self,
        urls: list[str],
        make_record: Callable[[], Awaitable[Record]],
        on_registered: Callable[[str, str], None],
        on_presence: Callable[[Presence], None],
        on_status: Callable[[ConnState, str | None, str], None],
        on_fatal: Callable[[ErrorCode, str], None],
    ) -> None:
        self.configured = [u.rstrip("/") for u in urls]
        self.learned: dict[str, SeedState] = {}  # url -> last known state
        self.make_record = make_record
        self.on_registered = on_registered
        self.on_presence = on_presence
        self.on_status = on_status
        self.on_fatal = on_fatal
        self.watching: set[str] = set()
        self.ws: ClientConnection | None = None
        self.home_url: str | None = None
        self.home_name: str | None = None
        self.ready = asyncio.Event()
        self.replies: Correlator[object] = Correlator()
        self.tasks = Tasks(log)
        self.state: ConnState = "connecting"
        self.record: Record | None = None
        self.embedded: set[str] = set()
        self.registered_at = 0.0
        self.retry = asyncio.Event()

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        self.tasks.spawn(self._run(), "seed connection")

    async def stop(self) -> None:
        if self.ws is not None:
            await self.ws.close(1001, "user going offline")
        await self.tasks.cancel_all()

    def add_seed(self, url: str) -> None:
        url = url.rstrip("/")
        if url not in self.configured:
            self.configured.append(url)
        self.retry.set()

    def candidates(self, exclude: str | None) -> list[str]:
        urls = list(dict.fromkeys([*self.configured, *self.learned]))
        others = [u for u in urls if u != exclude]
        random.shuffle(others)
        # seeds the mesh reported up first, then the rest; the one that just failed last
        others.sort(key=lambda u: self.learned.get(u) is not None and self.learned[u].up is False)
        return others + ([exclude] if exclude is not None and exclude in urls else [])

    def seed_states(self) -> tuple[SeedState, ...]:
        urls = list(dict.fromkeys([*self.configured, *self.learned]))
        out = []
        for url in urls:
            known = self.learned.get(url)
            home = url == self.home_url and self.state == "connected"
            out.append(
                SeedState(
                    url=url,
                    name=known.name if known else None,
                    up=True if home else (known.up if known else None),
                    rtt_ms=known.rtt_ms if known else None,
                    home=home,
                    embedded=url in self.embedded,
                )
            )
        return tuple(out)

    def _set_state(self, state: ConnState, detail: str = "") -> None:
        self.state = state
        self.on_status(state, self.home_name if state == "connected" else None, detail)

    # ------------------------------------------------------------------ the connection loop

    async def _run(self) -> None:
        backoff = Backoff(BACKOFF_FIRST, BACKOFF_MAX)
        last: str | None = None
        while True:
            tried_any = False
            for url in self.candidates(exclude=last):
                tried_any = True
                try:
                    await self._connect(url)
                except (
                    OSError,
                    InvalidHandshake,
                    InvalidURI,
                    TimeoutError,
                    ConnectionClosed,
                ) as exc:
                    log.debug("seed %s unavailable: %s", url, exc)
                    self._mark(url, up=False)
                    continue
                except RemoteError as exc:
                    if exc.code in FATAL:
                        self._set_state("offline", f"{url} refused the registration: {exc.message}")
                        self.on_fatal(exc.code, exc.message)
                        return
                    log.warning("seed %s refused registration: %s", url, exc)
                    continue
                backoff.reset()
                last = url
                await self._serve()  # until the socket drops
                self._set_state("failing_over", f"lost {self.home_name or url}")
                break
            else:
                self._set_state(
                    "offline", "no seed answers" if tried_any else "no seeds configured"
                )
                await backoff.sleep(self.retry)  # a seed was added: try at once

    async def _connect(self, url: str) -> None:
        ws = await dial(url, timeout=DIAL_TIMEOUT, ping_interval=5, ping_timeout=5)
        try:
            self.record = await self.make_record()
            fid = uuid.uuid4().hex
            await ws.send(dump(Register(type="register", id=fid, record=self.record)))
            async with asyncio.timeout(DIAL_TIMEOUT * 2):
                while True:
                    reply = parse(FROM_SEED, await ws.recv())
                    if getattr(reply, "id", None) == fid:
                        break
            if isinstance(reply, Error):
                raise RemoteError(reply.code, reply.message)
            assert isinstance(reply, Registered)
        except BaseException:
            await ws.close()
            raise
        self.ws = ws
        self.replies = Correlator()
        self.registered_at = time.monotonic()
        self.home_url = url
        self.home_name = reply.seed
        self._mark(url, up=True, name=reply.seed)
        self.ready.set()
        self._set_state("connected")
        self.on_registered(reply.seed, url)

    async def _serve(self) -> None:
        ws = self.ws
        assert ws is not None
        status = self.tasks.spawn(self._poll_seeds(), "seed list")
        if self.watching:
            self.tasks.spawn(self._send_watch(sorted(self.watching)), "re-watch")
        try:
            await self._read(ws)
        finally:
            status.cancel()
            self.ready.clear()
            self.ws = None
            if self.home_url:
                self._mark(self.home_url, up=False)
            self.replies.close("seed connection lost")

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in frames(ws):
                try:
                    frame = parse(FROM_SEED, raw)
                except ProtocolError as exc:
                    log.warning("bad frame from seed: %s", exc.message)
                    continue
                if isinstance(frame, Presence):
                    self.on_presence(frame)
                else:
                    self.replies.resolve(frame.id, frame)
        except ConnectionClosed:
            pass

    async def _poll_seeds(self) -> None:
        while True:
            try:
                reply = await self.request(Seeds(type="seeds", id=uuid.uuid4().hex), timeout=5)
            except (RemoteError, SeedUnavailable, ConnectionLost):
                return
            if isinstance(reply, SeedList):
                for info in reply.seeds:
                    url = info.url.rstrip("/")
                    self.learned[url] = SeedState(url, info.name, info.up, info.rtt_ms, False)
                self.on_status(self.state, self.home_name, "")
            await asyncio.sleep(STATUS_EVERY)
            if time.monotonic() - self.registered_at > RENEW_EVERY:
                self.registered_at = time.monotonic()
                try:
                    await self.reregister()
                except (RemoteError, SeedUnavailable, ConnectionLost) as exc:
                    log.warning("lease renewal failed: %s", exc)

    def _mark(self, url: str, up: bool, name: str | None = None) -> None:
        old = self.learned.get(url)
        self.learned[url] = SeedState(
            url, name or (old.name if old else None), up, old.rtt_ms if old else None, False
        )

    # ------------------------------------------------------------------ requests

    async def request(
        self, frame: Lookup | Seeds | Watch | Register, timeout: float = 5.0
    ) -> object:
        """Send a request on the home seed (waiting for one while failing over) and await its answer.

        SeedUnavailable when no seed answers in time, ConnectionLost when the socket drops while
        waiting, RemoteError when the seed answers `error`.
        """
        try:
            async with asyncio.timeout(timeout):
                await self.ready.wait()
                ws = self.ws
                assert ws is not None
                fut = self.replies.expect(frame.id)
                try:
                    await ws.send(dump(frame))
                    reply = await fut
                finally:
                    self.replies.forget(frame.id)
        except TimeoutError:
            raise SeedUnavailable("no seed answered in time") from None
        except ConnectionClosed:
            raise ConnectionLost("seed connection lost") from None
        if isinstance(reply, Error):
            raise RemoteError(reply.code, reply.message)
        return reply

    async def lookup(self, name: str, timeout: float = 5.0) -> Found:
        reply = await self.request(
            Lookup(type="lookup", id=uuid.uuid4().hex, name=name, hops=1), timeout
        )
        assert isinstance(reply, Found)
        return reply

    def watch(self, names: Iterable[str]) -> None:
        """Follow these names' presence: sent now when connected, and again on every new home seed.

        Nothing waits for the seed: a contact added while no seed answers is watched once one does.
        The seed answers each name with its presence now, already watched or not.
        """
        wanted = list(names)
        self.watching.update(wanted)
        if wanted and self.ready.is_set():
            self.tasks.spawn(self._send_watch(wanted), "watch")

    def unwatch(self, name: str) -> None:
        self.watching.discard(name)

    async def _send_watch(self, names: list[str]) -> None:
        try:
            await self.request(Watch(type="watch", id=uuid.uuid4().hex, names=names))
        except (RemoteError, SeedUnavailable, ConnectionLost) as exc:
            log.debug("watch not sent (%s); it is sent again on the next registration", exc)

    async def reregister(self) -> None:
        """Send a fresh record on the current socket (a new endpoint, or to renew the lease)."""
        self.record = await self.make_record()
        await self.request(Register(type="register", id=uuid.uuid4().hex, record=self.record))


async def first_answering(urls: list[str], timeout: float) -> str | None:
    """The first of `urls` whose seed completes a handshake within `timeout`, or None."""

    async def probe(url: str) -> str:
        ws = await dial(url, timeout=timeout)
        await ws.close()
        return url

    tasks = [asyncio.ensure_future(probe(u)) for u in urls]
    try:
        for done in asyncio.as_completed(tasks, timeout=timeout):
            try:
                return await done
            except (OSError, InvalidHandshake, InvalidURI, ConnectionClosed):
                continue
    except TimeoutError:
        return None
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return None
