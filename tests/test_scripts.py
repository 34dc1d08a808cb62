"""Scripts and bots: `p2p-node user` fed from files and /dev/null, and `p2p-node send` beside a
running node, as real processes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from .test_headless import Headless, ev


async def run_user_with_stdin(
    name: str, seed_url: str, data_dir, stdin_path: str
) -> tuple[int, list[dict], str]:
    """`p2p-node user --exit-on-eof < stdin_path` to completion: code, JSON lines, stderr."""
    stdin = os.open(stdin_path, os.O_RDONLY)  # the child's stdin is the file itself, not a pipe
    try:
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
            "--exit-on-eof",
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
        if asked >= 5:
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
