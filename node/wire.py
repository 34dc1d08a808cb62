"""WebSocket options every p2p-chat socket shares: the subprotocol, no compression, the frame limit."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from .protocol import MAX_FRAME, SUBPROTOCOL

# permessage-deflate costs ~3x the memory per connection and halves throughput, and boxed
# messages do not compress: every p2p-chat socket runs without it.
SOCKET_OPTIONS: dict[str, Any] = {"compression": None, "subprotocols": [SUBPROTOCOL]}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def dial(url: str, max_frame: int = MAX_FRAME, timeout: float = 5.0, **kw: Any) -> ClientConnection:
    """Open a client socket speaking p2pchat.v1 (no proxy: peers are addressed directly)."""
    return await connect(
        url, max_size=max_frame, open_timeout=timeout, proxy=None, **SOCKET_OPTIONS, **kw
    )


async def close_now(ws: Any, code: int, reason: str, grace: float = 1.0) -> None:
    """Close with a code and reason, without waiting long on a peer that stopped reading.

    A flooding or stalled peer may have filled our receive queue, which pauses reading, so its
    half of the closing handshake would never be seen: after `grace` seconds the socket is dropped.
    """
    try:
        async with asyncio.timeout(grace):
            await ws.close(code, reason)
    except TimeoutError:
        ws.transport.abort()


def listen_url(server: Any, host: str) -> tuple[int, str]:
    """The port a server bound (port 0 picks one) and the ws:// URL it is reached at."""
    port = server.sockets[0].getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return port, f"ws://{shown}:{port}"


class Service:
    """Something started and stopped around an `async with` block (a seed, a user node)."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def frame(obj: dict[str, Any]) -> str:
    """Compact JSON text for a frame built by hand (tests and raw clients)."""
    return json.dumps(obj, separators=(",", ":"))
