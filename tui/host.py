"""What the parts of the app (commands, group hooks, message actions) use of the app itself.

A Protocol that the app satisfies, so those parts import it and not the app: the imports run
one way, the app at the top.
"""

from __future__ import annotations

from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Protocol

from node.user.node import UserNode

from .notifier import Notifier
from .settings import Settings
from .widgets.chat_pane import ChatPane
from .widgets.contacts_pane import ContactsPane
from .widgets.seeds_pane import SeedsPane


class Host(Protocol):
    """The app, as its parts see it."""

    me: str
    data_dir: Path
    node: UserNode | None
    current: str | None
    state: str
    replaced: bool
    settings: Settings
    notifier: Notifier

    @property
    def chat(self) -> ChatPane: ...
    @property
    def contacts(self) -> ContactsPane: ...
    @property
    def seeds(self) -> SeedsPane: ...

    def showing(self, name: str) -> bool: ...
    def open_conversation(self, name: str, around: int | None = None) -> None: ...
    def open_search(self, query: str) -> None: ...
    def action_window(self, number: int) -> None: ...
    def save_settings(self) -> None: ...
    def show_state(self) -> None: ...
    def exit(self) -> None: ...
    def notify(self, message: str, *, title: str = "", markup: bool = True) -> None: ...
    def run_worker(
        self, work: Coroutine[Any, Any, None], *, name: str, group: str, exit_on_error: bool
    ) -> object: ...
