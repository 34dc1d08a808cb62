"""The headless client as scripts use it: a subprocess with JSON lines on stdout and commands on stdin."""

from __future__ import annotations

import asyncio
import json
import sys

from .procs import run_cli


def user_argv(name: str, seed_url: str, data_dir, *extra: str) -> list[str]:
    """The command line of `p2p-node user` for one test user."""
    return [
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
    ]


class Headless:
    def __init__(self, proc) -> None:
        self.proc = proc
        self.lines: list[dict] = []

    @classmethod
    async def start(cls, name: str, seed_url: str, data_dir, *extra: str) -> Headless:
        proc = await asyncio.create_subprocess_exec(
            *user_argv(name, seed_url, data_dir, *extra),
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
        # a name nobody holds (yet) waits, saying why; /cancel gives up on it, bad input is told
        await bob.say("@nobody are you there")
        waiting = await bob.expect(
            lambda line: "registered as nobody yet" in (line.get("reason") or "")
        )
        assert waiting["to"] == "nobody" and waiting["state"] == "queued"
        for bad, why in [
            ("/cancel", "expected"),
            ("/cancel feedface", "no message of yours has the id feedface"),
            ("/retry feedface", "no message of yours has the id feedface"),
        ]:
            await bob.say(bad)
            err = await bob.expect(ev("error"))
            assert err["code"] == "bad_command" and why in err["message"] and err["line"] == bad
        await bob.say(f"/cancel {waiting['id']}")
        failed = await bob.expect(ev("failed", id=waiting["id"]))
        assert failed["reason"] == "cancelled"
        await bob.say("/retry")  # the newest failed or waiting message: queued again
        again = await bob.expect(ev("state", id=waiting["id"], state="queued"))
        assert "retrying now" in again["reason"]
        await bob.say(f"/cancel {waiting['id'][:8]}")
        await bob.expect(ev("failed", id=waiting["id"], reason="cancelled"))
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


async def test_a_message_from_a_changed_key_is_printed_flagged(seeds, users, tmp_path):
    """Bob re-keys (a new install takes the name after its lease): his message is kept and
    acknowledged, and its line says `key_changed` (before, it was refused and lost)."""
    from .helpers import in_state, next_event, registered

    a = await seeds(
        "a", lease_days=1 / 86_400_000
    )  # a 1 ms lease: an offline name can change hands
    sally = await Headless.start("Sally", a.url, tmp_path / "sally")
    try:
        await sally.expect(ev("registered"))
        bob, bob_ev = await users("Bob", [a.url])
        await next_event(bob_ev, registered)
        await bob.send("Sally", "first key")
        first = await sally.expect(ev("message", text="first key"))
        assert "key_changed" not in first
        await users.stop(bob)
        await sally.expect(ev("presence", name="Bob", online=False))
        bob2, bob2_ev = await users("Bob", [a.url], data_dir=tmp_path / "bob-new-key")
        await next_event(bob2_ev, registered)
        msg_id = await bob2.send("Sally", "new key, same name")
        flagged = await sally.expect(ev("message", text="new key, same name"))
        assert flagged["key_changed"] is True and flagged["from"] == "Bob"
        await next_event(bob2_ev, in_state(msg_id, "delivered"))
        changed = [line for line in sally.lines if line["event"] == "key_changed"]
        assert len(changed) == 1 and changed[0]["name"] == "Bob"  # said before the message
        assert changed[0]["old_fingerprint"] != changed[0]["new_fingerprint"]
    finally:
        assert await sally.stop() == 0
