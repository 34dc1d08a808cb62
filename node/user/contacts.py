"""Who a user talks to: pinned keys (the first key seen is trusted, a change holds traffic) and
resolved records, each verified: no seed is believed about a record it cannot prove.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ..crypto.keys import fingerprint
from ..crypto.signing import verify_record
from ..errors import ConnectionLost, ErrorCode, RemoteError, SeedUnavailable
from ..runtime import quiet_logger
from ..wire.fit import batches
from ..wire.limits import RateLimit
from ..wire.names import fold_name
from ..wire.protocol import Found, Record, dump
from .events import ContactRespelled, Event, KeyChanged
from .seed_client import SeedClient
from .store import UserStore

log = quiet_logger("p2p.user.contacts")

NEGATIVE_TTL = 10.0  # seconds a name nobody holds is not asked about again (a flood of strangers)
PUBLISH_EVERY = 30.0  # seconds between publishing contacts' records to a seed that lost them


class KeyPins:
    """The key pinned for each contact, checked against every key a lookup or a message brings."""

    def __init__(self, store: UserStore, emit: Callable[[Event], None]) -> None:
        self.store = store
        self.emit = emit

    def holds(self, name: str, key: str) -> bool:
        """True when `key` may be used for `name`: pinned now if it is the first seen.

        A different key holds what is sent to `name` until the user accepts it (what comes from
        it is kept, flagged); the pinned key is not replaced before that. The change is reported
        once per new key.
        """
        contact = self.store.contact(name)
        if contact is None:
            return True
        if contact.key is None:
            self.store.pin(name, key)
            return True
        if contact.key == key:
            return True
        if contact.changed_key != key:
            self.store.set_changed_key(name, key)
            self.emit(
                KeyChanged(
                    name=contact.name,
                    old_fingerprint=fingerprint(contact.key),
                    new_fingerprint=fingerprint(key),
                    message=f"{contact.name}'s key changed; messages to {contact.name} are held "
                    f"until you accept the new key (/accept {contact.name}), and messages from the "
                    "new key are kept but marked as not from the key you trusted",
                )
            )
        return False


class RecordBook:
    """Lookups through the seed, each answer verified and kept a while.

    A record counts only when its signature holds for its key and its name is the one asked;
    a name nobody holds is not asked about again for a minute, and lookups for incoming traffic
    spend their own budget, so strangers flooding the endpoint cost the seed link nothing.
    """

    def __init__(
        self,
        seed: SeedClient,
        store: UserStore,
        ttl: float,
        inbound: RateLimit,
        emit: Callable[[Event], None],
    ) -> None:
        self.seed = seed
        self.store = store
        self.emit = emit
        self.ttl = ttl
        self.inbound = inbound
        self.found: dict[str, tuple[Found, float]] = {}
        self.missing: dict[str, float] = {}
        self.asking: dict[str, asyncio.Future[Found]] = {}  # one lookup in flight per name
        self.published = -PUBLISH_EVERY
        self.lies = 0

    def get(self, name: str, now: float) -> Found | None:
        cached = self.found.get(fold_name(name))
        if cached is None or now - cached[1] >= self.ttl:
            return None
        return cached[0]

    def forget(self, name: str) -> None:
        """The answer may be out of date (a new endpoint, a dead link): ask again next time."""
        self.found.pop(fold_name(name), None)
        self.missing.pop(fold_name(name), None)

    async def resolve(self, name: str, inbound: bool = False) -> Found:
        """The verified answer for `name`; RemoteError NOT_FOUND when nobody holds it, RemoteError
        BAD_SIGNATURE when the seed's answer does not prove itself, SeedUnavailable when no seed
        answers (or, for incoming traffic, when its lookup budget is spent)."""
        folded = fold_name(name)
        now = time.monotonic()
        found = self.get(name, now)
        if found is not None:
            return found
        if now - self.missing.get(folded, -NEGATIVE_TTL) < NEGATIVE_TTL:
            raise RemoteError(ErrorCode.NOT_FOUND, f"nobody is registered as {name}")
        asking = self.asking.get(folded)
        if asking is not None:
            return await asyncio.shield(asking)
        if inbound and not self.inbound.allows(now):
            raise SeedUnavailable("too many lookups for incoming traffic; retry later")
        fut: asyncio.Future[Found] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved
        self.asking[folded] = fut
        try:
            found = await self._ask(name, folded, now)
        except BaseException as exc:
            fut.set_exception(exc if isinstance(exc, Exception) else SeedUnavailable("cancelled"))
            raise
        else:
            fut.set_result(found)
            return found
        finally:
            del self.asking[folded]

    async def _ask(self, name: str, folded: str, now: float) -> Found:
        try:
            found = await self.seed.lookup(name)
        except RemoteError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                self.missing[folded] = now
                if len(self.missing) > 10_000:
                    self.missing.clear()
            raise
        if fold_name(found.record.name) != folded or not verify_record(found.record):
            self.lies += 1
            log.warning(
                "the seed answered a lookup for %s with a record that does not prove itself", name
            )
            raise RemoteError(ErrorCode.BAD_SIGNATURE, "the seed's answer does not prove itself")
        self.found[folded] = (found, now)
        self.missing.pop(folded, None)
        contact = self.store.contact(name)
        if contact is not None:
            self.store.keep_record(name, dump(found.record))
            # the owner's spelling, from a record that proves itself with the contact's own key
            if contact.key in (None, found.record.key) and self.store.respell(found.record.name):
                self.emit(ContactRespelled(name=found.record.name))
        return found

    def last_record(self, name: str) -> Record | None:
        """The last verified record kept for a contact."""
        contact = self.store.contact(name)
        if contact is None or contact.record is None:
            return None
        return Record.model_validate_json(contact.record)

    async def publish_contacts(self) -> int:
        """Hand the home seed every contact's last record (a new seed learns the names again)."""
        now = time.monotonic()
        if now - self.published < PUBLISH_EVERY:
            return 0
        self.published = now
        records = [Record.model_validate_json(c.record) for c in self.store.contacts() if c.record]
        accepted = 0
        # cut by encoded size: 200 records with long endpoints would pass the seed's frame limit
        for part in batches([dump(r) for r in records], most=200):
            try:
                accepted += await self.seed.publish(records[part.start : part.stop])
            except (RemoteError, SeedUnavailable, ConnectionLost) as exc:
                log.debug("publish failed: %s", exc)
                break
        if accepted:
            self.missing.clear()
        return accepted
