"""Groups in the terminal client, driven by Pilot against real nodes on 127.0.0.1: a group listed
with the contacts, its conversation with each member's colour, "✓✓ n/m" under our own lines, who
is missing and why, and the member list."""

from __future__ import annotations

from node.user.events import GroupChanged
from tui.widgets.message_line import MessageLine, name_style

from .helpers import next_event, registered
from .test_tui_client import SIZE, connected, make_app, notes, screen_text, type_in, until


def lines_text(app) -> list[str]:
    return [str(line.message_text()) for line in app.chat.message_lines()]


async def test_a_group_conversation_with_per_member_states_and_members(seeds, users, tmp_path):
    a = await seeds("a")
    bob, bob_ev = await users("Bob", [a.url])
    cat, cat_ev = await users("Cat", [a.url])
    await next_event(bob_ev, registered)
    await next_event(cat_ev, registered)
    app = make_app(tmp_path, "Ann", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        await type_in(pilot, "/group new ops Bob Cat")
        await until(pilot, lambda: app.current is not None and app.current.startswith("#"))
        gid = app.current[1:]
        assert app.contacts.get(app.current).topic == "ops"
        assert "# ops" in screen_text(app)  # listed with the contacts, marked as a group
        await next_event(bob_ev, lambda e: isinstance(e, GroupChanged))
        await next_event(cat_ev, lambda e: isinstance(e, GroupChanged))
        await type_in(pilot, "hello all")
        await until(pilot, lambda: any("✓✓ 2/2" in t for t in lines_text(app)))
        # one member offline: our line says how many have it, the view says who not and why
        await users.stop(cat)
        await type_in(pilot, "who is here")
        await until(
            pilot,
            lambda: any("who is here" in t and "✓ 1/2" in t for t in lines_text(app)),
        )
        mine = next(x for x in app.chat.message_lines() if x.msg.text == "who is here")
        view = app.node.groups.delivery(gid, mine.msg.id)
        assert (view.delivered, view.total) == (1, 2)
        assert [c.recipient for c in view.missing] == ["Cat"]
        assert view.summary().startswith("delivered to 1 of 2; missing Cat: ")
        await until(pilot, lambda: "missing Cat" in str(mine.tooltip))
        # a member's message shows in the group, in that member's colour
        await bob.groups.send(gid, "hi from Bob")
        await until(pilot, lambda: any("hi from Bob" in t for t in lines_text(app)))
        line = next(x for x in app.chat.message_lines() if x.msg.text == "hi from Bob")
        assert isinstance(line, MessageLine) and not line.msg.outgoing
        assert any(span.style == name_style("Bob") for span in line.message_text().spans)
        await type_in(pilot, "/members")
        await until(pilot, lambda: "3 members: Ann (admin), Bob, Cat" in notes(app))
        await type_in(pilot, "/kick Cat")
        await until(pilot, lambda: "2 members: Ann (admin), Bob" in notes(app))
        assert "ops (2 members)" in str(app.chat.border_title)
