"""The storage seam on a NATS JetStream cluster: the state of a fleet of seeds that hold none.

Records live in a KV bucket (R3, with history, so a write that slipped past compare-and-set
during a leader change still converges by the directory's own rule), presence in a KV bucket
(one key per name: each home seed's latest word, written with compare-and-set) with a bucket of
heartbeats, mail in a stream (one subject per recipient and sender: the server enforces the
per-pair limit and the lifetime, and drops a second deposit of an item inside its duplicate
window) with an index bucket per item (dedup beyond the window, and what a take deletes) and a
quota bucket per recipient and sender, updated with compare-and-set so that concurrent senders
at different seeds cannot overrun a quota.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext, api
from nats.js.errors import (
    APIError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NoKeysError,
    NotFoundError,
)
from nats.js.kv import KeyValue

from ...errors import ConfigError, StoreError
from ...runtime import quiet_logger
from ...wire.names import fold_name
from ...wire.protocol import MailItem, Record, Taken
from ..mailbox import MINUTE_MS, MailLimits, ident_of
from .base import (
    DUPLICATE,
    HELD,
    SILENT_MS,
    Conflict,
    Deleted,
    Deposited,
    Known,
    Seen,
    Stored,
    Underway,
    apply_record,
    converge,
)

log = quiet_logger("p2p.seed.nats")
T = TypeVar("T")

# sync_interval (fsync of every write) arrived after 2.9, with the fix of the 2023
# compare-and-set race (2.9.10 lost most "successful" concurrent updates of one key)
MIN_SERVER = (2, 10, 0)
HISTORY = 16  # writes of a name kept, for convergence after a leader change
DUPLICATE_WINDOW_S = 120.0
MAX_SEEDS_PER_NAME = 16  # home seeds' words kept per name (the oldest goes)
CAS_TRIES = 256
CONNECT_WAIT_S = 15.0
PER_SUBJECT_FULL = 10077
# a write that names a revision no longer the latest (10071 for a stream's sequence, 10164 for a
# subject's, as a key-value delete names it)
WRONG_LAST_SEQUENCE = frozenset({10071, 10164})
# _RACE: a create that loses to a write still in flight at the leader is refused, and nats-py's
# create then reads the key to tell "deleted" from "held": before the winner is applied it finds
# nothing. Either way the create lost; it is a conflict like any other.  # JetStream: maximum messages per subject exceeded


def parse_url(url: str) -> tuple[list[str], str]:
    """`nats://H1:P1,H2:P2[/FLEET]` -> (the server URLs, the fleet's name: "p2p" by default);
    ConfigError when it names no server."""
    if not url.startswith("nats://"):
        raise ConfigError(f"storage {url!r} is neither 'sqlite' nor a nats:// URL")
    hosts_part, _, fleet = url[len("nats://") :].partition("/")
    hosts = [h.strip() for h in hosts_part.split(",") if h.strip()]
    if not hosts:
        raise ConfigError(f"storage {url!r} names no NATS server")
    return [f"nats://{h}" for h in hosts], fleet or "p2p"


def token(text: str) -> str:
    """A name or key as a subject token or KV key (letters and digits only)."""
    return base64.b32encode(text.encode()).decode().rstrip("=").lower()


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def check_version(version: tuple[int, int, int]) -> None:
    if version < MIN_SERVER:
        shown = ".".join(map(str, version))
        need = ".".join(map(str, MIN_SERVER))
        raise ConfigError(
            f"nats-server {shown} is too old for a fleet: it lacks sync_interval and the "
            f"compare-and-set fix; run {need} or later"
        )


async def follow(js: Any, subjects: Any, stream: str, since: int, cb: Any) -> Any:
    """An ordered subscription to a stream's subjects from just after revision `since`: a watch
    that replays what came after it, then follows."""
    return await js.subscribe(
        subjects,
        stream=stream,
        cb=cb,
        ordered_consumer=True,
        deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
        config=api.ConsumerConfig(opt_start_seq=since + 1),
    )


class NatsRecords:
    def __init__(self, kv: KeyValue, stream: str, prefix: str, js: JetStreamContext) -> None:
        self.kv = kv
        self.stream = stream
        self.subjects = f"$KV.{prefix}.>"
        self.pre = f"$KV.{prefix}."
        self.js = js

    async def get(self, folded: str) -> Stored | None:
        try:
            entry = await self.kv.get(token(folded))
        except KeyNotFoundError:
            return None
        return _stored(entry.value, entry.revision or 0)

    async def put(
        self, folded: str, record: Record, renewed: int, claimed: int, expected: int
    ) -> int:
        value = _json({"r": record.model_dump(), "renewed": renewed, "claimed": claimed})
        try:
            if expected == 0:
                return await self.kv.create(token(folded), value)
            return await self.kv.update(token(folded), value, last=expected)
        except (KeyWrongLastSequenceError, KeyNotFoundError):  # (see _RACE)
            raise Conflict(f"the record of {folded!r} changed since revision {expected}") from None

    def save(self, folded: str, accepted: Stored, now: int, lease_ms: int) -> asyncio.Future[Any]:
        """The fleet's seeds all write the bucket: the rule is applied again against it with
        compare-and-set (only the record counts: the rest is the caller's cache's)."""
        return asyncio.ensure_future(apply_record(self, folded, accepted.record, now, lease_ms))

    async def watch(self, since: int = 0) -> AsyncIterator[tuple[str, Stored]]:
        """(folded name's token, record) of every write after revision `since`, then each new one."""
        queue: asyncio.Queue[tuple[str, int, bytes]] = asyncio.Queue()

        async def got(msg: Any) -> None:
            queue.put_nowait((msg.subject[len(self.pre) :], msg.metadata.sequence.stream, msg.data))

        sub = await follow(self.js, self.subjects, self.stream, since, got)
        try:
            while True:
                key, rev, data = await queue.get()
                if data:
                    yield key, _stored(data, rev)
        finally:
            await sub.unsubscribe()

    async def settle(self, folded: str, lease_ms: int) -> Stored | None:
        """Put back the record the name's history converges on by the rule when the latest write
        is not it (a write slipped past compare-and-set in a leader change); what is held after."""
        history = await self.history(folded)
        best = converge(history, lease_ms)
        if best is None or best.revision == history[-1].revision:
            return best
        try:
            revision = await self.put(
                folded, best.record, best.renewed, best.claimed, history[-1].revision
            )
        except Conflict:  # written again meanwhile: that write is settled in its turn
            return await self.get(folded)
        log.warning("the record of %r settled back to seq %d", folded, best.record.seq)
        return Stored(best.record, best.renewed, best.claimed, revision)

    async def history(self, folded: str) -> list[Stored]:
        try:
            entries = await self.kv.history(token(folded))
        except NoKeysError:  # nothing held
            return []
        return [_stored(e.value, e.revision or 0) for e in entries if e.value]

    async def changes(self, since: int, limit: int) -> list[Stored]:
        out: list[Stored] = []
        seq = since + 1
        while len(out) < limit:
            try:
                msg = await self.js.get_msg(self.stream, seq=seq, subject=self.subjects, next=True)
            except NotFoundError:
                break
            seq = (msg.seq or seq) + 1
            if not msg.data or msg.subject is None:
                continue
            latest = await self.kv.get(msg.subject[len(self.pre) :])
            if latest.revision == msg.seq:  # else a later write of the name comes later
                out.append(_stored(msg.data, msg.seq or 0))
        return out


async def _logged(what: str, write: Awaitable[T]) -> T:
    """A write whose failure its waiter sees as a failure only: the reason goes to the log."""
    try:
        return await write
    except Exception as exc:
        log.warning("%s: %s", what, exc)
        raise


def _stored(value: bytes | None, revision: int) -> Stored:
    if not value:
        raise StoreError("an empty record in the bucket")
    obj = json.loads(value)
    # written by a seed of the fleet after it checked the record (as a seed's own disk is)
    return Stored(Record.model_construct(**obj["r"]), obj["renewed"], obj["claimed"], revision)


def _seen(obj: dict[str, Any]) -> Seen:
    return Seen(
        name=obj["name"],
        seed_key=obj["seed_key"],
        online=obj["online"],
        at=obj["at"],
        auth_at=obj.get("auth_at", 0),
        text=obj.get("text", ""),
    )


def _seen_obj(seen: Seen) -> dict[str, Any]:
    return {
        "name": seen.name,
        "seed_key": seen.seed_key,
        "online": seen.online,
        "at": seen.at,
        "auth_at": seen.auth_at,
        "text": seen.text,
    }


class NatsPresence:
    def __init__(self, kv: KeyValue, beats: KeyValue, prefix: str, js: JetStreamContext) -> None:
        self.kv = kv
        self.beats = beats
        self.names: dict[str, str] = {}  # seed key -> the name its heartbeat gave
        self.stream = f"KV_{prefix}"
        self.subjects = f"$KV.{prefix}.>"
        self.js = js

    async def _read(self, key: str) -> tuple[list[dict[str, Any]], int]:
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return [], 0
        return (json.loads(entry.value) if entry.value else []), entry.revision or 0

    async def put(self, seen: Seen) -> bool:
        key = token(seen.name)
        for _ in range(CAS_TRIES):
            items, rev = await self._read(key)
            held = [i for i in items if i["seed_key"] == seen.seed_key]
            if held and held[0]["at"] >= seen.at:
                return False
            rest = [i for i in items if i["seed_key"] != seen.seed_key]
            rest.sort(key=lambda i: i["at"])
            new = [*rest[-(MAX_SEEDS_PER_NAME - 1) :], _seen_obj(seen)]
            try:
                if rev == 0:
                    await self.kv.create(key, _json(new))
                else:
                    await self.kv.update(key, _json(new), last=rev)
                return True
            except (KeyWrongLastSequenceError, KeyNotFoundError):  # (see _RACE)
                continue
        raise StoreError(f"the presence of {seen.name!r} kept changing")

    async def latest(self, folded: str) -> list[Seen]:
        items, _ = await self._read(token(folded))
        return [_seen(i) for i in items]

    async def heartbeat(self, seed_key: str, now: int, name: str = "") -> None:
        await self.beats.put(token(seed_key), _json({"key": seed_key, "at": now, "name": name}))

    def name_of(self, seed_key: str) -> str | None:
        return self.names.get(seed_key) or None

    async def alive(self, now: int) -> set[str]:
        try:
            keys = await self.beats.keys()
        except NoKeysError:  # no seed ever beat
            return set()
        out = set()
        for key in keys:
            try:
                obj = json.loads((await self.beats.get(key)).value or b"{}")
            except KeyNotFoundError:
                continue
            if obj.get("at", 0) >= now - SILENT_MS:
                out.add(obj["key"])
                self.names[obj["key"]] = str(obj.get("name", ""))[:64]
        return out

    async def watch(self, since: int = 0) -> AsyncIterator[tuple[int, Seen]]:
        queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()

        async def got(msg: Any) -> None:
            queue.put_nowait((msg.metadata.sequence.stream, msg.data))

        sub = await follow(self.js, self.subjects, self.stream, since, got)
        try:
            while True:
                rev, data = await queue.get()
                for obj in json.loads(data) if data else []:
                    yield rev, _seen(obj)
        finally:
            await sub.unsubscribe()


class NatsMail:
    """Mail in a stream; per item an index entry, per recipient and sender a quota counter."""

    def __init__(
        self,
        js: JetStreamContext,
        stream: str,
        subject: str,
        index: KeyValue,
        taken: KeyValue,
        quota: KeyValue,
        limits: MailLimits,
    ) -> None:
        self.js = js
        self.stream = stream
        self.subject = subject
        self.index = index
        self.taken = taken
        self.quota = quota
        self.limits = limits

    @staticmethod
    def _id(to: str, ident: tuple[str, str, str]) -> str:
        return hashlib.sha256(_json([to, *ident])).hexdigest()

    async def _counted(self, key: str) -> tuple[int, int, int]:
        try:
            entry = await self.quota.get(key)
        except KeyNotFoundError:
            return 0, 0, 0
        items, size = json.loads(entry.value or b"[0,0]")
        return items, size, entry.revision or 0

    async def _count(self, key: str, items: int, size: int, cap: tuple[int, int] | None) -> bool:
        """Add to a quota counter with compare-and-set; False (nothing added) if it would go
        over `cap` (items, bytes)."""
        for _ in range(CAS_TRIES):
            held, held_bytes, rev = await self._counted(key)
            new = (max(0, held + items), max(0, held_bytes + size))
            if cap is not None and items > 0 and (new[0] > cap[0] or new[1] > cap[1]):
                return False
            try:
                if rev == 0:
                    await self.quota.create(key, _json(new))
                else:
                    await self.quota.update(key, _json(new), last=rev)
                return True
            except (KeyWrongLastSequenceError, KeyNotFoundError):  # (see _RACE)
                continue
        raise StoreError(f"the mail quota {key!r} kept changing")

    async def _taken_or_held(self, mid: str) -> bool:
        for kv in (self.index, self.taken):
            try:
                await kv.get(mid)
                return True
            except KeyNotFoundError:
                continue
        return False

    def known(self, to: str, ident: tuple[str, str, str]) -> Known | None:
        return None  # only the cluster knows, a round trip away

    def deposit(
        self,
        item: MailItem,
        text: str,
        now: int,
        source: str = "",
        sender_age_ms: int | None = None,
        source_cap: int | None = None,
    ) -> Underway[Deposited]:
        """Decided once durable in the stream. The fleet keeps quotas per recipient and sender,
        not shares per source: `source` and `source_cap` are not counted here."""
        what = f"cannot deposit for {item.to}"
        deposit = self._deposit(item, text, now, sender_age_ms)
        return Underway(None, asyncio.ensure_future(_logged(what, deposit)))

    async def _deposit(
        self, item: MailItem, text: str, now: int, sender_age_ms: int | None
    ) -> Deposited:
        lim = self.limits
        if item.at < now - lim.keep_ms:
            return Deposited(refusal="the item is older than the mail lifetime")
        ident = ident_of(item)
        to, sender = fold_name(item.to), ident[0]
        mid = self._id(to, ident)
        if await self._taken_or_held(mid):
            return DUPLICATE
        size = len(text)
        if not await self._count(
            f"to.{token(to)}", 1, size, (lim.per_recipient_items, lim.per_recipient_bytes)
        ):
            return Deposited(refusal=f"the mailbox of {to} is full")
        quota = (
            (lim.per_sender_items, lim.per_sender_bytes)
            if sender_age_ms is None
            else lim.sender_quota(sender_age_ms)
        )
        if not await self._count(f"from.{token(sender)}", 1, size, quota):
            await self._count(f"to.{token(to)}", -1, -size, None)
            return Deposited(refusal=f"{sender} has too much mail held already")
        refusal: str | None = None
        try:
            ack = await self.js.publish(
                f"{self.subject}.{token(to)}.{token(sender)}",
                text.encode(),
                stream=self.stream,
                headers={"Nats-Msg-Id": mid},
            )
        except APIError as exc:
            if exc.err_code != PER_SUBJECT_FULL:
                await self._release(to, sender, size)
                raise StoreError(f"the mail stream refused an item: {exc.description}") from None
            refusal = f"{sender} has too much mail held for {to} already"
        if refusal is not None or ack.duplicate:
            await self._release(to, sender, size)
            return Deposited(refusal=refusal) if refusal else DUPLICATE
        meta = {"seq": ack.seq, "to": to, "from": sender, "size": size, "at": item.at}
        try:
            await self.index.create(mid, _json(meta))
        except (
            KeyWrongLastSequenceError,
            KeyNotFoundError,
        ):  # a second copy got in past the window (see _RACE)
            await self.js.delete_msg(self.stream, ack.seq)
            await self._release(to, sender, size)
            return DUPLICATE
        return HELD

    async def _release(self, to: str, sender: str, size: int) -> None:
        await self._count(f"to.{token(to)}", -1, -size, None)
        await self._count(f"from.{token(sender)}", -1, -size, None)

    async def pending(self, recipient: str) -> list[str]:
        subject = f"{self.subject}.{token(fold_name(recipient))}.*"
        out: list[str] = []
        seq = 1
        while len(out) < self.limits.per_recipient_items:
            try:
                msg = await self.js.get_msg(self.stream, seq=seq, subject=subject, next=True)
            except NotFoundError:
                break
            except Exception as exc:  # noqa: BLE001 - a NATS error: the mail stays for next time
                raise StoreError(f"cannot read the fleet's mail stream: {exc}") from None
            seq = (msg.seq or seq) + 1
            if msg.data:
                out.append(msg.data.decode())
        return out

    async def _drop(self, mid: str, revision: int, meta: dict[str, Any]) -> bool:
        """Forget a held item once: its index entry is deleted only at the revision read, so
        of a take and an expiry (or two seeds) that race for it, one releases its quota."""
        try:
            await self.index.delete(mid, last=revision)
        except APIError as exc:
            if exc.err_code in WRONG_LAST_SEQUENCE:
                return False  # dropped (or written again) by someone else meanwhile
            raise
        # the index entry was the item's: its quota goes back now, whatever the stream says next
        await self._release(meta["to"], meta["from"], meta["size"])
        try:
            await self.js.delete_msg(self.stream, meta["seq"])
        except NotFoundError:
            pass  # aged out by the server already
        except Exception as exc:  # noqa: BLE001 - a NATS error: the stream ages it out in time
            log.warning("a dropped mail item stays in the stream until it ages out: %s", exc)
        return True

    async def changes(self, kind: str, since: int, limit: int) -> list[tuple[int, str]]:
        """None: the stream's sequence is not a seed's change number. An outside link gets the
        fleet's mail as it is held (gossip), not by sync."""
        return []

    def take(self, taken: Taken, text: str = "") -> Underway[Deleted]:
        what = f"cannot take for {taken.to}"
        return Underway(None, asyncio.ensure_future(_logged(what, self._take(taken))))

    async def _take(self, taken: Taken) -> Deleted:
        to = fold_name(taken.to)
        ttl_until = taken.at + self.limits.keep_ms + MINUTE_MS
        count = 0
        for sender, mtype, fid in dict.fromkeys(tuple(i) for i in taken.ids):
            mid = self._id(to, (fold_name(sender), mtype, fid))
            try:
                entry = await self.index.get(mid)
            except KeyNotFoundError:
                continue
            await self.taken.put(mid, _json({"until": ttl_until}))
            count += int(
                await self._drop(mid, entry.revision or 0, json.loads(entry.value or b"{}"))
            )
        return Deleted(count)

    async def expire(self, now: int) -> None:
        """Drop what is past its lifetime (one seed of the fleet does it: see `Fleet.sweeps`)."""
        try:
            await self._expire(now)
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - a NATS error: the next sweep tries again
            raise StoreError(f"cannot expire the fleet's mail: {exc}") from None

    async def _expire(self, now: int) -> None:
        """The stream is read through its leader first: a key
        listing comes from a consumer that may sit on a replica a moment behind, and would miss
        an item just held; then the index's keys, for items the server aged out itself."""
        before = now - self.limits.keep_ms
        mids: list[str] = []
        seq = 1
        while True:
            try:
                msg = await self.js.get_msg(
                    self.stream, seq=seq, subject=f"{self.subject}.>", next=True
                )
            except NotFoundError:
                break
            seq = (msg.seq or seq) + 1
            mid = (msg.headers or {}).get("Nats-Msg-Id")
            if mid:
                mids.append(mid)
        try:
            mids += await self.index.keys()
        except NoKeysError:  # nothing indexed
            pass
        for mid in dict.fromkeys(mids):
            try:
                entry = await self.index.get(mid)
            except KeyNotFoundError:
                continue
            meta = json.loads(entry.value or b"{}")
            if meta.get("at", now) < before:
                await self._drop(mid, entry.revision or 0, meta)

    async def held_for(self, recipient: str) -> int:
        items, _, _ = await self._counted(f"to.{token(fold_name(recipient))}")
        return items


class NatsStorage:
    """The seam on a JetStream cluster; `prefix` names the buckets and the stream (one fleet)."""

    def __init__(self, nc: Client, records: NatsRecords, presence: NatsPresence, mail: NatsMail):
        self.nc = nc
        self.prefix = "p2p"
        self.js: JetStreamContext | None = None
        self.records = records
        self.presence = presence
        self.mail = mail

    @classmethod
    async def connect(cls, url: str, limits: MailLimits, prefix: str | None = None) -> NatsStorage:
        """Connect, refuse a server too old, and create (or bind) the buckets and the stream:
        R3, or one replica per server when fewer are named. `prefix` overrides the fleet's name."""
        servers, fleet = parse_url(url)
        prefix = prefix or fleet
        replicas = min(3, len(servers))

        async def quiet(exc: Exception) -> None:
            log.debug("nats: %s", exc)

        try:
            # reconnects forever once connected; the first connection gets CONNECT_WAIT_S
            nc = await asyncio.wait_for(
                nats.connect(
                    servers=servers,
                    connect_timeout=2,
                    max_reconnect_attempts=-1,
                    error_cb=quiet,
                ),
                CONNECT_WAIT_S,
            )
        except (OSError, TimeoutError, nats.errors.Error) as exc:
            raise StoreError(
                f"cannot reach the NATS servers of {url}: {str(exc) or 'no answer'}"
            ) from None
        try:
            v = nc.connected_server_version
            check_version((v.major, v.minor, v.patch))
            js = nc.jetstream(timeout=10)
            file = api.StorageType.FILE

            async def bucket(name: str, history: int = 1, ttl: float | None = None) -> KeyValue:
                return await js.create_key_value(
                    bucket=f"{prefix}_{name}",
                    history=history,
                    replicas=replicas,
                    storage=file,
                    ttl=ttl,
                    # reads go to the leader: a replica's direct answer may lag a write
                    # acknowledged a moment ago (a name registered at another seed)
                    direct=False,
                )

            records = await bucket("records", HISTORY)
            presence = await bucket("presence")
            beats = await bucket("seeds")
            index = await bucket("mailidx")
            taken = await bucket("taken", ttl=limits.keep_ms / 1000 + 60)
            quota = await bucket("quota")
            stream = f"{prefix}_mail"
            subject = f"{prefix}.mail"
            await js.add_stream(
                name=stream,
                subjects=[f"{subject}.*.*"],
                max_msgs_per_subject=limits.per_pair_items,
                discard=api.DiscardPolicy.NEW,
                discard_new_per_subject=True,
                max_age=limits.keep_ms / 1000,
                max_bytes=limits.seed_bytes,
                duplicate_window=DUPLICATE_WINDOW_S,
                num_replicas=replicas,
                storage=file,
            )
        except BaseException:
            await nc.close()
            raise
        storage = cls(
            nc,
            NatsRecords(records, f"KV_{prefix}_records", f"{prefix}_records", js),
            NatsPresence(presence, beats, f"{prefix}_presence", js),
            NatsMail(js, stream, subject, index, taken, quota, limits),
        )
        storage.prefix = prefix
        storage.js = js
        return storage

    async def close(self) -> None:
        await self.nc.close()
