"""The TUI warns when a contact's name looks like another contact's (issue 18, 12): Pilot against
a real seed on 127.0.0.1."""

from __future__ import annotations

from tui.widgets.chat_pane import ChatPane
from tui.widgets.contacts_pane import ContactsPane

from .test_tui import SIZE, connected, entry, make_app, submit, until


async def test_adding_a_lookalike_contact_warns_and_both_are_marked(seeds, tmp_path):
    """Before r3 `/add Sa1ly` beside `Sally` said nothing. Now /add prints a warning line, and
    the contacts pane marks both names (a name a seed still holds from before r3, or one not
    registered at all, can still be added)."""
    a = await seeds("a")
    app = make_app(tmp_path, "Carol", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        await submit(pilot, "/add Sally")
        await until(pilot, lambda: entry(app, "sally") is not None)
        await submit(pilot, "/add Bob")
        await until(pilot, lambda: entry(app, "bob") is not None)
        chat = app.query_one(ChatPane)
        assert not any("looks like" in note for note in chat.notes)

        await submit(pilot, "/add Sa1ly")
        await until(pilot, lambda: entry(app, "sa1ly") is not None)
        await until(pilot, lambda: any("looks like your contact Sally" in n for n in chat.notes))
        pane = app.query_one(ContactsPane)
        shown = {e.name: pane.render_entry(e).plain for e in pane.entries.values()}
        assert "looks like Sa1ly" in shown["Sally"] and "looks like Sally" in shown["Sa1ly"]
        assert "looks like" not in shown["Bob"]
