"""Snapshots of the main screen at 120x35, 80x24 and 60x20, dark and light.

Fixed names and times, and no seed (the app is offline), so nothing on screen moves between runs.
The 120x35 dark one is also the README's screenshot (docs/screenshot.svg).
"""

from __future__ import annotations

import asyncio

import pytest

from node.config import UserConfig
from node.user.store import StoredMessage, UserStore
from tui.app import ChatApp

T0 = 1_767_348_000_000  # 2026-01-02 10:00 UTC
MIN = 60_000
SIZES = {"wide": (120, 35), "medium": (80, 24), "narrow": (60, 20)}


@pytest.fixture(autouse=True)
def _utc(utc):
    """Every snapshot shows times in UTC."""


async def fill(data) -> None:
    store = UserStore(data / "user.sqlite3")
    store.start()
    for name in ("bob", "carol", "dave"):
        store.add_contact(name, T0)
    store.pin("bob", "Ym9iJ3Mga2V5IGJ5dGVzIGZvciB0aGUgc25hcHNob3QgIQ==")
    store.set_verified("bob", True)
    talk = [
        (-1440, "bob", "did you get the slides?"),
        (-1438, "Sally", "yes, thanks! reading them tonight"),
        (0, "bob", "morning! are we still on for lunch?"),
        (1, "Sally", "yes, 12:30 at the usual place"),
        (2, "Sally", "/me brings the report"),
        (3, "bob", "great. can you bring:\n- the printouts\n- the budget sheet"),
        (5, "Sally", "bringing the budget too"),
        (7, "bob", "see you there"),
        (8, "bob", "running 5 minutes late"),
    ]
    upto = 0
    for i, (minutes, sender, text) in enumerate(talk):
        ts = T0 + minutes * MIN
        if sender == "Sally":
            await store.add_message(StoredMessage.new_outgoing(f"m{i}", sender, "bob", ts, text))
            state = "failed" if i == 6 else "delivered"
            reason = "expired undelivered (recipient offline)" if i == 6 else None
            await store.set_state("bob", f"m{i}", state, reason)
        else:
            n = await store.add_message(
                StoredMessage.new_incoming(f"m{i}", sender, "Sally", ts, text)
            )
            if i < 7:
                upto = n
    store.mark_read("bob", upto)
    for i in range(2):
        await store.add_message(
            StoredMessage.new_incoming(f"c{i}", "carol", "Sally", T0 + i * MIN, f"hello {i}")
        )
    await store.close()


def prepared_app(tmp_path, theme: str) -> ChatApp:
    data = tmp_path / "sally"
    data.mkdir(mode=0o700)
    asyncio.run(fill(data))
    (data / "tui.toml").write_text(f'theme = "{theme}"\n')
    config = UserConfig(name="Sally", seeds=["ws://127.0.0.1:9"], data_dir=data)
    return ChatApp(config, embedded_seed=False, probe_timeout=0.1)


async def settle(pilot) -> None:
    app = pilot.app
    async with asyncio.timeout(10):
        while not (app.state == "offline" and app.contacts.option_count == 3):
            await pilot.pause(0.02)
    app.composer.cursor_blink = False
    app.open_conversation("bob")
    await pilot.pause()


@pytest.mark.parametrize("theme", ["textual-dark", "textual-light"])
@pytest.mark.parametrize("size", list(SIZES))
def test_main_screen(snap_compare, tmp_path, size, theme):
    assert snap_compare(prepared_app(tmp_path, theme), terminal_size=SIZES[size], run_before=settle)
