"""Telling the user about messages they are not looking at, once per burst.

350 messages arriving together are one toast ("350 new messages from bob"), not 350 stacked over
the chat: a burst ends after `QUIET` seconds without a message, or `LONGEST` seconds after it
began. The opt-in bell and desktop notification follow the same rhythm, and also fire for the
open conversation while the terminal reports that the app is not focused (another tmux window,
another application): that message is on screen but nobody sees it. A desktop notification is
an escape sequence (OSC 9 or OSC 777) written to the terminal, which shows it where it supports
it and ignores it elsewhere; inside tmux it is wrapped for passthrough. With `private` on, it
names the sender only: the text may show on a locked screen or a shared monitor.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from textual.app import App
from textual.timer import Timer

from .safe import osc_safe, safe_text

QUIET = 0.6
LONGEST = 3.0
TOAST_SECONDS = 4.0  # a toast lies over the chat's top right corner this long


@dataclass
class Burst:
    senders: dict[str, int] = field(default_factory=dict)  # name -> messages, first seen first
    last_text: str = ""
    total: int = 0
    hidden: int = 0  # in conversations not open: toasted as well as alerted
    mentioned: str | None = None  # who named the user in a group, last


def private_body(burst: Burst) -> str:
    """What a private notification says: who wrote, never what."""
    names = list(burst.senders)
    shown = ", ".join(safe_text(n) for n in names[:3]) + (" …" if len(names) > 3 else "")
    if burst.mentioned is not None and burst.total == 1:
        return f"{safe_text(burst.mentioned)} mentioned you"
    if burst.total == 1:
        return f"new message from {shown}"
    return f"{burst.total} new messages from {shown}"


def desktop_escape(kind: str, title: str, body: str, in_tmux: bool) -> str:
    """The escape asking the terminal for a desktop notification; both fields made inert."""
    title, body = osc_safe(title, 60), osc_safe(body, 200)
    if kind == "osc777":
        seq = f"\x1b]777;notify;{title};{body}\x1b\\"
    else:  # never starts with a digit: "9;4;..." means progress to some terminals
        seq = f"\x1b]9;{title}: {body}\x1b\\"
    if in_tmux:  # tmux passes it on only wrapped (and with allow-passthrough on)
        seq = "\x1bPtmux;" + seq.replace("\x1b", "\x1b\x1b") + "\x1b\\"
    return seq


class Notifier:
    """Collects incoming messages into bursts and shows each burst once, as the settings ask."""

    def __init__(
        self,
        app: App,
        bell: Callable[[], bool],
        desktop: Callable[[], str],
        write: Callable[[str], None] | None = None,
        private: Callable[[], bool] = lambda: False,
    ) -> None:
        self.app = app
        self.bell = bell
        self.desktop = desktop
        self.private = private
        self.write = write or self._write_to_terminal
        self.burst = Burst()
        self.quiet: Timer | None = None
        self.longest: Timer | None = None
        self.toasts = 0  # how many bursts were shown (tests count them)
        self.failures: dict[str, tuple[int, str]] = {}  # recipient -> (messages, last reason)

    def away(self) -> bool:
        """The terminal said the app lost focus (and no key or click came since)."""
        return not getattr(self.app, "app_focus", True)

    def message(
        self, sender: str, text: str, *, shown: bool = False, mention: str | None = None
    ) -> None:
        """A message arrived; `shown` when it is on screen in the open conversation (then it
        alerts only while the app is not focused, and never as a toast); `mention` names who
        named the user in a group."""
        if shown and not self.away():
            return
        burst = self.burst
        burst.senders[sender] = burst.senders.get(sender, 0) + 1
        burst.last_text = text
        burst.total += 1
        burst.hidden += not shown
        if mention is not None:
            burst.mentioned = mention
        if self.quiet is not None:
            self.quiet.stop()
        self.quiet = self.app.set_timer(QUIET, self.flush)
        if self.longest is None:
            self.longest = self.app.set_timer(LONGEST, self.flush)

    def failed(self, to: str, reason: str) -> None:
        """A message to a conversation not on screen failed: one toast per recipient per burst."""
        count, _ = self.failures.get(to, (0, ""))
        self.failures[to] = (count + 1, reason)
        if self.quiet is None:
            self.quiet = self.app.set_timer(QUIET, self.flush)

    def flush(self) -> None:
        failures, self.failures = self.failures, {}
        for to, (count, reason) in failures.items():
            what = "a message" if count == 1 else f"{count} messages"
            self.app.notify(
                f"{what} to {safe_text(to)}: {safe_text(reason)}",
                title="Not delivered",
                severity="error",
                markup=False,
            )
        for timer in (self.quiet, self.longest):
            if timer is not None:
                timer.stop()
        self.quiet = self.longest = None
        burst, self.burst = self.burst, Burst()
        if not burst.total:
            return
        names = list(burst.senders)
        if burst.total == 1:
            title = f"Message from {safe_text(names[0])}"
            if burst.mentioned is not None:
                title = f"{safe_text(burst.mentioned)} mentioned you"
            body = safe_text(burst.last_text)[:120]
        else:
            shown = ", ".join(safe_text(n) for n in names[:3]) + (" …" if len(names) > 3 else "")
            title = "New messages"
            body = f"{burst.total} new messages from {shown}"
        if burst.hidden:
            self.toasts += 1
            self.app.notify(body, title=title, markup=False, timeout=TOAST_SECONDS)
        if self.bell():
            self.app.bell()
        kind = self.desktop()
        if kind != "off":
            if self.private():
                title, body = "p2p-chat", private_body(burst)
            else:
                title = f"p2p-chat: {title}"
            self.write(desktop_escape(kind, title, body, "TMUX" in os.environ))

    def _write_to_terminal(self, seq: str) -> None:
        # Textual has no public raw write; its driver queues this with the screen updates, in order
        driver = getattr(self.app, "_driver", None)
        if driver is None or self.app.is_headless:
            return
        driver.write(seq)
        driver.flush()
