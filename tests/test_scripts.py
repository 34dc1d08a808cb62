"""Scripts and bots: `p2p-node user` fed from files and /dev/null, and `p2p-node send` beside a
running node, as real processes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import stat

from .procs import run_cli
from .test_headless import Headless, ev, user_argv


async def run_user_with_stdin(
    name: str, seed_url: str, data_dir, stdin_path: str
) -> tuple[int, list[dict], str]:
    """`p2p-node user --exit-on-eof < stdin_path` to completion: code, JSON lines, stderr."""
    stdin = os.open(stdin_path, os.O_RDONLY)  # the child's stdin is the file itself, not a pipe
    try:
        proc = await asyncio.create_subprocess_exec(
            *user_argv(name, seed_url, data_dir, "--exit-on-eof"),
            stdin=stdin,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    finally:
        os.close(stdin)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError("--exit-on-eof did not exit") from None
    return proc.returncode, [json.loads(x) for x in out.decode().splitlines()], err.decode()


async def test_stdin_from_a_regular_file_sends_its_lines_and_exits(seeds, tmp_path):
    """A file redirected to stdin is read line by line; a message held as mail for an offline
    recipient counts as done, as for `p2p-node send`."""
    a = await seeds("a")
    sally = await Headless.start("Sally", a.url, tmp_path / "sally")
    carol = await Headless.start("Carol", a.url, tmp_path / "carol")
    try:
        await sally.expect(ev("registered"))
        await carol.expect(ev("registered"))
        assert await carol.stop() == 0  # known to the mesh, offline: mail
        script = tmp_path / "script.txt"
        script.write_text("@Sally line 0\n@Sally line 1\n@Carol while you were out\n@Sally last")
        code, out, err = await run_user_with_stdin("Bob", a.url, tmp_path / "bob", str(script))
        assert code == 0, err
        assert sum(1 for line in out if line["event"] == "delivered") == 3
        assert [x["to"] for x in out if x["event"] == "state" and x["state"] == "stored"] == [
            "Carol"
        ]
        texts = [(await sally.expect(ev("message")))["text"] for _ in range(3)]
        assert texts == ["line 0", "line 1", "last"]
        assert "Traceback" not in err
    finally:
        await sally.stop()


async def test_dev_null_with_exit_on_eof_exits_cleanly(seeds, tmp_path):
    a = await seeds("a")
    code, out, err = await run_user_with_stdin("Bob", a.url, tmp_path / "bob", "/dev/null")
    assert code == 0, err
    assert "Traceback" not in err and "Error" not in err, err
    assert all(line["event"] != "error" for line in out)


def without_rtt(line: dict) -> dict:
    return {**line, "seeds": [{**s, "rtt_ms": None} for s in line["seeds"]]}


async def test_exit_on_eof_does_not_wait_for_a_name_nobody_holds(seeds, tmp_path):
    """A message to a name no seed knows waits (it is not failed), but a script that stops at the
    end of its input is told so and exits, instead of waiting up to 21 days."""
    a = await seeds("a")
    script = tmp_path / "script.txt"
    script.write_text("@Nobody are you there\n")
    code, out, err = await run_user_with_stdin("Bob", a.url, tmp_path / "bob", str(script))
    assert code == 0, err
    states = [x for x in out if x["event"] == "state"]
    assert states and all(x["state"] == "queued" for x in states)
    assert "nobody is registered as Nobody" in states[-1]["reason"]
    assert all(x["event"] != "failed" for x in out)
    assert "1 message(s) still wait" in err and "Traceback" not in err


async def test_seed_events_are_not_repeated_for_round_trip_times(seeds, tmp_path, monkeypatch):
    """The node asks its seed for the seed list every few seconds; a `seed` line comes out only
    when something besides a round-trip time changed."""
    a = await seeds("a")
    await seeds("b", peers=[a.url])
    asked = 0
    enough = asyncio.Event()
    seed_infos = a.mesh.seed_infos

    def counting():  # the seed list request, answered for real and counted
        nonlocal asked
        asked += 1
        if asked >= 3:  # three lists, two chances to repeat one
            enough.set()
        return seed_infos()

    monkeypatch.setattr(a.mesh, "seed_infos", counting)
    bob = await Headless.start("Bob", a.url, tmp_path / "bob")
    try:
        await bob.expect(ev("registered"))
        await asyncio.wait_for(enough.wait(), 60)
    finally:
        assert await bob.stop() == 0
    rest = (await bob.proc.stdout.read()).decode().splitlines()
    lines = [x for x in [*bob.lines, *map(json.loads, rest)] if x["event"] == "seed"]
    assert lines, "no seed line at all"
    repeats = [
        b for a_, b in zip(lines, lines[1:], strict=False) if without_rtt(a_) == without_rtt(b)
    ]
    assert not repeats, f"{len(repeats)} of {len(lines)} seed lines repeat the one before"


async def send_cli(seed_url: str, data_dir, to: str, text: str) -> tuple[int, str, str]:
    return await run_cli(
        "send",
        "--name",
        "Bob",
        "--seed",
        seed_url,
        "--data-dir",
        str(data_dir),
        "--to",
        to,
        text,
    )


async def test_send_beside_a_running_node_hands_the_message_to_it(seeds, tmp_path):
    """`p2p-node send` on the data dir of a running headless node goes through that node's
    control socket: the running node sends it and keeps its session."""
    a = await seeds("a")
    sally = await Headless.start("Sally", a.url, tmp_path / "sally")
    bob = await Headless.start("Bob", a.url, tmp_path / "bob")
    try:
        await sally.expect(ev("registered"))
        await bob.expect(ev("registered"))
        sock = tmp_path / "bob" / "control.sock"
        assert stat.S_ISSOCK(sock.lstat().st_mode) and sock.stat().st_mode & 0o777 == 0o600

        code, _, err = await send_cli(a.url, tmp_path / "bob", "Sally", "through the running node")
        assert code == 0, err
        assert (await sally.expect(ev("message")))["text"] == "through the running node"
        queued = await bob.expect(lambda x: x.get("text") == "through the running node")
        await bob.expect(ev("delivered", id=queued["id"]))  # Bob's running node sent it

        code, _, err = await send_cli(a.url, tmp_path / "bob", "../etc", "x")
        assert code == 2 and "name" in err and "Traceback" not in err

        await bob.say("@Sally and still registered")
        await bob.expect(ev("delivered"))
        assert (await sally.expect(ev("message")))["text"] == "and still registered"
        assert all(x["event"] != "session_replaced" for x in bob.lines)
    finally:
        assert await bob.stop() == 0
        await sally.stop()
    assert not (tmp_path / "bob" / "control.sock").exists()  # removed on exit


async def test_a_stale_control_socket_is_replaced(seeds, tmp_path):
    a = await seeds("a")
    sally = await Headless.start("Sally", a.url, tmp_path / "sally")
    first = await Headless.start("Bob", a.url, tmp_path / "bob")
    try:
        await sally.expect(ev("registered"))
        await first.expect(ev("registered"))
        first.proc.kill()  # no clean exit: the socket file stays behind
        await first.proc.wait()
        assert (tmp_path / "bob" / "control.sock").exists()
        second = await Headless.start("Bob", a.url, tmp_path / "bob")
        try:
            await second.expect(ev("registered"))
            code, _, err = await send_cli(a.url, tmp_path / "bob", "Sally", "after a crash")
            assert code == 0, err
            queued = await second.expect(lambda x: x.get("text") == "after a crash")
            await second.expect(ev("delivered", id=queued["id"]))
        finally:
            assert await second.stop() == 0
    finally:
        await sally.stop()


async def test_the_control_socket_answers_bad_requests_in_words(seeds, users, tmp_path):
    from node.user.control import MAX_REQUEST, open_control

    a = await seeds("a")
    bob, _ = await users("Bob", [a.url], data_dir=tmp_path / "bob")

    async def ask(raw: bytes) -> dict:
        link = await open_control(tmp_path / "bob")
        assert link is not None
        reader, writer = link
        writer.write(raw)
        await writer.drain()
        try:
            return json.loads(await reader.readline())
        finally:
            writer.close()

    for raw, code in [
        (b"not json\n", "bad_request"),
        (b'{"type": "send", "to": "Sally"}\n', "bad_request"),
        (b'{"type": "send", "to": "Sally", "text": "x", "from": "Eve"}\n', "wrong_name"),
        (b'{"type": "send", "to": "Bob", "text": "x"}\n', "bad_command"),
        (b"x" * (MAX_REQUEST + 10) + b"\n", "bad_request"),
    ]:
        answer = await ask(raw)
        assert answer["type"] == "error" and answer["code"] == code, answer
        assert " " in answer["message"] and code not in answer["message"]
    answer = await ask(b'{"type": "send", "to": "Sally", "text": "hi", "from": "bob"}\n')
    assert answer["type"] == "queued" and answer["id"] and answer["from"] == "Bob"


async def test_a_refusal_is_a_sentence_with_the_code_as_its_own_field(seeds, users, tmp_path):
    """A recipient refusing a message (here: Sally blocked Bob) reaches the sender's script as
    words in `reason` and the protocol code in `code`."""
    a = await seeds("a")
    sally, _ = await users("Sally", [a.url])
    assert sally.block("Bob")
    bob = await Headless.start("Bob", a.url, tmp_path / "bob")
    try:
        await bob.expect(ev("registered"))
        await bob.say("@Sally let me in")
        failed = await bob.expect(ev("failed"))
        assert failed["code"] == "bad_box", failed
        reason = failed["reason"]
        assert "bad_box" not in reason and reason.startswith("refused by the recipient: ")
    finally:
        await bob.stop()


async def test_send_beside_the_terminal_app_goes_through_it(seeds, users, tmp_path):
    """The same with Sally's terminal app running: it sends the message and stays connected."""
    from node.user.events import MessageQueued, MessageReceived, NameRegistered

    from .helpers import next_event
    from .test_tui import SIZE, connected, make_app, until

    a = await seeds("a")
    bob, bob_ev = await users("bob", [a.url])
    await next_event(bob_ev, lambda e: isinstance(e, NameRegistered))
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        assert app.node is not None
        sally_ev = app.node.subscribe()
        code, _, err = await run_cli(
            "send",
            "--name",
            "Sally",
            "--seed",
            a.url,
            "--data-dir",
            str(tmp_path / "tui-Sally"),
            "--to",
            "bob",
            "from a script",
        )
        assert code == 0, err
        got = await next_event(bob_ev, lambda e: isinstance(e, MessageReceived))
        assert got.text == "from a script" and got.from_ == "Sally"
        sent = await next_event(sally_ev, lambda e: isinstance(e, MessageQueued))
        assert sent.text == "from a script"  # the app's own node took it: one session
        assert connected(app) and not app.replaced
