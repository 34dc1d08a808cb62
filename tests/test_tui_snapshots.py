"""Snapshots of the main screen with fixed names and times (offline, so nothing on it moves)."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from node.config import UserConfig
from node.user.store import StoredMessage, UserStore
from tui.app import ChatApp

T0 = 1_767_348_000_000  # 2026-01-02 10:00 UTC


@pytest.fixture(autouse=True)
def utc():
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()


def prepared_app(tmp_path, theme: str | None = None) -> ChatApp:
    data = tmp_path / "sally"
    data.mkdir(mode=0o700)

    async def fill() -> None:
        store = UserStore(data / "user.sqlite3")
        store.start()
        for name in ("bob", "carol", "dave"):
            store.add_contact(name, T0)
        talk = [
            ("bob", "Sally", "morning! are we still on for lunch?"),
            ("Sally", "bob", "yes, 12:30 at the usual place"),
            ("bob", "Sally", "great, see you there"),
        ]
        for i, (sender, recipient, text) in enumerate(talk):
            ts = T0 + i * 60_000
            if sender == "Sally":
                await store.add_message(
                    StoredMessage.new_outgoing(f"m{i}", sender, recipient, ts, text)
                )
                await store.set_state("bob", f"m{i}", "delivered")
            else:
                await store.add_message(
                    StoredMessage.new_incoming(f"m{i}", sender, recipient, ts, text)
                )
        await store.add_message(
            StoredMessage.new_outgoing("m9", "Sally", "bob", T0 + 5 * 60_000, "bringing the report")
        )
        await store.set_state("bob", "m9", "failed", "expired undelivered (recipient offline)")
        await store.close()

    asyncio.run(fill())
    if theme:
        (data / "tui.toml").write_text(f'theme = "{theme}"\n')
    config = UserConfig(name="Sally", seeds=["ws://127.0.0.1:9"], data_dir=data)
    return ChatApp(config, embedded_seed=False, probe_timeout=0.1)


async def settle(pilot) -> None:
    app = pilot.app
    async with asyncio.timeout(10):
        while not (app.sub_title == "offline" and app.contacts.option_count == 3):
            await pilot.pause(0.02)
    app.open_conversation("bob")
    await pilot.pause()


def test_main_screen(snap_compare, tmp_path):
    assert snap_compare(prepared_app(tmp_path), terminal_size=(100, 30), run_before=settle)


def test_main_screen_narrow(snap_compare, tmp_path):
    assert snap_compare(prepared_app(tmp_path), terminal_size=(80, 24), run_before=settle)


def test_main_screen_light_theme(snap_compare, tmp_path):
    assert snap_compare(
        prepared_app(tmp_path, theme="textual-light"), terminal_size=(100, 30), run_before=settle
    )
