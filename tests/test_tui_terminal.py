"""Hostile text in a real terminal: p2p-tui runs in tmux while a user node sends it escape
sequences and markup, and the pane must show them visibly escaped, with no foreign escape
sequence reaching the terminal (the title stays, the screen is not cleared or recoloured).

Skipped, with the reason, where tmux is not installed.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys

import pytest

from node.user.events import NameRegistered

from .helpers import next_event

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

HOSTILE = [
    "title \x1b]0;pwned-title\x07 set",
    "clear \x1b[2J\x1b[H wiped",
    "red \x1b[31mRED\x1b[0m c1 \x9b31mC1",
    "link \x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\ end",
    "markup [bold red]x[/] [/] [@click=app.quit]click to win[/]",
]
SGR = re.compile(r"\x1b\[[0-9;:]*m")
# the test run sets COLUMNS and LINES, which would size the app instead of its tmux pane
ENV = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}


class Tmux:
    """A tmux server of our own (its own socket), driven without blocking the event loop."""

    def __init__(self, socket: str) -> None:
        self.socket = socket

    async def run(self, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            "tmux",
            "-L",
            self.socket,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=ENV,
        )
        out, err = await proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"tmux {' '.join(args)}: {err.decode(errors='replace')}")
        return out.decode(errors="replace")

    async def screen(self, escapes: bool = False) -> str:
        return await self.run("capture-pane", "-p", *(["-e"] if escapes else []), "-t", "tui")

    async def until_shows(self, text: str, timeout: float = 20.0) -> str:
        """The pane once it shows `text` (the app is another process: its screen is the event)."""
        async with asyncio.timeout(timeout):
            while True:
                screen = await self.screen()
                if text in screen:
                    return screen
                await asyncio.sleep(0.05)


async def test_hostile_messages_reach_a_real_terminal_as_visible_text(seeds, users, tmp_path):
    a = await seeds("evil\x1b]0;seed-title\x07")
    mallory, mallory_ev = await users("mallory", [a.url])
    await next_event(mallory_ev, lambda e: isinstance(e, NameRegistered))
    tmux = Tmux(f"p2p-test-{os.getpid()}")
    command = [
        sys.executable,
        "-c",
        "from tui.cli import main; raise SystemExit(main())",
        "--name",
        "Sally",
        "--seed",
        a.url,
        "--data-dir",
        str(tmp_path / "sally"),
        "--no-embedded-seed",
    ]
    await tmux.run(
        "new-session", "-d", "-s", "tui", "-x", "110", "-y", "32", "-c", os.getcwd(), *command
    )
    try:
        await tmux.until_shows("connected")
        for text in HOSTILE:
            await mallory.send("Sally", text)
        await tmux.until_shows("mallory (5)")
        await tmux.run("send-keys", "-t", "tui", "/open mallory", "Enter")
        screen = await tmux.until_shows("click to win")
        coloured = await tmux.screen(escapes=True)
        title = await tmux.run("display-message", "-p", "-t", "tui", "#{pane_title}")
        dead = await tmux.run("display-message", "-p", "-t", "tui", "#{pane_dead}")
    finally:
        await tmux.run("kill-server")
    assert "␛]0;pwned-title␇" in screen and "␛[2J␛[H" in screen and "\\x9b31mC1" in screen
    assert "␛]8;;http://evil.example␛\\click" in screen
    assert "[bold red]x[/] [/] [@click=app.quit]click to win[/]" in screen
    assert "evil␛]0;seed-title␇" in screen  # the seed's name, in the header and the Seeds pane
    assert "p2p-chat · Sally" in screen.splitlines()[0]  # the header was not overwritten
    assert "pwned" not in title and "seed-title" not in title and dead.strip() == "0"
    foreign = SGR.sub("", coloured)
    assert "\x1b" not in foreign and "\x9b" not in foreign, "an escape sequence other than colour"
