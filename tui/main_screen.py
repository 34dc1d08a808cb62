"""The chat's one screen: Seeds and Contacts in the side column, the conversation, and the input
with the footer docked at the bottom. Dialogs (search) are pushed over it.

The screen holds the layout and its widgets; the app holds the state and the node, and reaches
the widgets through this screen, also while a dialog is the active screen.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header

from .widgets.chat_pane import ChatPane
from .widgets.composer import Composer
from .widgets.contacts_pane import ContactsPane
from .widgets.jump_bar import JumpBar
from .widgets.seeds_pane import SeedsPane


class MainScreen(Screen[None]):
    class Ready(Message):
        """The screen and its panes are mounted (the app starts the node then)."""

    def __init__(
        self, choices: Callable[[str], list[str]], check: Callable[[str], str | None]
    ) -> None:
        super().__init__()
        self.composer = Composer(choices, check, id="input")
        self.seeds = SeedsPane(id="seeds")
        self.contacts = ContactsPane(id="contacts")
        self.chat = ChatPane(id="chat")
        self.jump_bar = JumpBar(id="jump", markup=False)
        self.side = Vertical(self.seeds, self.contacts, id="side")

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="bottom"):  # docked; first, so the composer leads the focus order
            yield self.composer
            yield Footer()
        with Horizontal(id="main"):
            yield self.side
            with Vertical(id="conversation"):
                yield self.chat
                yield self.jump_bar

    def on_mount(self) -> None:
        self.post_message(self.Ready())
