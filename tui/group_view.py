"""A group's conversation as the chat pane reads it: the group's messages as history lines, each
of our own carrying how many members have it ("✓✓ 7/9")."""

from __future__ import annotations

from dataclasses import replace

from node.user.group_store import GroupMessage
from node.user.groups import GroupState
from node.user.node import UserNode
from node.user.store import StoredMessage

GROUP_MARK = "#"


def group_key(gid: str) -> str:
    """How a group is named among the contacts and as the open conversation: '#' and its id."""
    return GROUP_MARK + gid


def gid_of(name: str | None) -> str | None:
    """The group id a conversation name stands for, or None for a person."""
    return name[1:] if name is not None and name.startswith(GROUP_MARK) else None


def as_line(node: UserNode, msg: GroupMessage) -> StoredMessage:
    """A group message as a history line; our own carry their per-member tally in `reason`."""
    line = StoredMessage(
        n=msg.n,
        peer=group_key(msg.gid),
        id=msg.mid,
        outgoing=msg.outgoing,
        sender=msg.sender,
        recipient=msg.gid,
        ts=msg.ts,
        text=msg.text,
        state="received",
        act=msg.act,
        changed=msg.changed,
    )
    if msg.outgoing:
        view = node.groups.delivery(msg.gid, msg.mid)
        state = "delivered" if view.delivered == view.total else "sent"
        if view.total == 0:  # nobody else in the group
            state = "queued"
        line = replace(line, state=state, reason=f"{view.delivered}/{view.total}")
    return line


class GroupHistory:
    """The chat pane's history source for one group (pages by message number, like a contact's)."""

    def __init__(self, node: UserNode, gid: str) -> None:
        self.node = node
        self.gid = gid

    def history(
        self, peer: str, before: int | None = None, limit: int = 100
    ) -> list[StoredMessage]:
        return [as_line(self.node, m) for m in self.node.groups.history(self.gid, before, limit)]

    def history_after(self, peer: str, after: int, limit: int = 100) -> list[StoredMessage]:
        return [
            as_line(self.node, m) for m in self.node.groups.history_after(self.gid, after, limit)
        ]

    def history_around(self, peer: str, n: int, limit: int = 100) -> list[StoredMessage]:
        return self.history(peer, None, limit)


def title(state: GroupState) -> str:
    return f"{state.topic} ({len(state.members)} members)"


def members_text(state: GroupState) -> str:
    names = [m.name + (" (admin)" if state.is_admin(m.name) else "") for m in state.members]
    return f"{state.topic}: {len(names)} members: " + ", ".join(names)
