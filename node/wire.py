"""WebSocket options every p2p-chat socket shares: the subprotocol, no compression, the frame limit."""

from __future__ import annotations

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


def frame(obj: dict[str, Any]) -> str:
    """Compact JSON text for a frame built by hand (tests and raw clients)."""
    return json.dumps(obj, separators=(",", ":"))
