"""Groups in the terminal client: listed with the contacts (marked '#'), opened in the chat pane,
and kept up to date from the node's events. The app calls these hooks first and does nothing
more with an event a hook took."""

from __future__ import annotations

from node.user.events import GroupChanged, MessageQueued, MessageReceived, MessageState
from node.user.group_store import GroupMessage

from .group_view import GroupHistory, as_line, gid_of, group_key, members_text, title
from .highlight import mentions
from .host import Host
from .safe import safe_content


class GroupUI:
    def __init__(self, app: Host) -> None:
        self.app = app

    def loaded(self) -> None:
        """The node started: list the groups it holds."""
        node = self.app.node
        if node is None:
            return
        for state in node.groups.groups():
            entry = self.app.contacts.entry(group_key(state.gid))
            entry.topic = state.topic
            self.app.contacts.changed(entry.name)

    def changed(self, event: GroupChanged) -> None:
        app = self.app
        name = group_key(event.group)
        entry = app.contacts.entry(name)
        entry.topic = event.topic
        app.contacts.changed(name)
        if app.showing(name) and app.node is not None:
            state = app.node.groups.state(event.group)
            app.chat.border_title = safe_content(title(state))
            app.chat.system(f"version {event.version}: {members_text(state)}")

    def open(self, name: str) -> bool:
        """Open a group's conversation; False when `name` is a person's."""
        gid = gid_of(name)
        app = self.app
        if gid is None or app.node is None:
            return False
        if gid not in app.node.groups.chains:
            app.chat.system(f"no group {name}", classes="error")
            return True
        app.current = name
        app.chat.open(name, app.me, GroupHistory(app.node, gid), 0)
        app.chat.border_title = safe_content(title(app.node.groups.state(gid)))
        entry = app.contacts.get(name)
        if entry is not None and entry.unread:
            entry.unread = 0
            app.contacts.changed(name)
        return True

    def received(self, event: MessageReceived) -> bool:
        if event.group is None:
            return False
        app, name = self.app, group_key(event.group)
        if app.node is None:
            return True
        msg = GroupMessage(
            event.n, event.group, event.from_, event.id, 0, event.ts, event.text, False
        )
        entry = app.contacts.entry(name)
        who = f"{event.from_} in #{entry.topic or event.group[:8]}"
        # the open group alerts an absent user only when it names them; others as a person's do
        mention = who if mentions(event.text, app.me) else None
        if app.showing(name) and app.chat.add(as_line(app.node, msg)):
            if mention is not None:
                app.notifier.message(who, event.text, shown=True, mention=mention)
            return True
        entry.unread += 1
        app.contacts.changed(name)
        if not app.showing(name) or mention is not None:
            app.notifier.message(who, event.text, shown=app.showing(name), mention=mention)
        return True

    def queued(self, event: MessageQueued) -> bool:
        if event.group is None:
            return False
        app, name = self.app, group_key(event.group)
        if app.node is not None and app.showing(name):
            if not app.chat.following():
                app.chat.jump_to_newest()
            msg = GroupMessage(0, event.group, event.from_, event.id, 0, event.ts, event.text, True)
            app.chat.add(as_line(app.node, msg))
        return True

    def state(self, event: MessageState) -> bool:
        """A member's copy moved on: the line's tally ("✓✓ 7/9") is counted again."""
        if event.group is None:
            return False
        app = self.app
        if app.node is not None and app.showing(group_key(event.group)):
            view = app.node.groups.delivery(event.group, event.id)
            state = "delivered" if view.delivered == view.total else "sent"
            app.chat.set_state(event.id, state, f"{view.delivered}/{view.total}", None)
            line = app.chat.lines.get(event.id)
            if line is not None:  # who is missing and why, on hover
                line.tooltip = safe_content(view.summary())
        return True
