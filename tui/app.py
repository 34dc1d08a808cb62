"""The p2p-chat Textual app: a face on the node core, holding no networking of its own.

It draws from node events only (through the bridge), reads history pages and search results
through the UserNode API, and runs every network call in a worker that cannot take the app down.
The slash commands live in `slash.py`; this module is layout, keys and what each event shows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from textual import events, on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from node.config import UserConfig
from node.errors import InvalidInput, P2PError
from node.storage.files import default_data_dir, secure_dir
from node.user.events import (
    ContactAdded,
    ContactRemoved,
    ContactRespelled,
    ErrorEvent,
    GroupChanged,
    KeyChanged,
    MessageChanged,
    MessageQueued,
    MessageReceived,
    MessageState,
    NameRegistered,
    PresenceChanged,
    SeedStatus,
    SessionReplaced,
)
from node.user.node import UserNode
from node.user.store import StoredMessage
from node.wire.names import fold_name, require_name
from node.wire.protocol import MAX_TEXT

from . import acts_ui
from .bridge import NodeEvent, pump
from .commands import Command, CommandError, argument_choices, parse
from .drafts import Drafts
from .embedded import HostedSeed, embedded_address, host_seed
from .group_ui import GroupUI
from .keys import ALT_DIGITS, alt_digits_as_keys
from .main_screen import MainScreen
from .notifier import Notifier
from .safe import safe_content, safe_text
from .seed_url import check_seed_url
from .settings import Settings
from .slash import Slash
from .widgets.chat_pane import ChatPane
from .widgets.composer import Composer
from .widgets.contacts_pane import ContactsPane
from .widgets.jump_bar import JumpBar
from .widgets.search_dialog import SearchDialog
from .widgets.seeds_pane import SeedsPane

log = logging.getLogger("p2p.tui")

STATE_LABEL = {
    "connecting": "connecting",
    "connected": "connected",
    "failing_over": "failing over",
    "offline": "offline",
}
REPLACED = "in use elsewhere"
CHAT_KEYS = {"page_up", "page_down", "newest"}


class ChatApp(App):
    """`ChatApp(config)`; tests pass their own config and data dir, and may pin the embedded
    seed's port (by default the first configured seed on this machine, else 5001)."""

    CSS_PATH = "app.tcss"
    TITLE = "p2p-chat"
    # the class lands on the screen: narrow hides the side panes (ctrl+l / ctrl+b bring them back
    # over the chat), short keeps the Seeds pane small
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (70, "-medium"), (100, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (22, "-tall")]
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("ctrl+n", "next_unread", "Next unread"),
        Binding("ctrl+l", "contacts", "Contacts"),
        Binding("ctrl+r", "search", "Search"),
        Binding("f1", "help", "Help"),
        Binding("f2", "fingerprint", "My key"),
        Binding("ctrl+b", "toggle_side", "Side panes", show=False),
        Binding("ctrl+t", "timestamps", "Full times", show=False),
        Binding("pageup", "page_up", "Older", show=False, priority=True),
        Binding("pagedown", "page_down", "Newer", show=False, priority=True),
        Binding("ctrl+end,ctrl+g,alt+end", "newest", "Newest", show=False, priority=True),
        Binding("escape", "focus_input", "Input", show=False),
        # weechat and irssi keys; priority, so the input never takes them as text
        *[
            Binding(key, f"window({n})", f"Conversation {n}", show=False, priority=True)
            for n, key in ALT_DIGITS
        ],
        Binding("alt+a", "next_unread", "Next activity", show=False, priority=True),
        Binding("alt+shift+a", "read_all", "Mark all read", show=False, priority=True),
    ]
    # the app's state, each watched where it is shown (not set and redrawn from many places):
    # the open conversation, the connection, the home seed, and whether another session took
    # the name
    current: reactive[str | None] = reactive(None, init=False, repaint=False)
    state: reactive[str] = reactive("connecting", init=False, repaint=False)
    home: reactive[str | None] = reactive(None, init=False, repaint=False)
    replaced: reactive[bool] = reactive(False, init=False, repaint=False)

    def __init__(
        self,
        config: UserConfig,
        embedded_seed: bool = True,
        embedded_port: int | None = None,
        probe_timeout: float = 1.0,
    ) -> None:
        super().__init__()
        self.me = require_name(config.name)
        self.config = config
        self.data_dir: Path = config.data_dir or default_data_dir("users", fold_name(self.me))
        self.embedded_allowed = embedded_seed
        self.embedded_port = embedded_port
        self.probe_timeout = probe_timeout
        self.embedded: HostedSeed | None = None
        self.node: UserNode | None = None
        self.settings = Settings()
        self.drafts = Drafts()
        alt_digits_as_keys()
        self.notifier = Notifier(
            self,
            lambda: self.settings.bell,
            lambda: self.settings.desktop,
            private=lambda: self.settings.private,
        )
        self.slash = Slash(self)
        self.group_ui = GroupUI(self)
        self.main = MainScreen(self.completion_choices, self.check_input)
        self.redirecting = False  # keys typed outside the input are going into it

    # ------------------------------------------------------------------ layout

    def get_default_screen(self) -> MainScreen:
        return self.main

    # the main screen's widgets, kept by reference: events and commands reach them while a
    # dialog is the active screen
    @property
    def composer(self) -> Composer:
        return self.main.composer

    @property
    def seeds(self) -> SeedsPane:
        return self.main.seeds

    @property
    def contacts(self) -> ContactsPane:
        return self.main.contacts

    @property
    def chat(self) -> ChatPane:
        return self.main.chat

    @property
    def jump_bar(self) -> JumpBar:
        return self.main.jump_bar

    @property
    def side(self) -> Vertical:
        return self.main.side

    def on_mount(self) -> None:
        self.title = f"p2p-chat · {safe_text(self.me)}"
        self.sub_title = "connecting"

    @on(MainScreen.Ready)
    def on_main_ready(self) -> None:
        """The panes are mounted: what the node says can be shown from now on."""
        self.jump_bar.show_count(0)
        self.composer.focus()
        self.start_node()

    def completion_choices(self, before: str) -> list[str]:
        """What Tab offers after `before` (see commands.argument_choices)."""
        return argument_choices(before, self.contacts.names(), self.settings.seeds)

    # ------------------------------------------------------------------ the node

    @work(exclusive=True, group="node")
    async def start_node(self) -> None:
        """Find a seed (or start the embedded one), start the node, then pump its events."""
        secure_dir(self.data_dir)
        settings_path = self.data_dir / "tui.toml"
        self.settings, warnings = Settings.load(settings_path)
        for warning in warnings:
            self.chat.system(warning, classes="error")
        if self.settings.theme and self.settings.theme in self.available_themes:
            self.theme = self.settings.theme
        self.chat.set_full_times(self.settings.full_times)
        self.drafts, warnings = Drafts.load(self.data_dir / "drafts.json")
        for warning in warnings:
            self.chat.system(warning, classes="error")
        if self.current is None:
            self.composer.sent = self.drafts.sent(None)
        # seeds given with --seed are remembered like those added with /seed
        remembered = [s for s in self.config.seeds if s not in self.settings.seeds]
        self.settings.seeds.extend(remembered)
        seeds = list(dict.fromkeys([*self.config.seeds, *self.settings.seeds]))
        embedded: set[str] = set()
        if (
            self.embedded_allowed
            and await UserNode.seed_answering(seeds, self.probe_timeout) is None
        ):
            url = await self.start_embedded_seed(seeds)
            if url:
                embedded.add(url)
                seeds = [url, *[s for s in seeds if s.rstrip("/") != url]]
        node = UserNode(
            self.config.model_copy(update={"seeds": seeds, "data_dir": self.data_dir}), embedded
        )
        stream = node.subscribe()
        try:
            await node.start()
        except (P2PError, OSError) as exc:
            self.chat.system(f"cannot start: {exc}", classes="error")
            return
        self.node = node
        self.chat.decorator = acts_ui.decorator(node)  # r3: quotes, edits, reactions
        unread = node.unread()
        for contact in node.contacts():
            entry = self.contacts.entry(contact.name)
            entry.new = contact.new
            entry.held = contact.changed_key is not None
            entry.verified = contact.verified
            entry.blocked = node.is_blocked(contact.name)
            entry.last_seen = contact.last_seen
            entry.unread = unread.get(fold_name(contact.name), 0)
            self.contacts.changed(contact.name)
        for name in self.settings.contacts:
            if node.contact(name) is None and not node.is_blocked(name):
                node.add_contact(name)
        self.group_ui.loaded()
        if remembered:
            self.save_settings()
        last = self.drafts.last
        if self.current is None and last is not None and self.contacts.get(last) is not None:
            self.open_conversation(last)
        await pump(stream, self)

    async def start_embedded_seed(self, seeds: list[str]) -> str | None:
        """Host the machine's embedded seed where the configured seeds say, linked to them all."""
        port, url = embedded_address(seeds)
        if self.embedded_port is not None:
            port, url = self.embedded_port, None
        try:
            seed = await host_seed(self.me, port, seeds, url)
        except (OSError, P2PError, ValueError) as exc:  # ValueError: a seed URL it cannot link to
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.chat.system(
                f"no seed answers and the embedded seed cannot start ({why}); "
                "add one with /seed URL",
                classes="error",
            )
            return None
        self.embedded = seed
        self.chat.system(
            f"No seed answered: started an embedded seed at {seed.url}. Others on this "
            "machine can use it while this app runs; the next app to host it takes over the "
            "mail and names it holds."
        )
        return seed.url

    @work(exclusive=True, group="embed", exit_on_error=False)
    async def embed_when_alone(self) -> None:
        """The seed we used went away (another app's embedded seed, say): host one here instead."""
        if not self.embedded_allowed or self.embedded is not None or self.node is None:
            return
        await asyncio.sleep(2.0)
        if self.state != "offline" or self.node is None or self.replaced:
            return
        if not await self.node.any_seed_answers(self.probe_timeout):
            url = await self.start_embedded_seed(self.node.configured_seeds())
            if url and self.node is not None:
                self.node.add_embedded_seed(url)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The app's workers (slash commands among them) report a bug in the chat, not nowhere."""
        if event.state is WorkerState.ERROR:
            self.chat.internal_error(event.worker)

    async def on_unmount(self) -> None:
        """Every way out (ctrl+q, /quit, a test ending) stops the node and the embedded seed cleanly."""
        self.workers.cancel_group(self, "node")
        if self.node is not None:  # the drafts were loaded: keep what is typed now
            self.drafts.keep(self.current, self.composer.text)
            self.drafts.last = self.current
            self.save_drafts()
        if self.node is not None:
            await self.node.stop()
            self.node = None
        if self.embedded is not None:
            await self.embedded.stop()
            self.embedded = None

    # ------------------------------------------------------------------ node events

    @on(NodeEvent)
    def on_node_event(self, message: NodeEvent) -> None:
        event = message.event
        if isinstance(event, (MessageReceived, MessageQueued)):
            self.slash.log_message(event)
        match event:
            case NameRegistered():
                self.home = event.seed
            case SeedStatus():
                self.on_seed_status(event)
            case PresenceChanged():
                entry = self.contacts.get(event.name)
                if entry is None:  # no longer a contact
                    return
                entry.online, entry.last_seen = event.online, event.last_seen
                self.contacts.changed(event.name)
            case MessageReceived() if not self.group_ui.received(event):
                self.on_message_received(event)
            case MessageQueued() if not self.group_ui.queued(event):
                self.on_message_queued(event)
            case MessageState() if not self.group_ui.state(event):
                self.on_message_state(event)
            case GroupChanged():
                self.group_ui.changed(event)
            case MessageChanged() if self.node is not None:
                acts_ui.changed(self.node, self.current, self.chat.lines, event)
            case ContactAdded():
                entry = self.contacts.entry(event.name)
                entry.new = event.new
                self.contacts.changed(event.name)
                self.save_settings()
            case ContactRemoved():
                self.contacts.forget(event.name)
                self.save_settings()
            case ContactRespelled():
                self.contacts.respell(event.name)
                if self.current is not None and fold_name(self.current) == fold_name(event.name):
                    self.current = event.name
                    self.chat.respell(event.name)
                self.save_settings()
            case KeyChanged():
                self.on_key_changed(event)
            case SessionReplaced():
                self.on_session_replaced(event)
            case ErrorEvent():
                self.chat.system(event.message, classes="error")
                self.notify(safe_text(event.message), severity="error", markup=False)

    def on_seed_status(self, event: SeedStatus) -> None:
        if event.state == "connected":
            self.replaced = False
        elif event.state == "offline" and self.state != "offline" and not self.replaced:
            self.embed_when_alone()
        self.state = event.state
        self.home = event.home if event.state == "connected" else self.home
        self.seeds.show(event.seeds)

    def watch_state(self) -> None:
        self.show_state()

    def watch_home(self) -> None:
        self.show_state()

    def watch_replaced(self) -> None:
        self.show_state()

    def watch_current(self, old: str | None, new: str | None) -> None:
        """Another conversation: the input keeps the draft and lines sent of each, and says
        whom Enter sends to."""
        if self.node is not None:
            self.drafts.keep(old, self.composer.text)
            self.drafts.last = new
            self.composer.switch(self.drafts.draft(new), self.drafts.sent(new))
            self.save_drafts()
        self.composer.border_title = self.recipient_label(new)

    def recipient_label(self, name: str | None) -> str | Content:
        if name is None:
            return "no conversation open"
        entry = self.contacts.get(name)
        if entry is not None and entry.topic is not None:
            return safe_content(f"to # {entry.topic}")
        return safe_content(f"to {name}")

    def save_drafts(self) -> None:
        try:
            self.drafts.save(self.data_dir / "drafts.json")
        except OSError as exc:
            self.notify(f"cannot save drafts: {exc}", severity="error", markup=False)

    def show_state(self) -> None:
        """The header's second half: the connection, and unread messages the side may hide."""
        if self.replaced:
            state = REPLACED
        else:
            state = STATE_LABEL.get(self.state, self.state)
            if self.state == "connected" and self.home and self.size.width >= 70:
                state += f" · home {safe_text(self.home)}"
        unread = self.contacts.unread_total
        self.sub_title = f"{state} · {unread} unread" if unread else state

    def on_resize(self, event: events.Resize) -> None:
        name = safe_text(self.me)
        self.title = f"p2p-chat · {name}" if event.size.width >= 70 else name
        self.show_state()

    def on_session_replaced(self, event: SessionReplaced) -> None:
        """Another session holds the name now: say so plainly and do not fight it."""
        self.replaced = True
        self.chat.system(
            f"{event.message}\nYour name {self.me} was registered again from somewhere else "
            "(another app with your name and key). This app stopped connecting, so the two do "
            f"not take the name from each other; messages to {self.me} now go there. "
            "/reconnect takes the name back here.",
            classes="error",
        )
        self.notify(
            f"{safe_text(event.message)}; /reconnect takes it back",
            title="Name in use elsewhere",
            severity="warning",
            markup=False,
        )

    def on_key_changed(self, event: KeyChanged) -> None:
        entry = self.contacts.entry(event.name)
        was_verified = entry.verified
        entry.held, entry.verified = True, False
        self.contacts.changed(event.name)
        cleared = (
            f" {event.name} was marked verified: that mark is cleared, it was for the old key."
            if was_verified
            else ""
        )
        self.chat.system(
            f"{event.message}. Old key {event.old_fingerprint}, new key "
            f"{event.new_fingerprint}.{cleared}",
            classes="error",
        )
        self.notify(
            safe_text(event.message) + cleared,
            title="Key changed",
            severity="warning",
            markup=False,
        )

    def showing(self, peer: str) -> bool:
        return self.current is not None and fold_name(self.current) == fold_name(peer)

    def on_message_queued(self, event: MessageQueued) -> None:
        if not self.showing(event.to):
            return
        if not self.chat.following():
            self.chat.jump_to_newest()  # what you send is what you look at
        self.chat.add(
            StoredMessage.new_outgoing(event.id, event.from_, event.to, event.ts, event.text)
        )

    def on_message_received(self, event: MessageReceived) -> None:
        msg = replace(
            StoredMessage.new_incoming(
                event.id, event.from_, event.to, event.ts, event.text, event.key_changed
            ),
            n=event.n,
        )
        text = (
            f"(from a changed key, not accepted) {event.text}" if event.key_changed else event.text
        )
        if self.showing(event.from_) and self.chat.add(msg):
            if self.node is not None:
                self.node.mark_read(event.from_, event.n)
            self.notifier.message(event.from_, text, shown=True)  # alerts if the app is away
            return
        entry = self.contacts.get(event.from_)
        if entry is None:  # blocked or removed since it was stored: it stays in the history only
            return
        entry.unread += 1
        self.contacts.changed(event.from_)
        self.notifier.message(event.from_, text, shown=self.showing(event.from_))

    def on_message_state(self, event: MessageState) -> None:
        if self.chat.set_state(event.id, event.state, event.reason, event.path):
            return
        if event.state == "failed":
            self.notifier.failed(event.to, event.reason or "")

    def watch_theme(self, theme: str) -> None:
        if self.settings.theme != theme and self.node is not None:
            self.settings.theme = theme
            self.save_settings()

    def save_settings(self) -> None:
        if self.node is None:
            return
        self.settings.contacts = [c.name for c in self.node.contacts()]
        try:
            self.settings.save(self.data_dir / "tui.toml")
        except OSError as exc:
            self.notify(f"cannot save settings: {exc}", severity="error", markup=False)

    # ------------------------------------------------------------------ conversations

    @on(ContactsPane.Opened)
    def on_contact_opened(self, message: ContactsPane.Opened) -> None:
        self.open_conversation(message.name)
        self.action_focus_input()

    def open_conversation(self, name: str, around: int | None = None) -> None:
        node = self.node
        if node is None:
            self.chat.system("still starting; try again in a moment", classes="error")
            return
        if self.group_ui.open(name):
            return
        entry = self.contacts.get(name)
        shown = entry.name if entry is not None else name
        contact = node.contact(name)
        self.current = shown
        self.chat.open(shown, self.me, node, contact.read_upto if contact else 0, around)
        if around is None:
            node.mark_read(shown, self.chat.newest_n())
        if entry is not None:
            entry.unread = 0
            if entry.new:
                entry.new = False
                node.mark_seen(entry.name)
                self.chat.system(
                    f"{shown} wrote to you first. Reply to keep talking; "
                    f"/block {shown} refuses their messages from now on."
                )
            self.contacts.changed(entry.name)

    @on(ContactsPane.UnreadChanged)
    def on_unread_changed(self) -> None:
        self.show_state()

    @on(ChatPane.Below)
    def on_below(self, message: ChatPane.Below) -> None:
        self.jump_bar.show_count(message.count)

    @on(ChatPane.CaughtUp)
    def on_caught_up(self, message: ChatPane.CaughtUp) -> None:
        if self.node is not None and self.showing(message.peer):
            self.node.mark_read(message.peer, message.upto)
            entry = self.contacts.get(message.peer)
            if entry is not None and entry.unread:
                entry.unread = 0
                self.contacts.changed(entry.name)

    @on(JumpBar.Clicked)
    def on_jump_clicked(self) -> None:
        self.action_newest()

    # ------------------------------------------------------------------ the composer

    def check_input(self, text: str) -> str | None:
        """Why `text` cannot be sent as it stands (it then stays in the composer), or None."""
        try:
            parsed = parse(text.rstrip().lstrip("\n"))
        except CommandError as exc:
            return str(exc)
        if isinstance(parsed, str):
            if self.current is None:
                return "no conversation is open: pick a contact, or /msg NAME TEXT"
            return self.check_message(self.current, parsed)
        if parsed.name == "msg":
            try:
                require_name(parsed.args[0])
            except InvalidInput as exc:
                return str(exc)
            return self.check_message(*parsed.args)
        if parsed.name == "me":
            if self.current is None:
                return "no conversation is open for /me"
            return self.check_message(self.current, "/me " + parsed.args[0])
        if parsed.name == "seed":  # a bad URL stays in the input to be corrected
            args = parsed.args
            if len(args) != (2 if args[:1] == ("remove",) else 1):
                return "usage: /seed URL, or /seed remove URL"
            try:
                check_seed_url(args[-1])
            except InvalidInput as exc:
                return str(exc) if len(args) == 1 else None  # a saved bad one can be removed
        return None

    def check_message(self, to: str, text: str) -> str | None:
        if self.node is None:
            return "still starting: your text is kept, send it again in a moment"
        if fold_name(to) == fold_name(self.me):
            return "you cannot send a message to yourself"
        if len(text) > MAX_TEXT:
            return (
                f"a message holds at most {MAX_TEXT:,} characters and this one has "
                f"{len(text):,}: shorten or split it (it is still in the input)"
            )
        if self.node.is_blocked(to):
            return f"{to} is blocked: /unblock {to} to write to them"
        return None

    @on(Composer.Choices)
    def on_choices(self, message: Composer.Choices) -> None:
        self.chat.system("  ".join(message.choices))

    @on(Composer.Refused)
    def on_refused(self, message: Composer.Refused) -> None:
        self.chat.system(message.reason, classes="error")

    @on(Composer.Submitted)
    def on_submitted(self, message: Composer.Submitted) -> None:
        parsed = parse(message.text.rstrip().lstrip("\n"))  # checked before it was taken
        if isinstance(parsed, str):
            if self.current is not None:
                self.slash.send(self.current, parsed)
            return
        self.slash.run(parsed)

    def on_key(self, event: events.Key) -> None:
        """Typing while Contacts or the chat has focus goes to the composer, not nowhere."""
        composer = self.composer
        if (
            event.key == "enter"
            and self.focused is not composer
            and not isinstance(self.focused, ContactsPane)  # there Enter opens a contact
            and len(self.screen_stack) == 1
            and self.redirecting
            and composer.text.strip()
        ):  # the end of a burst typed into the chat pane: the focus had not moved yet
            event.stop()
            self.close_overlay()
            composer.focus()
            composer.submit()
        elif (
            event.is_printable
            and event.character
            and not event.key.startswith("alt+")
            and self.focused is not composer
            and len(self.screen_stack) == 1
            and event.key not in self.screen.active_bindings
        ):
            event.stop()
            self.close_overlay()
            composer.focus()
            composer.insert(event.character)
            if not self.redirecting:  # until the keys queued with this one are handled
                self.redirecting = True
                self.call_later(setattr, self, "redirecting", False)

    # ------------------------------------------------------------------ keys

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # the paging keys belong to the chat only on the main screen, and not to the contacts list
        if action in CHAT_KEYS:
            return len(self.screen_stack) == 1 and not isinstance(self.focused, ContactsPane)
        if action in ("window", "read_all"):  # not from under a dialog
            return len(self.screen_stack) == 1
        return True

    def action_page_up(self) -> None:
        self.chat.page_up()

    def action_page_down(self) -> None:
        self.chat.page_down()

    def action_newest(self) -> None:
        self.chat.jump_to_newest()

    def action_next_unread(self) -> None:
        for entry in sorted(self.contacts.entries.values(), key=lambda e: fold_name(e.name)):
            if entry.unread and not self.showing(entry.name):
                self.open_conversation(entry.name)
                return
        self.notify("no unread messages")

    def action_window(self, number: int) -> None:
        """alt+1..9, alt+0 and /window N: the conversation numbered so in Contacts."""
        name = self.contacts.numbered(number)
        if name is None:
            self.notify(f"no conversation {number}", markup=False)
            return
        self.open_conversation(name)

    def action_read_all(self) -> None:
        self.slash.run(Command("read", ("all",)))

    def action_focus_input(self) -> None:
        self.close_overlay()
        self.composer.focus()

    def action_contacts(self) -> None:
        side = self.side
        side.remove_class("-hidden")
        if self.screen.has_class("-narrow"):
            side.add_class("-overlay")
        self.contacts.focus()

    def action_toggle_side(self) -> None:
        side = self.side
        if self.screen.has_class("-narrow"):
            if side.has_class("-overlay"):
                self.action_focus_input()
            else:
                self.action_contacts()
        else:
            side.toggle_class("-hidden")
            if side.has_class("-hidden") and self.focused is None:
                self.composer.focus()

    def close_overlay(self) -> None:
        self.side.remove_class("-overlay")

    def action_search(self) -> None:
        self.slash.search("")

    def action_help(self) -> None:
        self.slash.run(Command("help", ()))

    def action_fingerprint(self) -> None:
        self.slash.run(Command("fingerprint", ()))

    def action_timestamps(self) -> None:
        self.slash.run(Command("timestamps", ()))

    def open_search(self, query: str) -> None:
        node, peer = self.node, self.current
        if node is None or peer is None:
            self.chat.system("open a conversation to search it", classes="error")
            return

        def jump(n: int | None) -> None:
            if n is not None and self.current is not None:
                self.open_conversation(self.current, around=n)
            self.action_focus_input()

        self.push_screen(SearchDialog(peer, lambda q: node.search(peer, q), query), jump)

    # ------------------------------------------------------------------ command palette

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        run = self.slash.run
        yield SystemCommand("Help", "List the chat commands and keys", self.action_help)
        yield SystemCommand(
            "Next unread",
            "Open the next conversation with unread messages",
            self.action_next_unread,
        )
        yield SystemCommand(
            "My fingerprint", "Show your own key fingerprint", self.action_fingerprint
        )
        yield SystemCommand("Search", "Search the open conversation", self.action_search)
        yield SystemCommand(
            "Full timestamps", "Dates and seconds on or off", self.action_timestamps
        )
        yield SystemCommand(
            "Side panes", "Show or hide Seeds and Contacts", self.action_toggle_side
        )
        yield SystemCommand("Seeds", "List every seed known", lambda: run(Command("seeds", ())))
        yield SystemCommand(
            "Reconnect",
            "Take your name back here"
            if self.replaced
            else "Drop the seed link and dial again, configured seeds first",
            lambda: run(Command("reconnect", ())),
        )
        for name in self.contacts.names():
            shown = safe_text(name)
            yield SystemCommand(
                f"Open {shown}",
                f"Open the conversation with {shown}",
                lambda n=name: self.open_conversation(n),
            )
            for verb, what in (
                ("whois", "Show {}'s key, marks and record"),
                ("verify", "Show the fingerprints to compare with {}"),
                ("block", "Refuse {}'s messages"),
                ("remove", "Remove {} from contacts"),
            ):
                yield SystemCommand(
                    f"{verb.capitalize()} {shown}",
                    what.format(shown),
                    lambda v=verb, n=name: run(Command(v, (n,))),
                )
        if self.node is not None:
            for name in self.node.blocked():
                yield SystemCommand(
                    f"Unblock {safe_text(name)}",
                    "Accept their messages again",
                    lambda n=name: run(Command("unblock", (n,))),
                )
