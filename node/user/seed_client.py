"""A user's link to the seed mesh: one registered socket with a session proof, failover when it drops.

The link picks a random seed among those configured and those the mesh vouches for (listed in
`seeds` with a key, checked against the key the seed proves in its challenge), proves its key
on the socket's challenge, re-sends the watch list, and answers requests by id. When the socket
drops it tries the other seeds at once, then backs off while none answers; callers' requests
wait for the next home seed instead of failing. A seed closing the session because the name
registered again elsewhere stops the loop until `reconnect()`.

A seed the app hosts itself (embedded) is dialled after the others, and a node whose home is one
probes the configured seeds every `return_every` seconds and goes back to the first
that answers. A seed that answers a request with the wrong frame type broke the protocol: its link
is dropped and it is dialled last from then on. Nothing a seed sends ends the connection loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from ..errors import (
    ConnectionLost,
    ErrorCode,
    ProtocolError,
    RemoteError,
    SeedUnavailable,
    WrongReply,
)
from ..runtime import Tasks, quiet_logger
from ..wire.backoff import Backoff
from ..wire.correlator import Correlator
from ..wire.fit import MAX_SEEDS_LISTED
from ..wire.names import fold_name
from ..wire.protocol import (
    FROM_SEED,
    ChallengeFrame,
    Deposit,
    Deposited,
    Error,
    Found,
    Frame,
    Lookup,
    MailItem,
    MailPush,
    Presence,
    Publish,
    Published,
    Record,
    Register,
    Registered,
    Relay,
    Relayed,
    RelayOk,
    SeedList,
    Seeds,
    SessionAuth,
    Take,
    Took,
    Watch,
    dump,
    parse,
    seed_url_problem,
)
from ..wire.sockets import DIAL_FAILED, dial, frames
from .events import ConnState, SeedState

WATCH_CHUNK = 100  # names per watch request: a seed's cap refuses a whole request

log = quiet_logger("p2p.user.seed")

DIAL_TIMEOUT = 1.5
BACKOFF_FIRST = 0.25
BACKOFF_MAX = 10.0
STATUS_EVERY = 2.0
RENEW_EVERY = 6 * 3600.0  # re-sign the record well inside the 30-day name lease
FATAL = (ErrorCode.NAME_TAKEN, ErrorCode.INVALID_NAME, ErrorCode.BAD_SIGNATURE)
CLOSE_REPLACED = 4409  # the seed's word: the name registered again with a newer session
CLOSE_PROTOCOL = 1002  # we drop a seed that broke the protocol
ANSWERS: dict[str, type[Frame]] = {"relay": RelayOk, "deposit": Deposited, "take": Took}
R = TypeVar("R")


@dataclass
class SeedCallbacks:
    """What the node hears from its seed link."""

    make_record: Callable[[], Awaitable[Record]]
    sign_session: Callable[[str, str, str], SessionAuth]  # (name, seed key, nonce)
    on_registered: Callable[[str, str], None]
    on_presence: Callable[[Presence], None]
    on_relayed: Callable[[Relayed], None]
    on_mail: Callable[[list[MailItem]], None]
    on_status: Callable[[ConnState, str | None, str], None]
    on_fatal: Callable[[ErrorCode, str], None]
    on_replaced: Callable[[str], None]


class SeedClient:
    """Keeps one registered socket to some seed of the mesh, and speaks the user-seed protocol."""

    def __init__(
        self, urls: list[str], callbacks: SeedCallbacks, return_every: float = BACKOFF_MAX
    ) -> None:
        self.configured = [u.rstrip("/") for u in urls]
        self.learned: dict[str, SeedState] = {}  # url -> last known state (listed ones carry a key)
        self.cb = callbacks
        # names to follow -> chosen by the user (True) or a stranger who wrote (False)
        self.watching: dict[str, bool] = {}
        self.watched: set[str] = set()  # sent on this socket (a seed's watch list only grows)
        self.watch_full = False  # the seed refused more names on this socket
        self.ws: ClientConnection | None = None
        self.home_url: str | None = None
        self.home_name: str | None = None
        self.home_key: str | None = None
        self.ready = asyncio.Event()
        self.replies: Correlator[object] = Correlator()
        self.tasks = Tasks(log)
        self.state: ConnState = "connecting"
        self.record: Record | None = None
        self.auth: SessionAuth | None = None
        self.nonce: str | None = None
        self.embedded: set[str] = set()
        self.registered_at = 0.0
        self.retry = asyncio.Event()
        self.replaced = False
        self.loop: asyncio.Task[None] | None = None
        self.last: str | None = None  # the seed that was home last (or failed last): dialled last
        self.trying: str | None = None
        self.prefer: str | None = (
            None  # dialled first on the next round (a configured seed is back)
        )
        self.configured_first = False  # the next round dials the configured seeds first
        self.misbehaved: set[str] = set()  # seeds that broke the protocol: dialled after the others
        self.return_every = return_every

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        self.loop = self.tasks.spawn(self._run(), "seed connection")

    async def stop(self) -> None:
        if self.ws is not None:
            await self.ws.close(1001, "user going offline")
        await self.tasks.cancel_all()

    def reconnect(self) -> None:
        """Drop the link and dial again, the configured seeds first (`/reconnect`).

        After the name was taken over by a newer session (or refused), this takes it back: the
        other session is told.
        """
        self.replaced = False
        self.configured_first = True
        if self.loop is None or self.loop.done():
            self.start()
        elif self.ws is not None:
            self.tasks.spawn(self.ws.close(1000, "reconnecting"), "reconnect")
        else:
            self.retry.set()  # waiting out a backoff: dial now

    def add_seed(self, url: str) -> None:
        url = url.rstrip("/")
        if url not in self.configured:
            self.configured.append(url)
        self.retry.set()

    def remove_seed(self, url: str) -> bool:
        url = url.rstrip("/")
        if url not in self.configured:
            return False
        self.configured.remove(url)
        return True

    def vouched(self, url: str) -> bool:
        """Configured by the user, or listed by a seed of the mesh with the key it must prove."""
        known = self.learned.get(url)
        return url in self.configured or (known is not None and known.key is not None)

    def candidates(self, exclude: str | None, configured_first: bool = False) -> list[str]:
        """The order to dial seeds in: a random one of the best kind first, spreading the load."""
        urls = [u for u in dict.fromkeys([*self.configured, *self.learned]) if self.vouched(u)]
        others = [u for u in urls if u != exclude]
        random.shuffle(others)
        # seeds that kept to the protocol first, others than an embedded one (a fallback for a
        # machine alone), the configured ones when asked, then those the mesh reported up; the
        # one that just failed last
        others.sort(
            key=lambda u: (
                u in self.misbehaved,
                u in self.embedded,
                configured_first and u not in self.configured,
                self.learned.get(u) is not None and self.learned[u].up is False,
            )
        )
        if self.prefer in others:
            others.remove(self.prefer)
            others.insert(0, self.prefer)
        return others + ([exclude] if exclude is not None and exclude in urls else [])

    def seed_states(self) -> tuple[SeedState, ...]:
        urls = [u for u in dict.fromkeys([*self.configured, *self.learned]) if self.vouched(u)]
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
                    key=known.key if known else None,
                )
            )
        return tuple(out)

    def _set_state(self, state: ConnState, detail: str = "") -> None:
        self.state = state
        self.cb.on_status(state, self.home_name if state == "connected" else None, detail)

    # ------------------------------------------------------------------ the connection loop

    async def _run(self) -> None:
        """Dial, register and serve, seed after seed, until the name is refused or taken over.

        Nothing else ends it: an unexpected error is logged with its traceback, and the loop
        backs off and fails over like for a seed that went away.
        """
        backoff = Backoff(BACKOFF_FIRST, BACKOFF_MAX)
        while True:
            try:
                if await self._round(backoff):
                    return
            except Exception:  # a bug on one attempt must not end the link: logged, then failover
                log.exception("the link to seed %s failed unexpectedly; failing over", self.trying)
                if self.trying is not None:
                    self._mark(self.trying, up=False)
                    self.last = self.trying
                with contextlib.suppress(Exception):  # the same bug may be in the status callback
                    self._set_state("failing_over", "unexpected error (see the log)")
                await backoff.sleep(self.retry)

    async def _round(self, backoff: Backoff) -> bool:
        """Try the seeds in turn and serve the first that registers us, until its socket drops;
        True when the loop must stop (the name refused for good, or registered again elsewhere)."""
        configured_first, self.configured_first = self.configured_first, False
        tried_any = False
        for url in self.candidates(self.last, configured_first):
            self.prefer = None
            tried_any = True
            self.trying = url
            try:
                await self._connect(url)
            except (*DIAL_FAILED, ProtocolError) as exc:
                log.debug("seed %s unavailable: %s", url, exc)
                self._mark(url, up=False)
                if isinstance(exc, ProtocolError):
                    self.misbehaved.add(url)
                continue
            except RemoteError as exc:
                if exc.code in FATAL:
                    self._set_state("offline", f"{url} refused the registration: {exc.message}")
                    self.cb.on_fatal(exc.code, exc.message)
                    return True
                log.warning("seed %s refused registration: %s", url, exc)
                continue
            backoff.reset()
            self.last = url
            code = await self._serve()  # until the socket drops
            if code == CLOSE_REPLACED:
                self.replaced = True
                self._set_state("offline", "the name registered again elsewhere")
                self.cb.on_replaced("your name registered again from somewhere else (another app?)")
                return True
            if self.prefer is not None:
                self._set_state("failing_over", f"returning to {self.prefer}")
            else:
                self._set_state("failing_over", f"lost {self.home_name or url}")
            return False
        self.trying = None
        self._set_state("offline", "no seed answers" if tried_any else "no seeds configured")
        await backoff.sleep(self.retry)  # a seed was added: try at once
        return False

    async def _connect(self, url: str) -> None:
        ws = await dial(url, timeout=DIAL_TIMEOUT, ping_interval=5, ping_timeout=5)
        try:
            async with asyncio.timeout(DIAL_TIMEOUT * 2):
                challenge = parse(FROM_SEED, await ws.recv())
                if not isinstance(challenge, ChallengeFrame):
                    raise ProtocolError(
                        ErrorCode.BAD_REQUEST, f"the seed spoke first with {challenge.type}"
                    )
                listed = self.learned.get(url)
                if url not in self.configured and (
                    listed is None or listed.key != challenge.seed_key
                ):
                    raise ProtocolError(
                        ErrorCode.BAD_SIGNATURE, "the seed is not the one the mesh listed"
                    )
                self.record = await self.cb.make_record()
                auth = self.cb.sign_session(self.record.name, challenge.seed_key, challenge.nonce)
                fid = uuid.uuid4().hex
                await ws.send(
                    dump(Register(type="register", id=fid, record=self.record, auth=auth))
                )
                while True:
                    reply = parse(FROM_SEED, await ws.recv())
                    if getattr(reply, "id", None) == fid:
                        break
            if isinstance(reply, Error):
                raise RemoteError(reply.code, reply.message)
            if not isinstance(reply, Registered):
                raise WrongReply(
                    ErrorCode.BAD_REQUEST, f"the seed answered register with {reply.type}"
                )
        except BaseException:
            await ws.close()
            raise
        self.ws = ws
        self.auth, self.nonce, self.home_key = auth, challenge.nonce, challenge.seed_key
        self.replies = Correlator()
        self.registered_at = time.monotonic()
        self.home_url = url
        self.home_name = reply.seed
        self._mark(url, up=True, name=reply.seed, key=challenge.seed_key)
        self.ready.set()
        self._set_state("connected")
        self.cb.on_registered(reply.seed, url)

    async def _serve(self) -> int | None:
        """Read the socket until it drops; the close code the seed gave."""
        ws = self.ws
        if ws is None:
            return None
        status = self.tasks.spawn(self._poll_seeds(), "seed list")
        back = None
        if self.home_url in self.embedded and self._elsewhere():
            back = self.tasks.spawn(self._return_home(ws), "return to a configured seed")
        self.watched, self.watch_full = set(), False
        if self.watching:
            self.tasks.spawn(self._send_watch(self._by_priority()), "re-watch")
        try:
            await self._read(ws)
        finally:
            status.cancel()
            if back is not None:
                back.cancel()
            self.ready.clear()
            self.ws = None
            if self.home_url:
                self._mark(self.home_url, up=False)
            self.replies.close("seed connection lost")
        return ws.close_code

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in frames(ws):
                try:
                    frame = parse(FROM_SEED, raw)
                except ProtocolError as exc:
                    log.warning("bad frame from seed: %s", exc.message)
                    continue
                try:
                    self._dispatch(frame)
                except Exception:  # one frame must not end the link: logged with its traceback
                    log.exception("handling a %s frame from the seed failed", frame.type)
        except ConnectionClosed:
            pass

    def _dispatch(self, frame: object) -> None:
        match frame:
            case Presence():
                self.cb.on_presence(frame)
            case Relayed():
                self.cb.on_relayed(frame)
            case MailPush():
                self.cb.on_mail(frame.items)
            case ChallengeFrame():
                pass
            case _:
                self.replies.resolve(getattr(frame, "id", None), frame)

    def _elsewhere(self) -> list[str]:
        """The configured seeds that are not hosted by an app on this machine."""
        return [u for u in self.configured if u not in self.embedded]

    async def _return_home(self, ws: ClientConnection) -> None:
        """Home is an embedded seed while configured ones exist: probe those every `return_every`
        seconds and go back to the first that answers (the embedded seed links to them as a peer,
        so what it holds reaches them too)."""
        while True:
            await asyncio.sleep(self.return_every)
            url = await first_answering(self._elsewhere(), DIAL_TIMEOUT)
            if url is not None:
                log.info("configured seed %s answers again: going back to it", url)
                self.prefer = url
                # its own task: this one is cancelled as the socket closes
                self.tasks.spawn(ws.close(1000, "going back to a configured seed"), "leave")
                return

    async def _poll_seeds(self) -> None:
        while True:
            try:
                reply = await self.request(Seeds(type="seeds", id=uuid.uuid4().hex), timeout=5)
            except (RemoteError, SeedUnavailable, ConnectionLost):
                return
            if isinstance(reply, SeedList):
                # the list as the mesh gives it now (bounded), plus the seeds the user configured
                kept = {
                    u: st
                    for u, st in self.learned.items()
                    if u in self.configured or u == self.home_url
                }
                # a list past the bound, or a URL past MAX_SEED_URL, is not an error: those
                # entries are left out
                for info in reply.seeds[:MAX_SEEDS_LISTED]:
                    url = info.url.rstrip("/")
                    if seed_url_problem(url) is not None:
                        continue
                    kept[url] = SeedState(url, info.name, info.up, info.rtt_ms, False, key=info.key)
                self.learned = kept
                self.cb.on_status(self.state, self.home_name, "")
            await asyncio.sleep(STATUS_EVERY)
            if time.monotonic() - self.registered_at > RENEW_EVERY:
                self.registered_at = time.monotonic()
                try:
                    await self.reregister()
                except (RemoteError, SeedUnavailable, ConnectionLost) as exc:
                    log.warning("lease renewal failed: %s", exc)

    def _mark(self, url: str, up: bool, name: str | None = None, key: str | None = None) -> None:
        old = self.learned.get(url)
        self.learned[url] = SeedState(
            url,
            name or (old.name if old else None),
            up,
            old.rtt_ms if old else None,
            False,
            key=key or (old.key if old else None),
        )

    # ------------------------------------------------------------------ requests

    async def request(
        self,
        frame: Lookup | Seeds | Watch | Register | Publish | Relay | Deposit | Take,
        timeout: float = 5.0,
    ) -> object:
        """Send a request on the home seed (waiting for one while failing over) and await its answer.

        SeedUnavailable when no seed answers in time, ConnectionLost when the socket drops while
        waiting, RemoteError when the seed answers `error`.
        """
        return await self.request_text(frame.id, dump(frame), timeout)

    async def lookup(self, name: str, timeout: float = 5.0) -> Found:
        reply = await self.request(
            Lookup(type="lookup", id=uuid.uuid4().hex, name=name, hops=1), timeout
        )
        return self._expect(reply, Found, "lookup")

    async def publish(self, records: list[Record]) -> int:
        reply = await self.request(Publish(type="publish", id=uuid.uuid4().hex, records=records))
        return self._expect(reply, Published, "publish").accepted

    async def send(self, frame: Relay | Deposit | Take, timeout: float = 10.0) -> object:
        return self._expect(await self.request(frame, timeout), ANSWERS[frame.type], frame.type)

    def _expect(self, reply: object, kind: type[R], asked: str) -> R:
        """The reply when it is of the kind asked for; else the seed broke the protocol: drop it
        (the node fails over, and dials it last from now on) and raise WrongReply."""
        if isinstance(reply, kind):
            return reply
        got = getattr(reply, "type", "?")
        url = self.home_url
        log.warning("seed %s answered %s with %s: dropping it", url, asked, got)
        if url is not None:
            self.misbehaved.add(url)
        if self.ws is not None:
            self.tasks.spawn(self.ws.close(CLOSE_PROTOCOL, "wrong reply type"), "drop seed")
        raise WrongReply(ErrorCode.BAD_REQUEST, f"the seed answered {asked} with {got}")

    async def request_text(self, frame_id: str, text: str, timeout: float = 10.0) -> object:
        """A request already encoded (a relay of a sealed chat: no second encoding on the hot path)."""
        try:
            async with asyncio.timeout(timeout):
                await self.ready.wait()
                ws = self.ws
                if ws is None:
                    raise ConnectionLost("seed connection lost")
                fut = self.replies.expect(frame_id)
                try:
                    await ws.send(text)
                    reply = await fut
                finally:
                    self.replies.forget(frame_id)
        except TimeoutError:
            raise SeedUnavailable("no seed answered in time") from None
        except ConnectionClosed:
            raise ConnectionLost("seed connection lost") from None
        if isinstance(reply, Error):
            raise RemoteError(reply.code, reply.message)
        return reply

    def watch(self, names: Iterable[str], chosen: bool = True) -> None:
        """Follow these names' presence: sent now when connected, and again on every new home seed.

        Nothing waits for the seed: a contact added while no seed answers is watched once one does.
        The seed answers each name with its presence now, already watched or not. A seed follows
        only so many names per socket (`max_watch`), so the names the user chose go first and
        strangers who wrote (`chosen` False) after them: a crowd of strangers cannot take the
        places of the user's contacts.
        """
        wanted = list(names)
        for name in wanted:
            self.watching[name] = self.watching.get(name, False) or chosen
        if wanted and self.ready.is_set():
            self.tasks.spawn(self._send_watch(wanted), "watch")

    def unwatch(self, name: str) -> None:
        self.watching.pop(name, None)

    def _by_priority(self) -> list[str]:
        return sorted(self.watching, key=lambda name: (not self.watching[name], fold_name(name)))

    async def _send_watch(self, names: list[str]) -> None:
        """Watch in chunks, in the order given, until the seed will follow no more."""
        for i in range(0, len(names), WATCH_CHUNK):
            chunk = names[i : i + WATCH_CHUNK]
            try:
                await self.request(Watch(type="watch", id=uuid.uuid4().hex, names=chunk))
            except RemoteError as exc:
                if not self.watch_full:
                    log.warning(
                        "%s follows no more names on this socket (%s): presence of %d contacts "
                        "is not followed",
                        self.home_name,
                        exc.code,
                        len(names) - i,
                    )
                self.watch_full = True
                return
            except (SeedUnavailable, ConnectionLost) as exc:
                log.debug("watch not sent (%s); it is sent again on the next registration", exc)
                return
            self.watched.update(chunk)

    async def reregister(self) -> None:
        """A fresh record and session auth on the current socket (a new endpoint, or to renew the lease)."""
        if self.home_key is None or self.nonce is None:
            raise SeedUnavailable("not registered")
        self.record = await self.cb.make_record()
        auth = self.cb.sign_session(self.record.name, self.home_key, self.nonce)
        reply = await self.request(
            Register(type="register", id=uuid.uuid4().hex, record=self.record, auth=auth)
        )
        self._expect(reply, Registered, "register")
        self.auth = auth


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
            except DIAL_FAILED:
                continue
    except TimeoutError:
        return None
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return None
