"""The headless client as scripts use it: a subprocess with JSON lines on stdout and commands on stdin."""

from __future__ import annotations

import asyncio
import json
import sys

from .procs import run_cli


class Headless:
    def __init__(self, proc) -> None:
        self.proc = proc
        self.lines: list[dict] = []

    @classmethod
    async def start(cls, name: str, seed_url: str, data_dir, *extra: str) -> Headless:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "node",
            "user",
            "--name",
            name,
            "--seed",
            seed_url,
            "--data-dir",
            str(data_dir),
            *extra,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def expect(self, predicate, timeout: float = 15.0) -> dict:
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.proc.stdout.readline()
                assert raw, "stdout closed: " + (await self.proc.stderr.read()).decode()[-2000:]
                line = json.loads(raw)  # every stdout line is one JSON object
                self.lines.append(line)
                if predicate(line):
                    return line

    async def say(self, text: str) -> None:
        self.proc.stdin.write(text.encode() + b"\n")
        await self.proc.stdin.drain()

    async def stop(self) -> int:
        """Terminate and return the exit code; a process that will not go is killed (and fails)."""
        if self.proc.returncode is None:
            self.proc.terminate()
        try:
            return await asyncio.wait_for(self.proc.wait(), 15)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            return -9


def ev(kind: str, **fields):
    return lambda line: line["event"] == kind and all(line.get(k) == v for k, v in fields.items())


async def test_two_headless_users_chat_through_pipes(seeds, tmp_path):
    a = await seeds("a")
    b = await seeds("b", peers=[a.url])
    sally = await Headless.start("Sally", a.url, tmp_path / "sally")
    bob = await Headless.start("Bob", b.url, tmp_path / "bob")
    try:
        assert (await sally.expect(ev("registered")))["seed"] == "a"
        assert (await bob.expect(ev("registered")))["seed"] == "b"
        await bob.say("@Sally hello from a pipe")
        got = await sally.expect(ev("message"))
        assert got["from"] == "Bob" and got["to"] == "Sally" and got["text"] == "hello from a pipe"
        delivered = await bob.expect(ev("delivered"))
        assert delivered == {"event": "delivered", "id": got["id"], "to": "Sally"}

        await sally.say("/watch Bob")
        presence = await sally.expect(ev("presence", name="Bob"))
        assert presence["online"] is True and presence["seed"] == "b"

        # bad lines get an error event and the client carries on
        for bad in ["hello?", "@", "@../etc/passwd hi", "/watch", "@Sally " + "x" * 4001]:
            await bob.say(bad)
            err = await bob.expect(ev("error"))
            assert err["code"] == "bad_command" and err["line"] == bad[:200] and err["message"]
        await bob.say("@nobody are you there")
        failed = await bob.expect(ev("failed"))
        assert failed["to"] == "nobody" and "unknown name" in failed["reason"]
        await bob.say("@Sally still alive")
        assert (await sally.expect(ev("message")))["text"] == "still alive"
    finally:
        codes = (await bob.stop(), await sally.stop())
        assert codes == (0, 0)


async def test_exit_on_eof_delivers_what_is_queued_then_exits(seeds, tmp_path):
    a = await seeds("a")
    sally = await Headless.start("Sally", a.url, tmp_path / "sally")
    await sally.expect(ev("registered"))
    bob = await Headless.start("Bob", a.url, tmp_path / "bob", "--exit-on-eof")
    try:
        for i in range(3):
            await bob.say(f"@Sally line {i}")
        bob.proc.stdin.close()
        assert await asyncio.wait_for(bob.proc.wait(), 15) == 0
        out = [json.loads(x) for x in (await bob.proc.stdout.read()).decode().splitlines()]
        assert sum(1 for line in out if line["event"] == "delivered") == 3
        texts = [(await sally.expect(ev("message")))["text"] for _ in range(3)]
        assert texts == ["line 0", "line 1", "line 2"]
    finally:
        await sally.stop()


async def test_send_command_exit_codes(seeds, tmp_path):
    a = await seeds("a")
    sally = await Headless.start("Sally", a.url, tmp_path / "sally")
    try:
        await sally.expect(ev("registered"))
        code, out, err = await run_cli(
            "send",
            "--name",
            "Bob",
            "--seed",
            a.url,
            "--data-dir",
            str(tmp_path / "bob"),
            "--to",
            "Sally",
            "one shot",
        )
        assert code == 0, err
        assert (await sally.expect(ev("message")))["text"] == "one shot"
        code, _, err = await run_cli(
            "send",
            "--name",
            "Bob",
            "--seed",
            a.url,
            "--data-dir",
            str(tmp_path / "bob"),
            "--to",
            "ghost",
            "anyone?",
        )
        assert code == 1 and "unknown name" in err
    finally:
        await sally.stop()
    code, _, err = await run_cli("send", "--name", "../Bob", "--seed", a.url, "--to", "Sally", "x")
    assert code == 2 and "invalid name" in err


async def test_a_message_stored_but_never_printed_is_printed_on_the_next_start(
    seeds, users, tmp_path
):
    """The node acks once a message is stored; a run that stores one and dies before printing it
    must not lose it for the script: the next run prints it first, marked replayed, and only once."""
    from node.user.events import MessageReceived, NameRegistered

    from .helpers import next_event

    seed = await seeds("a")
    sally_dir = tmp_path / "sally"
    first = await Headless.start("Sally", seed.url, sally_dir)
    await first.expect(ev("registered"))
    assert await first.stop() == 0  # the first run starts the mark: nothing before it is replayed

    # Sally's node stores a message with no printer attached: as a run killed between storing and printing
    sally, sally_events = await users("Sally", [seed.url], data_dir=sally_dir)
    bob, bob_events = await users("Bob", [seed.url])
    await next_event(bob_events, lambda e: isinstance(e, NameRegistered))
    await next_event(sally_events, lambda e: isinstance(e, NameRegistered))
    await bob.send("Sally", "while nobody printed")
    await next_event(sally_events, lambda e: isinstance(e, MessageReceived))
    await users.stop(sally)

    second = await Headless.start("Sally", seed.url, sally_dir)
    try:
        replayed = await second.expect(ev("message"))
        assert replayed["text"] == "while nobody printed" and replayed["replayed"] is True
        await bob.send("Sally", "live")
        live = await second.expect(ev("message"))
        assert live["text"] == "live" and live["replayed"] is False and live["n"] > replayed["n"]
    finally:
        assert await second.stop() == 0
    third = await Headless.start("Sally", seed.url, sally_dir)
    try:
        await third.expect(ev("registered"))
        await bob.send("Sally", "after")
        assert (await third.expect(ev("message")))["text"] == "after"
        assert [line["text"] for line in third.lines if line["event"] == "message"] == ["after"], (
            "a message the previous run printed was printed again"
        )
    finally:
        await third.stop()
