"""Who a user talks to: pinned keys (the first key seen is trusted, a change holds traffic) and resolved records."""

from __future__ import annotations

from collections.abc import Callable

from ..crypto.keys import fingerprint
from ..wire.names import fold_name
from ..wire.protocol import Found
from .events import Event, KeyChanged
from .store import UserStore


class KeyPins:
    """The key pinned for each contact, checked against every key a lookup or a message brings."""

    def __init__(self, store: UserStore, emit: Callable[[Event], None]) -> None:
        self.store = store
        self.emit = emit

    def holds(self, name: str, key: str) -> bool:
        """True when `key` may be used for `name`: pinned now if it is the first seen.

        A different key stops traffic both ways until the user accepts it; the change is
        reported once per new key.
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
                    message=f"{contact.name}'s key changed; messages to and from {contact.name} "
                    "are held until you accept the new key (/accept NAME)",
                )
            )
        return False


class RecordCache:
    """Lookup answers kept for `ttl` seconds (monotonic time passed in), so delivery does not ask every time."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.found: dict[str, tuple[Found, float]] = {}

    def get(self, name: str, now: float) -> Found | None:
        cached = self.found.get(fold_name(name))
        if cached is None or now - cached[1] >= self.ttl:
            return None
        return cached[0]

    def put(self, name: str, found: Found, now: float) -> None:
        self.found[fold_name(name)] = (found, now)

    def forget(self, name: str) -> None:
        """The answer may be out of date (a new endpoint, a dead link): ask again next time."""
        self.found.pop(fold_name(name), None)
