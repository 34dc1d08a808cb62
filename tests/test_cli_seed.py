"""The seed CLI as an operator runs it: a subprocess, /health, lookups, and a clean SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.request

from node.crypto.keys import Identity

from .helpers import RawClient, record
from .procs import SeedProc, run_cli


async def test_seed_subprocess_health_lookup_and_sigterm(tmp_path):
    seed = await asyncio.to_thread(SeedProc, tmp_path / "ops", "ops")
    assert "seed ops listening on" in seed.err[-1] and "key" in seed.err[-1]
    key_file = tmp_path / "ops" / "identity.key"
    assert key_file.stat().st_mode & 0o777 == 0o600

    user = await RawClient.open(seed.url)
    rec = record(Identity.generate(), "Sally", "ws://127.0.0.1:7777")
    await user.request({"type": "register", "record": rec})

    http = seed.url.replace("ws://", "http://") + "/health"
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(http, timeout=5).read())
    health = json.loads(body)
    assert health["name"] == "ops" and health["users_known"] == 1 and health["users_online"] == 1
    assert health["peers"] == [] and health["uptime_s"] >= 0 and health["version"]

    code, out, _ = await run_cli("lookup", "sally", "--seed", seed.url)
    assert code == 0 and "Sally" in out and "online at ops" in out and "ws://127.0.0.1:7777" in out
    code, out, err = await run_cli("lookup", "nobody", "--seed", seed.url)
    assert code == 1 and "not_found" in err

    seed.p.send_signal(signal.SIGTERM)
    await asyncio.wait_for(user.ws.wait_closed(), 10)
    assert user.ws.close_code == 1001
    assert await asyncio.to_thread(seed.p.wait, 15) == 0
    await asyncio.to_thread(seed.wait_for, lambda s: "stopped" in s.err[-1], 10, "the stopped line")


async def test_an_unusable_data_dir_is_one_clear_line_and_exit_2(tmp_path):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    for args in (
        ("seed", "--port", "0", "--data-dir", str(blocked / "seed")),
        ("user", "--name", "Bob", "--data-dir", str(blocked / "bob")),
    ):
        code, out, err = await run_cli(*args)
        assert code == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "cannot use the data dir" in lines[0] and "Traceback" not in err


async def test_a_bad_seed_url_is_refused_with_the_reason():
    code, _, err = await run_cli("user", "--name", "Bob", "--seed", "ws://")
    assert code == 2 and "no host" in err and "seeds" in err
    code, _, err = await run_cli("user", "--name", "Bob", "--seed", "ws://127.0.0.1:99999")
    assert code == 2 and "port" in err.lower()


async def test_a_peer_seeds_hostile_name_reaches_the_log_as_visible_text(tmp_path):
    """Seed names are the peers' own choice (any 1-64 characters): one carrying escape
    sequences and a bidi override must land in the operator's log escaped, not recolour the
    terminal or set its title."""
    hostile = "\x1b[31mEV\u202eIL\x1b]0;pwn\x07"
    a = await asyncio.to_thread(SeedProc, tmp_path / "a", "a")
    b = await asyncio.to_thread(SeedProc, tmp_path / "b", hostile, 0, (a.url,))
    try:
        line = await asyncio.to_thread(
            a.wait_for,
            lambda p: next((x for x in p.err if "peer " in x and " up" in x), None),
            20,
            "the link logged",
        )
        assert "\\x1b[31mEV\\u202eIL\\x1b]0;pwn\\x07" in line
        assert not any(ch in "".join(a.err) for ch in "\x1b\x07\u202e")
    finally:
        await asyncio.to_thread(b.stop)
        await asyncio.to_thread(a.stop)
