"""One line of a conversation: a message with its time, sender and delivery state; and the
separator lines between them (a new day, where the user stopped reading)."""

from __future__ import annotations

import time
import zlib

from rich.text import Text
from textual.content import Content
from textual.geometry import Size
from textual.message import Message
from textual.widgets import Static

from node.user.store import StoredMessage
from node.wire.names import fold_name

from ..highlight import mentions, urls
from ..safe import safe_text

# (mark, words, style) per state of an outgoing message: the marks alone where they say enough
# (the README explains them; the words are in the line's tooltip), words where the user may act
STATE_MARKS: dict[str, tuple[str, str, str]] = {
    "queued": ("…", "queued", "dim"),
    "sent": ("✓", "", "dim"),
    "stored": ("✉", "", "yellow"),
    "delivered": ("✓✓", "", "green"),
    "failed": ("✗", "failed", "red"),
}
STATE_TIPS = {
    "queued": "queued: waiting to go out",
    "sent": "sent",
    "stored": "stored for the recipient (offline): delivered when they come online",
    "delivered": "delivered",
    "failed": "failed",
}
SENT_BY_PATH = {"direct": "sent direct", "relay": "relayed", "mail": "mailed"}
URL_STYLE = "underline bright_blue"
MENTION_STYLE = "bold reverse"
# readable on dark and light themes alike; a name keeps its colour everywhere, across runs
NAME_COLOURS = [
    "dodger_blue2",
    "green4",
    "dark_orange3",
    "magenta3",
    "turquoise4",
    "red3",
    "purple3",
    "gold3",
    "deep_pink3",
    "chartreuse4",
]
ME_STYLE = "bold"


def name_style(name: str) -> str:
    """The colour of a name: the same for everyone who sees it, from a hash of the folded name."""
    return "bold " + NAME_COLOURS[zlib.crc32(fold_name(name).encode()) % len(NAME_COLOURS)]


def clock(ms: int, full: bool = False) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S" if full else "%H:%M", time.localtime(ms / 1000))


def day_of(ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(ms / 1000))


def day_title(ms: int) -> str:
    t = time.localtime(ms / 1000)
    return time.strftime(f"%A {t.tm_mday} %B %Y", t)


def is_action(text: str) -> bool:
    """A /me message: sent as text starting with '/me ', shown as '* name does'."""
    return text.startswith("/me ")


def hang(content: Content, width: int, indent: int) -> list[Content]:
    """`content` wrapped to `width`, every wrapped piece after a line's first indented by `indent`
    cells (under the text, not the time). Lines that start with the indent already (ctrl+j
    lines) wrap the same way."""
    if indent * 2 >= width:  # too narrow to hang anything
        indent = 0
    pad = Content(" " * indent)
    out: list[Content] = []
    for line in content.split("\n", allow_blank=True):
        pieces = line.wrap(width)
        if len(pieces) <= 1:
            out.extend(pieces or [line])
            continue
        out.append(pieces[0])
        plain = line.plain
        start = len(pieces[0].plain)
        while start < len(plain) and plain[start] == " ":
            start += 1
        rest = line[start:]
        out.extend(pad + piece for piece in (rest.wrap(width - indent) if rest else []))
    return out


