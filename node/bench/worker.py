"""Benchmark load generators, each run in its own process: `python -m node.bench.worker ROLE ARGS...`.

Every role prints exactly one JSON object on stdout when it is done (servers print their URL
first). Raw roles use nothing of p2p-chat but the socket options, so they are the baselines.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection, serve

from ..clock import now_ms
from ..errors import ErrorCode, ProtocolError
from ..wire.sockets import SOCKET_OPTIONS, dial


def out(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def raise_fd_limit() -> None:
    """Many sockets need many descriptors: lift the soft limit to the hard one."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def seed_socket(url: str, **kw: Any) -> tuple[ClientConnection, dict[str, Any]]:
    """A socket to a seed, and the challenge the seed opens every socket with."""
    ws = await dial(url, **kw)
    return ws, expect(json.loads(await ws.recv()), "challenge")


def expect(frame: dict[str, Any], kind: str) -> dict[str, Any]:
    """`frame`, when the seed sent the `kind` asked for; else the run stops and says what came."""
    if frame.get("type") != kind:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"expected {kind}, got {str(frame)[:200]}")
    return frame


def register_frame(
    identity: Any, record_json: str, name: str, challenge: dict[str, Any], fid: str
) -> str:
    """A register with the session auth for this socket's challenge."""
    from ..crypto.signing import sign_session

    auth = sign_session(identity, name, challenge["seed_key"], challenge["nonce"], now_ms())
    return '{"type":"register","id":"%s","record":%s,"auth":%s}' % (
        fid,
        record_json,
        auth.model_dump_json(),
    )


def cpu_seconds() -> float:
    """CPU time this process spent so far, every thread counted (user and system)."""
    import resource

    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def percentiles(samples_ms: list[float]) -> dict:
    s = sorted(samples_ms)

    def at(q: float) -> float:
        return s[min(len(s) - 1, int(len(s) * q))]

    return {"p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": s[-1]}


# ---------------------------------------------------------------------- raw baselines


