"""Searching one conversation's whole history on disk, and picking a hit to jump to.

Results come from the store (not just the page on screen) and follow the query as it is typed;
Enter on a hit closes the dialog with that message's number, Esc closes it with nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from node.user.store import StoredMessage

from ..safe import safe_content, safe_text
from .message_line import clock, name_style

LIMIT = 50


def hit_prompt(msg: StoredMessage, query: str) -> Text:
    """One line: when, who, and the text around the first match, the match highlighted."""
    body = safe_text(msg.text)
    at = body.lower().find(query.lower()) if query else -1
    start = max(0, at - 30) if at >= 0 else 0
    snippet = ("…" if start else "") + body[start : start + 200]
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(clock(msg.ts, full=True) + " ", style="dim")
    text.append(safe_text(msg.sender), style="bold" if msg.outgoing else name_style(msg.sender))
    if msg.key_changed and not msg.outgoing:
        text.append(" ⚠ new key, not accepted", style="bold red")  # not from the trusted key
    text.append(": ")
    offset = len(text)
    text.append(snippet)
    if at >= 0:
        begin = offset + at - start + (1 if start else 0)
        text.stylize("reverse", begin, begin + len(query))
    return text


class SearchDialog(ModalScreen[int | None]):
    BINDINGS = [
        Binding("escape", "dismiss_none", "Close", show=False),
        Binding("down", "focus_hits", "Hits", show=False),
    ]

    def __init__(
        self, peer: str, search: Callable[[str], list[StoredMessage]], query: str = ""
    ) -> None:
        super().__init__()
        self.peer = peer
        self.search = search
        self.query_text = query
        self.hits: list[StoredMessage] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="search-box") as box:
            box.border_title = safe_content(f"Search the conversation with {self.peer}")
            yield Input(value=self.query_text, placeholder="text to find", id="search-query")
            yield Static("", id="search-count", markup=False)
            yield OptionList(id="search-hits")

    def on_mount(self) -> None:
        self.query_one("#search-query", Input).focus()
        self.run_search(self.query_text)

    @on(Input.Changed, "#search-query")
    def on_query(self, event: Input.Changed) -> None:
        self.run_search(event.value)

    def run_search(self, query: str) -> None:
        self.query_text = query
        self.hits = self.search(query) if query.strip() else []
        hits = self.query_one("#search-hits", OptionList)
        hits.clear_options()
        hits.add_options(Option(hit_prompt(m, query), id=str(m.n)) for m in self.hits)
        if self.hits:
            hits.highlighted = 0
        count = len(self.hits)
        more = "+" if count == LIMIT else ""
        self.query_one("#search-count", Static).update(
            f"{count}{more} {'message' if count == 1 else 'messages'}, newest first · "
            "↓ to pick one, Enter jumps there"
            if query.strip()
            else "type to search the whole history"
        )

    @on(Input.Submitted, "#search-query")
    def on_submit(self) -> None:
        if self.hits:
            self.dismiss(self.hits[0].n)

    @on(OptionList.OptionSelected, "#search-hits")
    def on_pick(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option_id is not None:
            self.dismiss(int(event.option_id))

    def action_focus_hits(self) -> None:
        self.query_one("#search-hits", OptionList).focus()

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
