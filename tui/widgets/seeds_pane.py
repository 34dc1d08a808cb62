"""The Seeds pane: every seed known, up or down, its round trip, and which one is home.

It has a bounded height and scrolls, so a mesh of many seeds never pushes Contacts off screen.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from node.user.events import SeedState

from ..safe import safe_text


def short(url: str) -> str:
    """`127.0.0.1:5001` for `ws://127.0.0.1:5001` (the common case); other schemes stay visible."""
    return url.removeprefix("ws://")


def seeds_text(seeds: tuple[SeedState, ...]) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    if not seeds:
        text.append("no seed yet", style="dim")
    for i, seed in enumerate(seeds):
        if i:
            text.append("\n")
        if seed.up is None:
            text.append("? ", style="dim")
        elif seed.up:
            text.append("● ", style="green")
        else:
            text.append("○ ", style="red")
        text.append(safe_text(seed.name or short(seed.url)), style="bold" if seed.home else "")
        if seed.home:
            text.append(" home", style="reverse")
        if seed.embedded:
            text.append(" embedded", style="italic cyan")
        if seed.up is False:
            text.append(" down", style="red")
        elif seed.rtt_ms:
            text.append(f" {seed.rtt_ms:.1f} ms", style="dim")
        if seed.name:
            text.append(f"\n  {safe_text(short(seed.url))}", style="dim")
    return text


class SeedsPane(VerticalScroll, can_focus=False):
    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.seeds: tuple[SeedState, ...] = ()

    def compose(self) -> ComposeResult:
        yield Static(seeds_text(()), id="seed-list")

    def on_mount(self) -> None:
        self.border_title = "Seeds"
        self.show(self.seeds)  # a status that came before the list was mounted

    def show(self, seeds: tuple[SeedState, ...] | list[SeedState]) -> None:
        """Draw the seeds; a status that comes before the list is mounted (a node that starts
        fast) or after it is gone (the app closing) is kept, not an error that ends the app."""
        self.seeds = tuple(seeds)
        for seed_list in self.query("#seed-list").results(Static):
            seed_list.update(seeds_text(self.seeds))
