"""The bar under the chat when new messages arrived below the view: how many, and how to get there."""

from __future__ import annotations

from textual import events
from textual.message import Message
from textual.widgets import Static


class JumpBar(Static):
    class Clicked(Message):
        """The user clicked the bar: jump to the newest message."""

    def show_count(self, count: int) -> None:
        self.display = count > 0
        if count:
            noun = "message" if count == 1 else "messages"
            self.update(f"↓ {count} new {noun} below · ctrl+end jumps there")

    def on_click(self, event: events.Click) -> None:
        self.post_message(self.Clicked())