class MessageLine(Static):
    """One message; its state mark changes in place as the node reports progress."""

    class Jump(Message):
        """r3: the user clicked a reply: show the message it quotes (number `n`)."""

        def __init__(self, n: int) -> None:
            self.n = n
            super().__init__()

    # r3 (tui/acts_ui.py): a reply's quoted line (sender, text, its number), the text as edited,
    # the edited/deleted mark and reactions; set by `decorate`
    quote: tuple[str, str, int] | None = None
    body: str | None = None
    mark = ""
    reactions: tuple[tuple[str, int], ...] = ()

    def decorate(
        self,
        quote: tuple[str, str, int] | None,
        body: str | None,
        mark: str,
        reactions: tuple[tuple[str, int], ...],
    ) -> None:
        self.quote, self.body, self.mark, self.reactions = quote, body, mark, reactions
        self.set_class(mark == "deleted", "-deleted")
        self.update(self.message_text())

    def on_click(self) -> None:
        if self.quote is not None:
            self.post_message(self.Jump(self.quote[2]))

    def __init__(self, msg: StoredMessage, me: str, full_times: bool = False) -> None:
        self.msg = msg
        self.me = me
        self.state = msg.state
        self.reason = msg.reason
        self.path: str | None = None
        self.full_times = full_times
        self.indent = 0  # where the text starts, for the wrapped lines of a long message
        self._hung: tuple[int, object, list[Content]] | None = None
        classes = "outgoing" if msg.outgoing else "incoming"
        if msg.key_changed:
            classes += " -key-changed"
        if self.mentioned():
            classes += " -mention"
        super().__init__(self.message_text(), classes=classes, markup=False)
        self.set_tooltip()

    def mentioned(self) -> bool:
        """An incoming group message naming the user (highlighted, and an alert)."""
        msg = self.msg
        return msg.peer.startswith("#") and not msg.outgoing and bool(mentions(msg.text, self.me))

    def set_tooltip(self) -> None:
        if self.msg.outgoing and not self.msg.peer.startswith("#"):
            tip = STATE_TIPS.get(self.state, self.state)
            if self.state == "sent" and self.path in SENT_BY_PATH:
                tip = SENT_BY_PATH[self.path]
            if self.reason:
                tip += f" ({safe_text(self.reason)})"
            self.tooltip = tip

    # ------------------------------------------------------------------ wrapping under the text

    def hung(self, width: int) -> list[Content]:
        visual = self.visual  # a new one on every update
        if self._hung is None or self._hung[0] != width or self._hung[1] is not visual:
            content = visual if isinstance(visual, Content) else Content(str(visual))
            self._hung = (width, visual, hang(content, max(width, 1), self.indent))
        return self._hung[2]

    def render(self) -> Content:
        return Content("\n").join(self.hung(self.content_size.width))

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.hung(width)) if width else 0

    def set_state(self, state: str, reason: str | None, path: str | None = None) -> None:
        self.state, self.reason = state, reason
        self.path = path or self.path
        self.update(self.message_text())
        self.set_tooltip()

    def set_full_times(self, full: bool) -> None:
        if full != self.full_times:
            self.full_times = full
            self.update(self.message_text())

    def state_words(self) -> tuple[str, str, str]:
        if self.msg.peer.startswith("#") and self.reason and self.state in ("sent", "delivered"):
            # a group message: how many members have it ("✓✓ 7/9")
            done = self.state == "delivered"
            return ("✓✓" if done else "✓", self.reason, "green" if done else "dim")
        return STATE_MARKS.get(self.state, ("", self.state, ""))

    def message_text(self) -> Text:
        msg = self.msg
        text = Text()
        if msg.key_changed and not msg.outgoing:
            # never shown as if it came from the key the user trusts
            who = safe_text(msg.sender)
            text.append(
                f"⚠ NOT FROM THE KEY YOU TRUSTED: {who}'s key changed and this came from the new "
                f"key, not accepted (/whois {who}, /accept {who})\n",
                style="bold red",
            )
        stamp = clock(msg.ts, self.full_times) + " "
        if self.quote is not None:  # r3: the line a reply answers
            text.append(" " * len(stamp) + "┌ " + safe_text(self.quote[0]) + ": ", style="dim")
            text.append(safe_text(self.quote[1] or "(deleted)") + "\n", style="dim italic")
        body_text = msg.text if self.body is None else self.body
        text.append(stamp, style="dim")
        who = ME_STYLE if msg.outgoing else name_style(msg.sender)
        self.indent = len(stamp)
        indent = "\n" + " " * len(stamp)  # the lines of a message start under its first
        if is_action(body_text):
            text.append("* ", style=who)
            text.append(safe_text(msg.sender), style=who)
            body = safe_text(body_text[4:], multiline=True).replace("\n", indent)
            text.append(" ")
            start = len(text)
            text.append(body, style="italic")
        else:
            text.append(safe_text(msg.sender), style=who)
            text.append(": ")
            start = len(text)
            text.append(safe_text(body_text, multiline=True).replace("\n", indent))
        body = text.plain[start:]
        for begin, end in urls(body):  # a style over the literal text: never a link or markup
            text.stylize(URL_STYLE, start + begin, start + end)
        if msg.peer.startswith("#") and not msg.outgoing:
            for begin, end in mentions(body, self.me):
                text.stylize(MENTION_STYLE, start + begin, start + end)
        if self.mark:  # r3: "(edited)", "(deleted)"
            text.append(f" ({self.mark})", style="dim italic")
        if msg.outgoing:
            mark, words, style = self.state_words()
            text.append(f"  {mark} {words}".rstrip(), style=style)
            if self.reason and self.state in ("queued", "failed"):
                text.append(f" ({safe_text(self.reason)})", style=style)
        if self.reactions:  # r3: "👍 2 ❤ 1" under the line
            shown = " ".join(f"{safe_text(e)} {k}" for e, k in self.reactions)
            text.append(indent + shown, style="dim")
        return text


class DayLine(Static):
    """Where a new day starts in the conversation."""

    def __init__(self, ms: int) -> None:
        super().__init__(f"─── {day_title(ms)} ───", classes="day", markup=False)
        self.day = day_of(ms)


class ReadMarker(Static):
    """Where the unread messages began when the conversation was opened."""

    def __init__(self) -> None:
        super().__init__("─── new since you last read ───", classes="marker", markup=False)