async def echo_server() -> None:
    """Answer every frame with a small ack carrying its id, as a recipient acks a chat.

    It parses each frame to read the id, so the matched baseline's acks name their messages."""

    async def handler(ws: ServerConnection) -> None:
        async for raw in ws:
            fid = json.loads(raw).get("id")
            await ws.send('{"type":"ack","id":"%s"}' % fid)

    async with serve(handler, "127.0.0.1", 0, max_size=2**20, **SOCKET_OPTIONS) as server:
        out({"url": f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"})
        await asyncio.Future()


async def raw_throughput(
    url: str, count: int, size: int, window: int, matched: int = 0, hello: str = ""
) -> None:
    """Pipelined frames of `size` bytes with at most `window` unacknowledged, as delivery does.

    `matched`: each ack is parsed and matched to the message it names, which is then done, as a
    sender's outbox does (unmatched: any ack frees a place in the window). `hello`: a first frame
    naming this socket (to the raw forwarder)."""
    ws = await dial(url, max_frame=2**20, create_connection=ClientConnection)
    if hello:
        await ws.send(hello)
    pad = "x" * max(0, size - 60)
    sem = asyncio.Semaphore(window)
    done = asyncio.Event()
    waiting: dict[str, float] = {}
    acked = 0

    async def reader() -> None:
        nonlocal acked
        async for raw in ws:
            if matched and waiting.pop(json.loads(raw)["id"], None) is None:
                continue  # an ack of nothing in flight frees nothing
            acked += 1
            sem.release()
            if acked == count:
                done.set()
                return

    task = asyncio.ensure_future(reader())
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    for i in range(count):
        await sem.acquire()
        if matched:
            waiting[str(i)] = time.perf_counter()
        await ws.send('{"type":"chat","to":"r","from":"s","id":"%d","pad":"%s"}' % (i, pad))
    await done.wait()
    dt = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    task.cancel()
    await ws.close()
    out({"per_s": count / dt, "seconds": dt, "cpu_us": cpu / count * 1e6})


async def forwarder() -> None:
    """A minimal raw relay: each socket names itself in its first frame; every later frame is
    parsed for its `to` and sent on to the socket of that name, as a seed relays."""
    peers: dict[str, ServerConnection] = {}

    async def handler(ws: ServerConnection) -> None:
        name = json.loads(await ws.recv())["name"]
        peers[name] = ws
        try:
            async for raw in ws:
                to = peers.get(json.loads(raw)["to"])
                if to is not None:
                    await to.send(raw)
        finally:
            if peers.get(name) is ws:
                del peers[name]

    async with serve(handler, "127.0.0.1", 0, max_size=2**20, **SOCKET_OPTIONS) as server:
        out({"url": f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"})
        await asyncio.Future()


async def echo_peer(url: str) -> None:
    """The receiving end behind the raw forwarder: acks every frame back to its sender."""
    ws = await dial(url, max_frame=2**20, create_connection=ClientConnection)
    await ws.send('{"name":"r"}')
    out({"ready": True})
    async for raw in ws:
        msg = json.loads(raw)
        await ws.send('{"type":"ack","to":"%s","id":"%s"}' % (msg["from"], msg["id"]))


def commit_time(count: int) -> None:
    """One durable SQLite commit (WAL, synchronous=FULL, as every store opens it): p50 and p99."""
    import tempfile

    from ..storage.sqlite import open_db

    with tempfile.TemporaryDirectory(prefix="p2p-bench-commit-") as tmp:
        db = open_db(Path(tmp) / "commit.db")
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
        row = b"x" * 600
        samples = []
        for _ in range(count):
            t0 = time.perf_counter()
            db.execute("INSERT INTO t (body) VALUES (?)", (row,))
            samples.append((time.perf_counter() - t0) * 1000)
        db.close()
    out(percentiles(samples[count // 10 :]))


async def raw_rtt(url: str, count: int, size: int) -> None:
    ws = await dial(url, max_frame=2**20, create_connection=ClientConnection)
    pad = "x" * max(0, size - 60)
    samples = []
    for i in range(count):
        t0 = time.perf_counter()
        await ws.send('{"type":"chat","to":"r","from":"s","id":"%d","pad":"%s"}' % (i, pad))
        await ws.recv()
        samples.append((time.perf_counter() - t0) * 1000)
    await ws.close()
    out(percentiles(samples[count // 10 :]))


def verify_rate(count: int) -> None:
    from ..crypto.keys import Identity
    from ..crypto.signing import sign_record, verify_record

    record = sign_record(Identity.generate(), "bench", "ws://127.0.0.1:9", 1)
    t0 = time.perf_counter()
    for _ in range(count):
        verify_record(record)
    out({"per_s": count / (time.perf_counter() - t0)})


# ---------------------------------------------------------------------- p2p-chat load


async def register(urls: str, count: int, clients: int, prefix: str) -> None:
    """`count` first registrations over `clients` sockets at a time (one name per socket), the
    clients spread in turn over the seeds of `urls` (comma separated)."""
    from ..crypto.keys import Identity
    from ..crypto.signing import sign_record

    identities = [Identity.generate() for _ in range(count)]
    records = [
        sign_record(identities[i], f"{prefix}{i}", "ws://127.0.0.1:9", now_ms()).model_dump_json()
        for i in range(count)
    ]
    raise_fd_limit()
    queue = iter(range(count))
    last_ack = [0.0]
    seeds = urls.split(",")

    async def client(k: int) -> None:
        for i in queue:
            ws, challenge = await seed_socket(seeds[k % len(seeds)])
            await ws.send(register_frame(identities[i], records[i], f"{prefix}{i}", challenge, "r"))
            expect(json.loads(await ws.recv()), "registered")
            last_ack[0] = time.time()
            await ws.close()

    t0 = time.perf_counter()
    await asyncio.gather(*[client(k) for k in range(clients)])
    dt = time.perf_counter() - t0
    out({"per_s": count / dt, "seconds": dt, "last_ack": last_ack[0]})


async def renew(url: str, count: int, clients: int) -> None:
    """Registrations per second from `clients` users each renewing its record, pipelined."""
    from ..crypto.keys import Identity
    from ..crypto.signing import sign_record

    ids = [Identity.generate() for _ in range(clients)]
    per = count // clients
    sockets = [await seed_socket(url) for _ in ids]
    conns = [ws for ws, _ in sockets]
    # each renewal carries a record with a higher seq and the session auth for its socket
    frames = [
        [
            register_frame(
                i,
                sign_record(i, f"renew{k}", "ws://127.0.0.1:9", 10**12 + n).model_dump_json(),
                f"renew{k}",
                sockets[k][1],
                str(n),
            )
            for n in range(per)
        ]
        for k, i in enumerate(ids)
    ]

    async def client(k: int) -> None:
        ws = conns[k]
        for text in frames[k]:
            await ws.send(text)
        for _ in range(per):
            expect(json.loads(await ws.recv()), "registered")

    t0, c0 = time.perf_counter(), cpu_seconds()
    await asyncio.gather(*[client(k) for k in range(clients)])
    dt = time.perf_counter() - t0
    # its own CPU per registration (sending, reading the answers), the frames signed before
    cpu_us = (cpu_seconds() - c0) / (clients * per) * 1e6
    out({"per_s": clients * per / dt, "seconds": dt, "cpu_us": cpu_us})


async def lookups(urls: str, count: int, clients: int, name: str, check: bool = True) -> None:
    """Request/response from `clients` sockets, one request in flight each (the lookup pattern),
    the sockets spread in turn over the servers of `urls` (comma separated).

    The raw baseline runs this very loop against the echo server, with `check` off.
    """
    samples: list[float] = []
    servers = urls.split(",")

    async def client(k: int) -> None:
        ws = await dial(
            servers[k % len(servers)], max_frame=2**20, create_connection=ClientConnection
        )
        if check:
            await ws.recv()  # the seed's challenge
        for i in range(count // clients):
            t0 = time.perf_counter()
            await ws.send('{"type":"lookup","id":"%d-%d","name":"%s"}' % (k, i, name))
            reply = await ws.recv()
            if check and json.loads(reply)["type"] != "found":
                raise SystemExit(f"lookup failed: {reply!r}")
            samples.append((time.perf_counter() - t0) * 1000)
        await ws.close()

    t0 = time.perf_counter()
    await asyncio.gather(*[client(k) for k in range(clients)])
    dt = time.perf_counter() - t0
    out({"per_s": len(samples) / dt, **percentiles(samples)})


async def raw_requests(url: str, count: int, clients: int) -> None:
    await lookups(url, count, clients, "someone", check=False)


async def paced(url: str, name: str, interval_ms: int, clients: int = 1) -> None:
    """Well-behaved clients: each does one lookup every `interval_ms` until stdin closes; then the latencies."""
    samples: list[float] = []
    failures = 0
    stdin_closed = asyncio.ensure_future(
        asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    )

    async def client(k: int) -> None:
        nonlocal failures
        ws, _ = await seed_socket(url)
        # independent users are not in step: spread the clients over the interval, or each lookup
        # would measure the queue behind the 19 sent in the same instant
        await asyncio.sleep(k * interval_ms / 1000 / clients)
        while True:  # one lookup at least: a process that started late still measures
            t0 = time.perf_counter()
            await ws.send('{"type":"lookup","id":"p","name":"%s"}' % name)
            if json.loads(await ws.recv())["type"] != "found":
                failures += 1
            samples.append((time.perf_counter() - t0) * 1000)
            if stdin_closed.done():
                break
            await asyncio.sleep(interval_ms / 1000)
        await ws.close()

    await asyncio.gather(*[client(k) for k in range(clients)])
    out({"n": len(samples), "failures": failures, **percentiles(samples)})


async def flood(url: str, seconds: float) -> None:
    """Send lookups as fast as possible without reading, reconnecting whenever cut off."""
    from websockets.exceptions import ConnectionClosed

    stats = {"connections": 0, "sent": 0, "closed_1008": 0}
    deadline = time.monotonic() + seconds
    frame = '{"type":"lookup","id":"x","name":"target"}'
    while time.monotonic() < deadline:
        ws = await dial(url, create_connection=ClientConnection)  # an attacker's plain client
        stats["connections"] += 1
        try:
            while time.monotonic() < deadline:
                await ws.send(frame)
                stats["sent"] += 1
        except ConnectionClosed:
            pass
        if ws.close_code == 1008:
            stats["closed_1008"] += 1
        # an attacker at its deadline just leaves: a polite close would wait out the close timeout
        # behind the answers it never read
        ws.transport.abort()
    out(stats)


async def idle(url: str, count: int) -> None:
    """Hold `count` idle connections open until stdin closes."""
    raise_fd_limit()
    conns = []
    for i in range(0, count, 100):
        conns += await asyncio.gather(
            *[dial(url, ping_interval=None) for _ in range(min(100, count - i))]
        )
    out({"open": len(conns)})
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def deliver(
    seed: str, data_dir: str, name: str, to: str, count: int, size: int, mode: str
) -> None:
    """A real user node sending to `to`: throughput (all queued at once), together (the same,
    started when a line comes on stdin) or latency (one at a time)."""
    from ..config import UserConfig
    from ..user.events import MessageState, NameRegistered
    from ..user.node import UserNode

    node = UserNode(UserConfig(name=name, seeds=[seed], data_dir=Path(data_dir)))
    events = node.subscribe()
    text = "x" * size

    async def settled(msg_id: str) -> MessageState:
        """The delivered or failed event of one message."""
        while True:
            e = await events.next()
            if (
                isinstance(e, MessageState)
                and e.id == msg_id
                and e.state in ("delivered", "failed")
            ):
                return e

    async with node:
        while not isinstance(await events.next(), NameRegistered):
            pass
        if mode == "store":  # the recipient is away: every message held by the mesh as mail
            node.add_contact(to)
            ids = set(await asyncio.gather(*[node.send(to, text) for _ in range(count)]))
            while ids:
                e = await events.next()
                if isinstance(e, MessageState) and e.state == "stored":
                    ids.discard(e.id)
            out({"stored": count})
            return
        first = await settled(await node.send(to, "warm-up"))
        if first.state == "failed":
            raise SystemExit(f"the warm-up message failed: {first.reason}")
        if mode == "latency":
            samples = []
            for _ in range(count):
                t0 = time.perf_counter()
                await settled(await node.send(to, text))
                samples.append((time.perf_counter() - t0) * 1000)
            out(percentiles(samples))
            return
        if mode == "together":  # many senders at once: each starts when told (a line on stdin)
            out({"ready": True})
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        await asyncio.gather(*[node.send(to, text) for _ in range(count)])
        done = 0
        while done < count:
            e = await events.next()
            if isinstance(e, MessageState) and e.state in ("delivered", "failed"):
                if e.state == "failed":
                    raise SystemExit(f"a message failed: {e.reason}")
                done += 1
        dt = time.perf_counter() - t0
        cpu = cpu_seconds() - cpu0
        out({"per_s": count / dt, "seconds": dt, "cpu_us": cpu / count * 1e6, "end": time.time()})


async def group(
    seed: str, data_dir: str, name: str, members: str, count: int, size: int, mode: str
) -> None:
    """A real user node making a group of `members` (comma separated) and sending to it:
    throughput (all queued at once, until every member acked each) or reach (one at a time:
    send to the last member's ack)."""
    from ..config import UserConfig
    from ..user.events import MessageState, NameRegistered
    from ..user.node import UserNode

    node = UserNode(UserConfig(name=name, seeds=[seed], data_dir=Path(data_dir)))
    events = node.subscribe()
    text = "x" * size
    names = members.split(",")
    acked: dict[str, int] = {}

    async def reached(mid: str) -> None:
        """Until every member acknowledged message `mid` (others' acks are counted on the way)."""
        while acked.get(mid, 0) < len(names):
            e = await events.next()
            if isinstance(e, MessageState) and e.group is not None:
                if e.state == "failed":
                    raise SystemExit(f"a copy failed: {e.reason}")
                if e.state == "delivered":
                    acked[e.id] = acked.get(e.id, 0) + 1

    async with node:
        while not isinstance(await events.next(), NameRegistered):
            pass
        state = await node.groups.new("bench", names)
        await reached(await node.groups.send(state.gid, "warm-up"))
        if mode == "reach":
            samples = []
            for _ in range(count):
                t0 = time.perf_counter()
                await reached(await node.groups.send(state.gid, text))
                samples.append((time.perf_counter() - t0) * 1000)
            out(percentiles(samples))
            return
        t0 = time.perf_counter()
        mids = [await node.groups.send(state.gid, text) for _ in range(count)]
        for mid in mids:
            await reached(mid)
        dt = time.perf_counter() - t0
        out({"per_s": count / dt, "seconds": dt})


ROLES: dict[str, tuple[Callable[..., Coroutine[Any, Any, None]], tuple[type, ...]]] = {
    "echo-server": (echo_server, ()),
    "raw-throughput": (raw_throughput, (str, int, int, int, int, str)),
    "forwarder": (forwarder, ()),
    "echo-peer": (echo_peer, (str,)),
    "raw-rtt": (raw_rtt, (str, int, int)),
    "raw-requests": (raw_requests, (str, int, int)),
    "register": (register, (str, int, int, str)),
    "renew": (renew, (str, int, int)),
    "lookups": (lookups, (str, int, int, str)),
    "idle": (idle, (str, int)),
    "paced": (paced, (str, str, int, int)),
    "flood": (flood, (str, float)),
    "deliver": (deliver, (str, str, str, str, int, int, str)),
    "group": (group, (str, str, str, str, int, int, str)),
}


def main(argv: list[str]) -> None:
    role, *args = argv
    if role == "verify":
        verify_rate(int(args[0]))
        return
    if role == "commit":
        commit_time(int(args[0]))
        return
    func, types = ROLES[role]
    asyncio.run(func(*[t(a) for t, a in zip(types, args, strict=True)]))


if __name__ == "__main__":
    main(sys.argv[1:])
