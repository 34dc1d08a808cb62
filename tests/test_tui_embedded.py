"""The embedded seed as the README promises it: its names and mail belong to the machine (the next
app to host takes them over), it starts where the configured seed would be, and an app on it goes
back to the configured seeds when they return. Real seeds and user nodes on 127.0.0.1, apps
driven by Pilot; the machine's shared folder is a temp dir (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest

from node.config import UserConfig
from tui.app import ChatApp

from .helpers import eventually, in_state, next_event, received, registered

SIZE = (100, 30)


def free_port() -> int:
    """A port nothing listens on now: a seed that is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_app(tmp_path, name: str, seeds: list[str], retry_max: float = 30.0, **kw) -> ChatApp:
    kw.setdefault("probe_timeout", 0.3)
    config = UserConfig(
        name=name, seeds=seeds, data_dir=tmp_path / f"tui-{name}", retry_max=retry_max
    )
    return ChatApp(config, embedded_seed=True, **kw)


async def until(pilot, predicate, timeout: float = 15.0):
    """Let the app run until the screen shows what is expected."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await pilot.pause(0.02)


async def type_in(pilot, text: str) -> None:
    composer = pilot.app.composer
    composer.focus()
    composer.load_text(text)
    await pilot.press("enter")


def connected(app: ChatApp) -> bool:
    return app.state == "connected" and app.node is not None


def line_state(app: ChatApp, text: str) -> str | None:
    """The delivery state shown beside the line with `text` in the open conversation."""
    for line in app.chat.lines.values():
        if line.msg.text == text:
            return line.state
    return None


async def test_mail_held_by_the_embedded_seed_outlives_the_app_that_hosted_it(users, tmp_path):
    """The README's two people on one machine: Ann hosts, Ben quits, Ann writes (stored) and
    quits; Ben comes back alone, hosts in turn, gets Ann's message, and his reply is held as mail
    (it used to be lost with Ann's folder, and the reply failed: nobody registered as Ann)."""
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    ann = make_app(tmp_path, "Ann", [url], embedded_port=port)
    async with ann.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(ann) and ann.embedded is not None)
        ben, ben_ev = await users("Ben", [url], data_dir=tmp_path / "tui-Ben")
        await next_event(ben_ev, registered)
        await users.stop(ben)  # Ben quits
        await type_in(pilot, "/msg Ben are you there?")
        await until(pilot, lambda: line_state(ann, "are you there?") == "stored")
    # Ann quit: her app took its seed down; Ben comes back alone
    ben_app = make_app(tmp_path, "Ben", [url], embedded_port=port)
    async with ben_app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(ben_app) and ben_app.embedded is not None)
        await until(pilot, lambda: (e := ben_app.contacts.get("Ann")) is not None and e.unread == 1)
        ben_app.open_conversation("Ann")
        await until(pilot, lambda: line_state(ben_app, "are you there?") is not None)
        await type_in(pilot, "yes, back now")
        await until(pilot, lambda: line_state(ben_app, "yes, back now") == "stored")


async def test_two_nodes_given_the_same_down_seed_meet_at_the_embedded_seed_there(users, tmp_path):
    """`--seed ws://127.0.0.1:P` with nothing at P: the app hosts its seed at P (it used to take
    5001), so another node given the same seed finds it there and the two talk."""
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    sally = make_app(tmp_path, "Sally", [url])
    async with sally.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(sally) and sally.embedded is not None)
        assert sally.embedded.url == url
        bob, bob_ev = await users("bob", [url])
        await next_event(bob_ev, registered)
        msg_id = await bob.send("Sally", "found you")
        await next_event(bob_ev, in_state(msg_id, "delivered"))
        await until(pilot, lambda: (e := sally.contacts.get("bob")) is not None and e.unread == 1)
        sally.open_conversation("bob")
        await type_in(pilot, "and you")
        assert (await next_event(bob_ev, received)).text == "and you"


def island(tmp_path, retry_max: float) -> tuple[ChatApp, int]:
    """An app whose configured seed is down hosts an embedded seed elsewhere (as with a remote
    seed, when the embedded one takes 5001); the configured seed then comes back."""
    down = free_port()
    app = make_app(tmp_path, "Sally", [f"ws://127.0.0.1:{down}"], retry_max, embedded_port=0)
    return app, down


async def test_an_app_on_its_embedded_seed_goes_back_to_the_configured_seed(seeds, users, tmp_path):
    """The configured seed returns: within retry_max the app is home there again, its embedded
    seed is linked to it as a peer, and a user of that seed reaches the app (it used to stay an
    island: `home embedded-…`, the seed listed down, messages held)."""
    app, port = island(tmp_path, retry_max=0.5)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app) and app.home == "embedded-Sally")
        real = await seeds("real", port=port)
        await until(pilot, lambda: connected(app) and app.home == "real")
        await eventually(lambda: "embedded-Sally" in real.mesh.peer_names(), timeout=60)
        bob, bob_ev = await users("bob", [real.url])
        await next_event(bob_ev, registered)
        msg_id = await bob.send("Sally", "welcome back")
        await next_event(bob_ev, in_state(msg_id, "delivered"))
        assert any(s.up and s.home and s.name == "real" for s in app.seeds.seeds)


async def test_reconnect_tears_down_and_dials_the_configured_seeds_first(seeds, users, tmp_path):
    """/reconnect while home is the embedded seed: the app drops it and registers at the
    configured seed that answers again (it used to do nothing unless the name was taken over)."""
    app, port = island(tmp_path, retry_max=3600.0)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app) and app.home == "embedded-Sally")
        await seeds("real", port=port)
        await type_in(pilot, "/reconnect")
        await until(pilot, lambda: connected(app) and app.home == "real")


async def test_one_host_at_a_time_and_the_next_opens_the_same_store(tmp_path, monkeypatch):
    """The shared folder is locked by the app hosting it: a second host (any port) is refused
    while the first runs, and the next one after it opens the same store and seed key."""
    from tui import embedded

    monkeypatch.setattr(embedded, "LOCK_WAIT", 0.2)
    first = await embedded.host_seed("Ann", 0, [])
    try:
        with pytest.raises(OSError) as refused:
            await embedded.host_seed("Ben", 0, [])
        assert refused.value.errno == errno.EBUSY
        key = first.seed.key
    finally:
        await first.stop()
    second = await embedded.host_seed("Ben", 0, [])
    try:
        assert second.seed.key == key and second.seed.name == "embedded-Ben"
        assert second.seed.data_dir == embedded.embedded_seed_dir()
    finally:
        await second.stop()
