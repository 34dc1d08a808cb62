"""The p2p-chat Textual app: a face on the node core, holding no networking of its own."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path

from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Input

from node.config import UserConfig
from node.crypto.keys import fingerprint
from node.errors import ConnectionLost, InvalidInput, P2PError, RemoteError, SeedUnavailable
from node.seed.server import Seed
from node.storage.files import default_data_dir, secure_dir
from node.user.events import (
    ContactAdded,
    ContactRemoved,
    ErrorEvent,
    KeyChanged,
    MessageQueued,
    MessageReceived,
    MessageState,
    NameRegistered,
    PresenceChanged,
    SeedStatus,
)
from node.user.node import UserNode
from node.user.seed_client import first_answering
from node.user.store import StoredMessage
from node.wire.names import fold_name, require_name

from .bridge import NodeEvent, pump
from .commands import Command, CommandError, help_text, parse
from .embedded import host_seed
from .settings import Settings
from .widgets.chat_input import ChatInput
from .widgets.chat_pane import ChatPane
from .widgets.contacts_pane import ContactsPane
from .widgets.seeds_pane import SeedsPane

log = logging.getLogger("p2p.tui")

PAGE = 100
STATE_LABEL = {
    "connecting": "connecting",
    "connected": "connected",
    "failing_over": "failing over",
    "offline": "offline",
}


class ChatApp(App):
    """`ChatApp(config)`; tests pass their own config, data dir and embedded-seed port."""

    CSS_PATH = "app.tcss"
    TITLE = "p2p-chat"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("ctrl+n", "next_unread", "Next unread"),
        Binding("ctrl+l", "focus_contacts", "Contacts"),
        Binding("pageup", "older", "Older", show=False),
    ]

    def __init__(
        self,
        config: UserConfig,
        embedded_seed: bool = True,
        embedded_port: int = 5001,
        probe_timeout: float = 1.0,
    ) -> None:
        super().__init__()
        self.me = require_name(config.name)
        self.config = config
        self.data_dir: Path = config.data_dir or default_data_dir("users", fold_name(self.me))
        self.embedded_allowed = embedded_seed
        self.embedded_port = embedded_port
        self.probe_timeout = probe_timeout
        self.embedded: Seed | None = None
        self.node: UserNode | None = None
        self.current: str | None = None
        self.settings = Settings()
        self.state = "connecting"
        self.home: str | None = None

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            with Vertical(id="side"):
                yield SeedsPane(id="seeds")
                yield ContactsPane(id="contacts")
            yield ChatPane(id="chat")
        yield ChatInput(self.completion_names, id="input")
        yield Footer()

    @property
    def contacts(self) -> ContactsPane:
        return self.query_one(ContactsPane)

    @property
    def chat(self) -> ChatPane:
        return self.query_one(ChatPane)

    def on_mount(self) -> None:
        self.title = f"p2p-chat · {self.config.name}"
        self.sub_title = "connecting"
        self.query_one(ChatInput).focus()
        self.start_node()

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.width < 90, "-narrow")

    def completion_names(self) -> list[str]:
        return self.contacts.names()

    # ------------------------------------------------------------------ the node

    @work(exclusive=True, group="node")
    async def start_node(self) -> None:
        """Find a seed (or start the embedded one), start the node, then pump its events."""
        secure_dir(self.data_dir)
        settings_path = self.data_dir / "tui.toml"
        self.settings, warning = Settings.load(settings_path)
        if warning:
            self.chat.system(warning, classes="error")
        if self.settings.theme and self.settings.theme in self.available_themes:
            self.theme = self.settings.theme
        seeds = list(dict.fromkeys([*self.config.seeds, *self.settings.seeds]))
        embedded: set[str] = set()
        if self.embedded_allowed and await first_answering(seeds, self.probe_timeout) is None:
            url = await self.start_embedded_seed()
            if url:
                embedded.add(url)
                seeds = [url, *[s for s in seeds if s != url]]
        self.node = UserNode(
            self.config.model_copy(update={"seeds": seeds, "data_dir": self.data_dir}), embedded
        )
        stream = self.node.subscribe()
        try:
            await self.node.start()
        except (P2PError, OSError) as exc:
            self.chat.system(f"cannot start: {exc}", classes="error")
            return
        for contact in self.node.contacts():
            entry = self.contacts.entry(contact.name)
            entry.new = contact.new
            entry.held = contact.changed_key is not None
            self.contacts.changed(contact.name)
        for name in self.settings.contacts:
            if self.node.store.contact(name) is None:
                self.node.add_contact(name)
        await pump(stream, self)

    async def start_embedded_seed(self) -> str | None:
        try:
            seed = await host_seed(self.me, self.embedded_port, self.data_dir)
        except OSError as exc:
            self.chat.system(
                f"no seed answers and the embedded seed cannot start ({exc.strerror}); "
                "add one with /seed URL",
                classes="error",
            )
            return None
        self.embedded = seed
        self.chat.system(
            f"No seed answered: started an embedded seed at {seed.url}. Others on this "
            "machine can use it while this app runs."
        )
        return seed.url

    @work(exclusive=True, group="embed")
    async def embed_when_alone(self) -> None:
        """The seed we used went away (another app's embedded seed, say): host one here instead."""
        if not self.embedded_allowed or self.embedded is not None or self.node is None:
            return
        await asyncio.sleep(2.0)
        if self.state != "offline" or self.node is None:
            return
        if await first_answering(list(self.node.seed.candidates(None)), self.probe_timeout) is None:
            url = await self.start_embedded_seed()
            if url and self.node is not None:
                self.node.seed.embedded.add(url)
                self.node.add_seed(url)

    async def on_unmount(self) -> None:
        """Every way out (ctrl+q, /quit, a test ending) stops the node and the embedded seed cleanly."""
        self.workers.cancel_group(self, "node")
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
        match event:
            case NameRegistered():
                self.home = event.seed
            case SeedStatus():
                if event.state == "offline" and self.state != "offline":
                    self.embed_when_alone()
                self.state = event.state
                self.home = event.home if event.state == "connected" else self.home
                label = STATE_LABEL.get(event.state, event.state)
                self.sub_title = f"{label} · home {event.home}" if event.home else label
                self.query_one(SeedsPane).show(event.seeds)
            case PresenceChanged():
                entry = self.contacts.entry(event.name)
                entry.online, entry.last_seen = event.online, event.last_seen
                self.contacts.changed(event.name)
            case MessageReceived():
                self.on_message_received(event)
            case MessageQueued():
                self.on_message_queued(event)
            case MessageState():
                self.on_message_state(event)
            case ContactAdded():
                entry = self.contacts.entry(event.name)
                entry.new = event.new
                self.contacts.changed(event.name)
                self.save_settings()
            case ContactRemoved():
                self.contacts.forget(event.name)
                self.save_settings()
            case KeyChanged():
                entry = self.contacts.entry(event.name)
                entry.held = True
                self.contacts.changed(event.name)
                self.chat.system(
                    f"{event.message}. Old key {event.old_fingerprint}, new key {event.new_fingerprint}.",
                    classes="error",
                )
                self.notify(event.message, title="Key changed", severity="warning")
            case ErrorEvent():
                self.chat.system(event.message, classes="error")
                self.notify(event.message, severity="error")

    def showing(self, peer: str) -> bool:
        return self.current is not None and fold_name(self.current) == peer

    def on_message_queued(self, event: MessageQueued) -> None:
        msg = StoredMessage.new_outgoing(event.id, event.from_, event.to, event.ts, event.text)
        if self.showing(msg.peer):
            self.chat.add(msg)

    def on_message_received(self, event: MessageReceived) -> None:
        msg = StoredMessage.new_incoming(event.id, event.from_, event.to, event.ts, event.text)
        if self.showing(msg.peer):
            self.chat.add(msg)
            return
        entry = self.contacts.entry(event.from_)
        entry.unread += 1
        self.contacts.changed(event.from_)
        self.notify(event.text[:80], title=f"Message from {event.from_}")

    def on_message_state(self, event: MessageState) -> None:
        if self.chat.set_state(event.id, event.state, event.reason):
            return
        if event.state == "failed":
            self.notify(f"to {event.to}: {event.reason}", title="Not delivered", severity="error")

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
            self.notify(f"cannot save settings: {exc}", severity="error")

    # ------------------------------------------------------------------ conversations

    @on(ContactsPane.Opened)
    def on_contact_opened(self, message: ContactsPane.Opened) -> None:
        self.open_conversation(message.name)
        self.query_one(ChatInput).focus()

    def open_conversation(self, name: str) -> None:
        entry = self.contacts.entry(name)
        self.current = entry.name
        entry.unread = 0
        if entry.new and self.node is not None:
            entry.new = False
            self.node.mark_seen(entry.name)
        self.contacts.changed(entry.name)
        page = self.node.history(entry.name, limit=PAGE) if self.node else []
        self.chat.open(entry.name, page, PAGE)

    @on(ChatPane.NeedOlder)
    def on_need_older(self, message: ChatPane.NeedOlder) -> None:
        if self.node is not None:
            self.chat.prepend(
                self.node.history(message.peer, before=message.before, limit=PAGE), PAGE
            )

    def action_older(self) -> None:
        self.chat.action_older()
        self.chat.scroll_page_up()

    def action_next_unread(self) -> None:
        for entry in self.contacts.entries.values():
            if entry.unread:
                self.open_conversation(entry.name)
                return
        self.notify("no unread messages")

    def action_focus_contacts(self) -> None:
        self.contacts.focus()

    # ------------------------------------------------------------------ the input line

    @on(Input.Submitted, "#input")
    def on_input(self, event: Input.Submitted) -> None:
        line = event.value.strip()
        event.input.value = ""
        if not line:
            return
        try:
            parsed = parse(line)
        except CommandError as exc:
            self.chat.system(str(exc), classes="error")
            return
        if isinstance(parsed, str):
            if self.current is None:
                self.chat.system(
                    "no conversation is open: pick a contact, or /msg NAME TEXT", classes="error"
                )
                return
            self.send(self.current, parsed)
            return
        self.run_command(parsed)

    def run_command(self, cmd: Command) -> None:
        match cmd.name:
            case "help":
                self.chat.system(help_text())
            case "quit":
                self.exit()
            case "msg":
                name, text = cmd.args
                try:
                    require_name(name)
                except InvalidInput as exc:
                    self.chat.system(str(exc), classes="error")
                    return
                self.open_conversation(name)
                self.send(name, text)
            case "add":
                self.add_contact(cmd.args[0])
            case "remove":
                self.remove_contact(cmd.args[0])
            case "whois":
                self.whois(cmd.args[0])
            case "accept":
                self.accept_key(cmd.args[0])
            case "seed":
                self.add_seed(cmd.args[0])

    def node_ready(self) -> UserNode | None:
        if self.node is None:
            self.chat.system("still starting; try again in a moment", classes="error")
        return self.node

    @work(group="actions")
    async def send(self, to: str, text: str) -> None:
        node = self.node_ready()
        if node is None:
            return
        try:
            await node.send(to, text)  # its line is drawn from the queued event
        except P2PError as exc:
            self.chat.system(str(exc), classes="error")

    @work(group="actions")
    async def add_contact(self, name: str) -> None:
        node = self.node_ready()
        if node is None:
            return
        try:
            added = node.add_contact(name)
        except P2PError as exc:
            self.chat.system(str(exc), classes="error")
            return
        if not added:
            self.chat.system(f"{name} is already a contact")

    @work(group="actions")
    async def remove_contact(self, name: str) -> None:
        node = self.node_ready()
        if node is not None and not node.remove_contact(name):
            self.chat.system(f"{name} is not a contact", classes="error")

    @work(group="actions")
    async def whois(self, name: str) -> None:
        node = self.node_ready()
        if node is None:
            return
        try:
            found = await node.lookup(name)
        except RemoteError as exc:
            self.chat.system(f"{name}: {exc.message}", classes="error")
            return
        except (SeedUnavailable, ConnectionLost) as exc:
            self.chat.system(f"cannot look up {name} now: {exc}", classes="error")
            return
        r = found.record
        contact = node.store.contact(r.name)
        pinned = ""
        if contact is not None and contact.key is not None:
            pinned = (
                "  (pinned key matches)"
                if contact.key == r.key
                else "  (DIFFERS from the pinned key)"
            )
        state = f"online at {found.seed}" if found.online else "offline"
        self.chat.system(
            f"{r.name}: {state}\n  key {fingerprint(r.key)}{pinned}\n  endpoint {r.endpoint}  seq {r.seq}"
        )

    @work(group="actions")
    async def accept_key(self, name: str) -> None:
        node = self.node_ready()
        if node is None:
            return
        key = node.accept_key(name)
        if key is None:
            self.chat.system(f"{name} has no changed key to accept", classes="error")
            return
        entry = self.contacts.entry(name)
        entry.held = False
        self.contacts.changed(name)
        self.chat.system(f"accepted {name}'s new key {fingerprint(key)}; held messages flow again")

    @work(group="actions")
    async def add_seed(self, url: str) -> None:
        node = self.node_ready()
        if node is None:
            return
        if not url.startswith(("ws://", "wss://")):
            self.chat.system("a seed URL starts with ws:// or wss://", classes="error")
            return
        node.add_seed(url)
        if url not in self.settings.seeds:
            self.settings.seeds.append(url)
            self.save_settings()
        self.chat.system(f"added seed {url}")

    # ------------------------------------------------------------------ command palette

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand(
            "Help", "List the chat commands", lambda: self.run_command(Command("help", ()))
        )
        yield SystemCommand(
            "Next unread",
            "Open the next conversation with unread messages",
            self.action_next_unread,
        )
        for name in self.contacts.names():
            yield SystemCommand(
                f"Open {name}",
                f"Open the conversation with {name}",
                lambda n=name: self.open_conversation(n),
            )
            yield SystemCommand(
                f"Whois {name}", f"Show {name}'s key and record", lambda n=name: self.whois(n)
            )
            yield SystemCommand(
                f"Remove {name}",
                f"Remove {name} from contacts",
                lambda n=name: self.remove_contact(n),
            )
