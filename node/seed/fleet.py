"""A seed of a fleet: its replicated state lives in a NATS JetStream cluster shared by the fleet.

Each seed of the fleet keeps the directory in memory only as a cache: before it handles a
frame that names users it reads their records from the bucket (one round trip), a registration
is acknowledged only once written to the bucket with compare-and-set, presence goes through the
presence bucket (and a seed silent 30 s counts offline), mail lives in the stream, and relays
and live mail cross to the seed where the recipient is on core subjects (the fleet's bus). No
gossip runs inside the fleet; outside seeds still link with the seed protocol.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from ..clock import now_ms
from ..crypto.keys import b64
from ..errors import P2PError, ProtocolError
from ..runtime import quiet_logger
from ..wire.names import fold_name
from ..wire.protocol import CARRIED, dump
from .mailbox import MailLimits
from .sides import FleetSeed, SessionSide
from .storage.base import HEARTBEAT_MS, Seen, Stored, wins
from .storage.nats import NatsStorage, token

log = quiet_logger("p2p.seed.fleet")

MAX_BUS_BYTES = 1024 * 1024  # a bus message larger than this is dropped unread


class Fleet:
    def __init__(self, seed: FleetSeed, storage: NatsStorage) -> None:
        self.seed = seed
        self.storage = storage
        self.members: set[str] = set()  # keys of the fleet's seeds heard within SILENT_MS
        self.subs: list[Any] = []
        self.queued: dict[SessionSide, asyncio.Task[Any]] = {}  # each socket's last frame in hand

    @classmethod
    async def join(cls, seed: FleetSeed, url: str, limits: MailLimits) -> Fleet:
        return cls(seed, await NatsStorage.connect(url, limits))

    def bus(self, seed_key: str) -> str:
        return f"{self.storage.prefix}.bus.{token(seed_key)}"

    async def start(self) -> None:
        seed = self.seed
        self.subs.append(await self.storage.nc.subscribe(self.bus(seed.key), cb=self._on_bus))
        await self._beat()
        seed.tasks.spawn(self._heartbeats(), "fleet heartbeats")
        seed.tasks.spawn(self._follow("presence", self._follow_presence), "fleet presence")
        seed.tasks.spawn(self._follow("records", self._follow_records), "fleet records")

    async def stop(self) -> None:
        """Leave: the other seeds count this one's users offline once its heartbeat is 30 s old."""
        try:
            for sub in self.subs:
                await sub.unsubscribe()
            await asyncio.wait_for(self.storage.close(), 5)
        except Exception as exc:  # noqa: BLE001 - the cluster is gone: nothing left to flush
            log.warning("leaving the fleet's cluster: %s", exc)

    # ------------------------------------------------------------------ members and presence

    def sweeps(self) -> bool:
        """Whether this seed expires the fleet's mail: the one of smallest key among the seeds
        heard from (a whole scan of the stream a minute is once per fleet, not once per seed;
        two seeds that briefly both think so drop each item once, see `NatsMail._drop`)."""
        return self.seed.key <= min(self.members, default=self.seed.key)

    async def _beat(self) -> None:
        now = now_ms()
        await self.storage.presence.heartbeat(self.seed.key, now, self.seed.name)
        alive = await self.storage.presence.alive(now)
        for key in self.members - alive:
            self.seed.home_lost(key)
        for key in alive - self.members:
            self.seed.home_back(key)
        self.members = alive

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_MS / 1000)
            try:
                await self._beat()
            except (TimeoutError, P2PError, OSError) as exc:
                log.warning("fleet heartbeat failed: %s", exc)
            except Exception as exc:  # noqa: BLE001 - a NATS error: the next beat tries again
                log.warning("fleet heartbeat failed: %s", exc)

    async def _follow(self, what: str, follow: Callable[[int], Any]) -> None:
        """Run a watch for good: after a failure (the cluster unreachable a while) it resumes
        from the last change it applied."""
        since = 0
        while True:
            try:
                since = await follow(since)
            except Exception as exc:  # noqa: BLE001 - a NATS error: resume shortly
                log.warning("following the fleet's %s: %s", what, exc)
                await asyncio.sleep(1)

    async def _follow_presence(self, since: int) -> int:
        """Apply the other fleet seeds' words on their users to the cached directory."""
        async for rev, seen in self.storage.presence.watch(since):
            since = rev
            if seen.seed_key == self.seed.key:
                continue
            if seen.seed_key not in self.members:  # it wrote just now: alive
                self.members.add(seen.seed_key)
                await self._beat()  # and its name
            self.seed.directory.set_local(
                seen.name, seen.seed_key, seen.online, seen.at, seen.auth_at
            )
            self.seed.presence_changed([seen.name])
        return since

    async def _follow_records(self, since: int) -> int:
        """Every record of the bucket into the cached directory, from the first (as a seed loads
        its disk at start), then each new one: the directory an outside link syncs with is
        whole, and a record written at another seed of the fleet goes out to this one's links."""
        async for _, stored in self.storage.records.watch(since):
            since = stored.revision
            folded = fold_name(stored.record.name)
            if self.loses(folded, stored):  # a write that slipped past compare-and-set
                self.seed.tasks.spawn(self._settle(folded), f"settle {folded}")
                continue
            if self.cache(folded, stored):
                self.seed.mesh.gossip("records", dump(stored.record), self.seed.revs.current()[1])
        return since

    def loses(self, folded: str, stored: Stored) -> bool:
        """Whether a write the bucket took loses by the directory's rule to the record cached
        here (the bucket's earlier word): it can only have slipped past compare-and-set."""
        entry = self.seed.directory.entries.get(folded)
        if entry is None:
            return False
        held = Stored(entry.record(), entry.renewed, entry.claimed, 0)
        try:
            wins(held, stored.record, stored.claimed, self.seed.directory.lease_ms)
        except ProtocolError:
            return True
        return False

    async def _settle(self, folded: str) -> None:
        try:
            held = await self.storage.records.settle(folded, self.seed.directory.lease_ms)
        except Exception as exc:  # noqa: BLE001 - the next write of the name settles it
            log.warning("cannot settle the record of %s: %s", folded, exc)
            return
        if held is not None:  # the cache follows the bucket (this seed's word may be the one
            self.cache(folded, held)  # that never got there)

    def presence(self, folded: str, online: bool, at: int, auth_at: int) -> None:
        """This seed's word on one of its users, for the fleet."""
        if self.storage.nc.is_closed:
            return  # stopping: the others see this seed silent instead
        seen = Seen(folded, self.seed.key, online, at, auth_at)
        self.seed.tasks.spawn(self._put_presence(seen), f"fleet presence {folded}")

    async def _put_presence(self, seen: Seen) -> None:
        try:
            await self.storage.presence.put(seen)
        except Exception as exc:  # noqa: BLE001 - the next change of the name says it again
            log.warning("cannot write the presence of %s: %s", seen.name, exc)

    # ------------------------------------------------------------------ records

    async def fetch(self, names: list[str]) -> None:
        """Bring the bucket's records of `names` into the cached directory (one round trip each,
        all at once)."""
        folded = list(dict.fromkeys(fold_name(n) for n in names))
        found = await asyncio.gather(*(self.storage.records.get(f) for f in folded))
        for name, stored in zip(folded, found, strict=True):
            if stored is not None:
                self.cache(name, stored)

    def cache(self, folded: str, stored: Stored) -> bool:
        """Put the bucket's record of a name in the cached directory; whether it was news. An
        older write of the name (a watch replaying history) never replaces a newer one."""
        entry = self.seed.directory.entries.get(folded)
        if entry is not None and (
            entry.same_as(stored.record)
            or (b64(entry.key) == stored.record.key and entry.seq > stored.record.seq)
        ):
            return False
        self.seed.directory.load(stored.record, stored.renewed, stored.claimed, 0)
        self.seed.directory.stamp(folded, self.seed.next_rev())  # outside links sync it
        return True

    def then(self, names: list[str], handle: Callable[[], None], session: SessionSide) -> None:
        """Handle a frame once the records it names are fresh from the bucket: the reads of a
        socket's frames run at once, the frames are handled in the order they came."""
        before = self.queued.get(session)

        async def run() -> None:
            fetched = asyncio.ensure_future(self.fetch(names))
            if before is not None:
                await asyncio.wait([before])
            try:
                await fetched
            except Exception as exc:  # noqa: BLE001 - answered from the cache then
                log.warning("cannot read the records bucket: %s", exc)
            if session in self.seed.sessions:
                handle()

        task = self.seed.tasks.spawn(run(), "fleet read")
        self.queued[session] = task

        def done(t: asyncio.Task[Any]) -> None:
            if self.queued.get(session) is t:
                del self.queued[session]

        task.add_done_callback(done)

    # ------------------------------------------------------------------ bus

    def send(self, seed_key: str, message: dict[str, Any]) -> int:
        """Hand `message` to the fleet seed `seed_key` over the bus (core NATS: at most once);
        1 when sent."""
        if seed_key not in self.members:
            return 0
        data = json.dumps(message, separators=(",", ":")).encode()
        self.seed.tasks.spawn(self.storage.nc.publish(self.bus(seed_key), data), "fleet bus")
        return 1

    async def _on_bus(self, msg: Any) -> None:
        if len(msg.data) > MAX_BUS_BYTES:
            return
        try:
            message = json.loads(msg.data)
            kind = message["kind"]
            if kind == "relay":
                carried = CARRIED.validate_python(message["frame"])
                self.seed.post.hand_relayed(message["from"], message["to"], carried)
            elif kind == "mail":
                self.seed.post.hand_mail(message["to"], message["text"])
        except (ValueError, KeyError, TypeError) as exc:
            log.debug("a bad bus message: %s", exc)

    def relay(self, home: str, sender: str, to: str, carried: Any) -> int:
        return self.send(
            home, {"kind": "relay", "from": sender, "to": to, "frame": json.loads(dump(carried))}
        )

    def forward_mail(self, to: str, text: str) -> None:
        """An item just held in the stream, over the bus to the fleet's other seeds where its
        recipient is (each hands it to the socket there)."""
        folded = fold_name(to)
        for home in self.seed.directory.homes(folded):
            if home != self.seed.key:
                self.send(home, {"kind": "mail", "to": folded, "text": text})
