"""Replies, reactions and edits in the terminal client, driven by Pilot against real nodes on
127.0.0.1: a reply shows the line it quotes (a click jumps to it), reactions show under the line,
an edited line is marked, all from another real node's frames and from the app's commands."""

from __future__ import annotations

from node.user.events import MessageChanged, MessageReceived

from .helpers import next_event, registered
from .test_tui_client import SIZE, connected, make_app, type_in, until


def lines_text(app) -> list[str]:
    return [str(line.message_text()) for line in app.chat.message_lines()]


async def test_a_reply_with_its_quote_reactions_and_an_edit_between_two_nodes(
    seeds, users, tmp_path
):
    a = await seeds("a")
    bob, bob_ev = await users("Bob", [a.url])
    await next_event(bob_ev, registered)
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        await type_in(pilot, "/msg Bob lunch at noon?")
        got = await next_event(bob_ev, lambda e: isinstance(e, MessageReceived))
        first = got.id
        # Bob answers with a reply, and reacts: Sally's screen quotes the line and counts
        await bob.reply("Sally", first[:8], "yes, <b>noon</b> \x1b[31m")
        await until(pilot, lambda: any("┌ Sally: lunch at noon?" in t for t in lines_text(app)))
        reply = next(x for x in app.chat.message_lines() if x.quote is not None)
        assert "yes, <b>noon</b> ␛[31m" in str(reply.message_text())  # literal, escaped
        await bob.react("Sally", first, "👍")
        await until(pilot, lambda: any(t.endswith("👍 1") for t in lines_text(app)))
        # Sally reacts too, from the app: two people, two reactions
        await type_in(pilot, f"/react {first[:8]} ❤")
        await until(pilot, lambda: any("👍 1 ❤ 1" in t or "❤ 1 👍 1" in t for t in lines_text(app)))
        await next_event(bob_ev, lambda e: isinstance(e, MessageChanged) and len(e.reactions) == 2)
        # Sally edits her line (no id: her newest): both screens say so
        await type_in(pilot, "/edit lunch at one?")
        await until(pilot, lambda: any("lunch at one? (edited)" in t for t in lines_text(app)))
        changed = await next_event(bob_ev, lambda e: isinstance(e, MessageChanged) and e.edited)
        assert changed.id == first and changed.text == "lunch at one?"
        # the quote follows the edit, and a click on the reply jumps to the quoted line
        await until(pilot, lambda: any("┌ Sally: lunch at one?" in t for t in lines_text(app)))
        reply = next(x for x in app.chat.message_lines() if x.quote is not None)
        await pilot.click(reply)
        await until(
            pilot,
            lambda: any(
                x.has_class("-hit") and x.msg.id == first for x in app.chat.message_lines()
            ),
        )
        for x in app.chat.message_lines():
            x.remove_class("-hit")
        await type_in(pilot, "/jump")  # the same from the keyboard
        await until(
            pilot,
            lambda: any(
                x.has_class("-hit") and x.msg.id == first for x in app.chat.message_lines()
            ),
        )
        # Sally cannot edit Bob's reply
        await type_in(pilot, f"/edit {reply.msg.id[:8]} not mine")
        await until(pilot, lambda: "only your own" in " ".join(app.chat.notes))
