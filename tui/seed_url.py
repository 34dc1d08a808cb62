"""Checking a seed URL typed by the user (/seed, --seed, tui.toml) before it is used or saved.

A URL the node cannot dial would otherwise be saved and break every later start.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from node.errors import InvalidInput
from node.wire.protocol import MAX_SEED_URL


def check_seed_url(url: str) -> str:
    """The URL without a trailing slash, or InvalidInput saying what is wrong with it."""
    url = url.strip()
    if len(url.encode()) > MAX_SEED_URL:
        raise InvalidInput(f"a seed URL is at most {MAX_SEED_URL} bytes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a port that is not a number or out of range, a broken IPv6 host
        why = "the port must be a number 1-65535" if "Port" in str(exc) else str(exc)
        raise InvalidInput(f"{url!r}: {why}") from None
    if parts.scheme not in ("ws", "wss"):
        raise InvalidInput(f"{url!r}: a seed URL starts with ws:// or wss://")
    if not parts.hostname:
        raise InvalidInput(f"{url!r}: a seed URL needs a host, as in ws://127.0.0.1:5001")
    if port is not None and not 1 <= port <= 65535:
        raise InvalidInput(f"{url!r}: the port must be 1-65535")
    if parts.query or parts.fragment or parts.username:
        raise InvalidInput(f"{url!r}: a seed URL has no query, fragment or user part")
    return url.rstrip("/")
