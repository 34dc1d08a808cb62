"""Replies, reactions, edits and deletes in the terminal client (r3, node/user/acts.py): each
line of the chat pane is decorated from the store as it is built (a reply's quoted line, the
text as edited, "(edited)"/"(deleted)", reactions), changes arrive as `MessageChanged` events,
and `/reply`, `/react`, `/edit`, `/delete` act on a message picked by id prefix or the newest."""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, cast

from node.errors import InvalidInput
from node.user.acts import DELETED, EDITED, ActType, Scope, valid_emoji
from node.user.events import MessageChanged
from node.user.node import UserNode
from node.wire.names import fold_name

from .group_view import gid_of
from .host import Host
from .widgets.message_line import MessageLine


class Commands(Protocol):
    """What these commands use of the command runner (slash.py's `Slash`)."""

    app: Host

    def node(self) -> UserNode | None: ...
    def error(self, text: str) -> None: ...
    def background(self, work: Coroutine[Any, Any, object], name: str) -> None: ...


QUOTE_CHARS = 80
_ID = re.compile(r"[0-9a-f-]{4,64}")


def scope_of(peer: str) -> tuple[Scope, str]:
    """The store's scope and conversation key of a pane's conversation name."""
    gid = gid_of(peer)
    return ("g", gid) if gid is not None else ("p", fold_name(peer))


def first_line(text: str) -> str:
    line = text.split("\n", 1)[0]
    return line if len(line) <= QUOTE_CHARS else line[: QUOTE_CHARS - 1] + "…"


def decorator(node: UserNode) -> Callable[[MessageLine], None]:
    """The chat pane's hook: a line's quote, edited text, mark and reactions from the store."""

    def decorate(line: MessageLine) -> None:
        msg = line.msg
        scope, conv = scope_of(msg.peer)
        t = node.acts.target(scope, conv, msg.id, msg.sender)
        if t is None:
            return
        quote = None
        if t.act is not None and t.act.type == "reply":
            q = node.acts.target(scope, conv, t.act.ref)
            if q is not None:
                quote = (q.sender, first_line(node.acts.shown(q)), q.n)
        mark = {EDITED: "edited", DELETED: "deleted"}.get(t.changed, "")
        reactions = node.acts.reactions(scope, t.n)
        if quote is None and not mark and not reactions and t.act is None:
            return  # a plain line: as it was drawn
        line.decorate(quote, node.acts.shown(t), mark, reactions)

    return decorate


def changed(
    node: UserNode, current: str | None, lines: dict[str, MessageLine], event: MessageChanged
) -> None:
    """A message of the open conversation changed: its line is drawn again."""
    if current is None:
        return
    scope, conv = scope_of(current)
    if event.group != (conv if scope == "g" else None):
        return
    if scope == "p" and fold_name(event.peer) != conv:
        return
    line = lines.get(event.id)
    if line is not None:
        decorator(node)(line)
    for other in lines.values():  # replies quoting it show its new text
        if other.quote is not None and other.quote[2] == event.n:
            decorator(node)(other)


# ------------------------------------------------------------------ commands


def _split_id(node: UserNode, peer: str, text: str) -> tuple[str | None, str]:
    """A leading word that names one message of the conversation by id prefix, and the rest."""
    head, _, rest = text.strip().partition(" ")
    if _ID.fullmatch(head):
        try:
            _pick(node, peer, head, False)
        except InvalidInput:
            return None, text.strip()
        return head, rest.strip()
    return None, text.strip()


def _pick(node: UserNode, peer: str, ref: str | None, mine: bool) -> str:
    gid = gid_of(peer)
    if gid is not None:
        return node.groups.pick(gid, ref, mine).mid
    return node.pick(peer, ref, mine).id


def run(slash: Commands, kind: str, args: str) -> None:
    """/reply [ID] TEXT, /react [ID] EMOJI (ID alone: take it back), /edit [ID] TEXT, /delete
    [ID]; without an ID: the newest line (yours, for /edit and /delete)."""
    node = slash.node()
    peer = slash.app.current
    if node is None:
        return
    if peer is None:
        slash.error("no conversation is open")
        return
    ref, rest = _split_id(node, peer, args)
    emoji = ""
    if kind == "react":
        if ref is None and (not rest or not valid_emoji(rest)):
            raise InvalidInput(
                "usage: /react [ID] EMOJI (one emoji; /react ID alone takes it back)"
            )
        emoji = rest
    elif kind in ("reply", "edit") and not rest:
        raise InvalidInput(f"usage: /{kind} [ID] TEXT")
    elif kind == "delete" and rest:
        raise InvalidInput("usage: /delete [ID]")
    target = _pick(node, peer, ref, kind in ("edit", "delete"))
    gid = gid_of(peer)
    if gid is not None:
        work = node.groups.act(gid, cast(ActType, kind), target, emoji if kind == "react" else rest)
    elif kind == "reply":
        work = node.reply(peer, target, rest)
    elif kind == "react":
        work = node.react(peer, target, emoji)
    elif kind == "edit":
        work = node.edit(peer, target, rest)
    else:
        work = node.delete(peer, target)
    slash.background(work, kind)


def jump(slash: Commands, ref: str | None) -> None:
    """/jump [ID]: show the line a reply quotes (the newest reply shown, without ID)."""
    node, peer = slash.node(), slash.app.current
    if node is None or peer is None:
        return
    chat = slash.app.chat
    if ref is None:
        replies = [x for x in chat.message_lines() if x.quote is not None]
        if not replies:
            raise InvalidInput("no reply is shown here")
        chat.jump_to(replies[-1].quote[2])  # type: ignore[index]
        return
    scope, conv = scope_of(peer)
    t = node.acts.target(scope, conv, _pick(node, peer, ref, False))
    if t is None or t.act is None or t.act.type != "reply":
        raise InvalidInput(f"{ref} is not a reply")
    q = node.acts.target(scope, conv, t.act.ref)
    if q is None:
        raise InvalidInput("the message it answers is not here")
    chat.jump_to(q.n)
