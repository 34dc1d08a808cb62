"""The one place where the node's events become Textual messages."""

from __future__ import annotations

from textual.message import Message
from textual.message_pump import MessagePump

from node.user.events import Event, EventStream


class NodeEvent(Message):
    """A node event, delivered to the app on its message queue."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


async def pump(stream: EventStream, target: MessagePump) -> None:
    """Forward every node event to `target` until cancelled (run inside a worker)."""
    async for event in stream:
        target.post_message(NodeEvent(event))
