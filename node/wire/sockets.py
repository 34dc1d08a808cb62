"""What every p2p-chat socket shares: the subprotocol, no compression, the frame limit, fair turns."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from .protocol import MAX_FRAME, SUBPROTOCOL

# asyncio reads up to 256 KiB per socket event and websockets parses every frame in it before
# anything else runs: for a flooder's 48-byte frames that is 5,000 frames, ~20 ms of one peer's
# work holding up every other socket. 4 KiB bounds that to ~0.4 ms; a 600-byte chat frame costs
# ~100 us to handle, so the extra reads cost well under 1%.
READ_CHUNK = 4 * 1024
# frames read or written for one peer before the other sockets get a turn (see Turns)
FAIR_SHARE = 16


class FairReads:
    """A socket that reads at most READ_CHUNK per turn of the event loop, and whose keepalive
    (where websockets runs one) gives up on a full write buffer too."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        if hasattr(
            type(transport), "max_size"
        ):  # asyncio's selector transports; others read their own way
            transport.max_size = READ_CHUNK  # type: ignore[attr-defined]

    async def keepalive(self: Any) -> None:
        """websockets' keepalive starts its pong timeout only once the ping is written, which a
        peer that stopped reading never lets happen: here the timeout covers the write as well,
        and a peer that does not answer in time is dropped."""
        if self.ping_interval is None:  # keepalive off for this socket
            return
        while True:
            await asyncio.sleep(self.ping_interval)
            try:
                async with asyncio.timeout(self.ping_timeout or self.ping_interval):
                    await (await self.ping())
            except TimeoutError:
                self.transport.abort()
                return
            except ConnectionClosed:
                return


class FairServerConnection(FairReads, ServerConnection):
    pass


def address_group(host: str) -> str:
    """The unit a per-address cap counts: an IPv4 address, or an IPv6 /64 (one home, one provider).

    An IPv4 client of a dual-stack socket shows as an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`,
    in any spelling): it counts as the IPv4 address it is.
    """
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return ":".join(address.exploded.split(":")[:4]) + "::/64"


DUAL_STACK_HOSTS = ("::", "[::]")


async def listen(handler: Any, host: str, port: int, **kw: Any) -> Server:
    """`websockets.serve`, dual-stack where the host is `::`: IPv4 clients are served too (as
    IPv4-mapped addresses, which `address_group` counts as IPv4), not refused by IPV6_V6ONLY."""
    if host in DUAL_STACK_HOSTS and socket.has_dualstack_ipv6():
        sock = socket.create_server(
            ("::", port), family=socket.AF_INET6, dualstack_ipv6=True, backlog=1024
        )
        sock.setblocking(False)
        return await serve(handler, sock=sock, **kw)
    return await serve(handler, host, port, **kw)


class AddressGate:
    """Live connections per address group, capped: one address cannot take every socket.

    Checked when the TCP connection is made, before any handshake: an idle socket that never
    speaks counts as much as a busy one.
    """

    def __init__(self, per_address: int, total: int | None = None) -> None:
        self.per_address = per_address
        self.total = total
        self.live: dict[str, int] = {}
        self.count = 0
        self.refused = 0

    def admit(self, host: str) -> bool:
        group = address_group(host)
        count = self.live.get(group, 0)
        if count >= self.per_address or (self.total is not None and self.count >= self.total):
            self.refused += 1
            return False
        self.live[group] = count + 1
        self.count += 1
        return True

    def release(self, host: str) -> None:
        self.count -= 1
        group = address_group(host)
        count = self.live.get(group, 0) - 1
        if count > 0:
            self.live[group] = count
        else:
            self.live.pop(group, None)


def gated(gate: AddressGate) -> type[FairServerConnection]:
    """A server connection class that drops, at once, a connection over its address's cap."""

    class GatedConnection(FairServerConnection):
        admitted: str | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            peer = transport.get_extra_info("peername")
            host = str(peer[0]) if peer else ""
            if gate.admit(host):
                self.admitted = host
            elif isinstance(transport, asyncio.Transport):
                transport.abort()

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            if self.admitted is not None:
                gate.release(self.admitted)
                self.admitted = None

    return GatedConnection


class FairClientConnection(FairReads, ClientConnection):
    pass


# permessage-deflate costs ~3x the memory per connection and halves throughput, and boxed
# messages do not compress: every p2p-chat socket runs without it.
SOCKET_OPTIONS: dict[str, Any] = {"compression": None, "subprotocols": [SUBPROTOCOL]}
SERVER_OPTIONS: dict[str, Any] = {**SOCKET_OPTIONS, "create_connection": FairServerConnection}


class Turns:
    """Work done for one peer in a row, which gives the event loop to the others every FAIR_SHARE items.

    Awaiting queued frames, or a send into a socket buffer with room, never suspends: without
    this, one busy peer's backlog would be handled, or answered, in a single turn of the loop.
    """

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    async def one_done(self) -> None:
        self.count += 1
        if self.count == FAIR_SHARE:
            self.count = 0
            await asyncio.sleep(0)


async def frames(ws: Connection) -> AsyncIterator[str | bytes]:
    """The messages of a socket, taking turns with the other sockets."""
    turns = Turns()
    async for raw in ws:
        yield raw
        await turns.one_done()


DIAL_FAILED = (OSError, InvalidHandshake, InvalidURI, TimeoutError, ConnectionClosed)
"""What dialling a peer raises when it is down, slow, misaddressed or not speaking WebSocket."""


async def dial(
    url: str, max_frame: int = MAX_FRAME, timeout: float = 5.0, **kw: Any
) -> ClientConnection:
    """Open a client socket speaking p2pchat.v1 (no proxy: peers are addressed directly)."""
    kw.setdefault("create_connection", FairClientConnection)
    options = {**SOCKET_OPTIONS, **kw}  # a caller may offer other subprotocols too
    return await connect(url, max_size=max_frame, open_timeout=timeout, proxy=None, **options)


async def pong(ws: Any) -> float | None:
    """Ping and wait for the pong: the latency, or None when the socket closed first.

    Run as a task of its own per socket: a socket whose write buffer is full holds only its own
    ping, never the others' (the keepalive sweep finds it unanswered and drops it).
    """
    try:
        return float(await (await ws.ping()))
    except ConnectionClosed:
        return None


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


async def shut(server: Server, code: int = 1001, reason: str = "shutting down") -> None:
    """Stop a server: every socket closed at once, each aborted after a grace if its peer does
    not read (websockets' own close waits on a full write buffer for ever)."""
    server.close(close_connections=False)
    await asyncio.gather(*(close_now(ws, code, reason) for ws in list(server.connections)))
    await server.wait_closed()


def listen_url(server: Any, host: str) -> tuple[int, str]:
    """The port a server bound (port 0 picks one) and the ws:// URL it is reached at."""
    port = server.sockets[0].getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return port, f"ws://{shown}:{port}"
