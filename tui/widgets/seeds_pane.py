"""The Seeds pane: every seed known, up or down, its round trip, and which one is home."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from node.user.events import SeedState


def short(url: str) -> str:
    """`127.0.0.1:5001` for `ws://127.0.0.1:5001` (the common case); other schemes stay visible."""
    return url.removeprefix("ws://")


class SeedsPane(Static):
    def on_mount(self) -> None:
        self.border_title = "Seeds"
        self.show([])

    seeds: tuple[SeedState, ...] = ()

    def show(self, seeds: tuple[SeedState, ...] | list[SeedState]) -> None:
        self.seeds = tuple(seeds)
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
            text.append(seed.name or short(seed.url), style="bold" if seed.home else "")
            if seed.home:
                text.append(" home", style="reverse")
            if seed.embedded:
                text.append(" embedded", style="italic cyan")
            if seed.up is False:
                text.append(" down", style="red")
            elif seed.rtt_ms:
                text.append(f" {seed.rtt_ms:.1f} ms", style="dim")
            if seed.name:
                text.append(f"\n  {short(seed.url)}", style="dim")
        self.update(text)
