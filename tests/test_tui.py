"""The terminal UI driven by Pilot against real seeds and user nodes on 127.0.0.1."""

from __future__ import annotations

import asyncio

from node.config import UserConfig
from node.user.events import MessageReceived, NameRegistered
from tui.app import ChatApp
from tui.widgets.chat_pane import ChatPane
from tui.widgets.composer import Composer, complete
from tui.widgets.contacts_pane import ContactsPane
from tui.widgets.seeds_pane import SeedsPane

from .helpers import eventually, next_event

SIZE = (100, 30)


def make_app(tmp_path, name: str, seeds: list[str], **kw) -> ChatApp:
    kw.setdefault("embedded_seed", False)
    return ChatApp(UserConfig(name=name, seeds=seeds, data_dir=tmp_path / f"tui-{name}"), **kw)


async def until(pilot, predicate, timeout: float = 10.0, what: str = "the screen to change"):
    """Let the app run until the screen shows what is expected (the UI has no event to await)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await pilot.pause(0.02)
    return True


async def submit(pilot, text: str) -> None:
    field = pilot.app.query_one(Composer)
    field.focus()
    field.load_text(text)
    await pilot.press("enter")


async def sally_and_bob(seeds, users, tmp_path):
    """A seed, a registered headless Bob, and Sally's app (not yet running)."""
    a = await seeds("a")
    bob, bob_ev = await users("bob", [a.url])
    await next_event(bob_ev, lambda e: isinstance(e, NameRegistered))
    return a, bob, bob_ev, make_app(tmp_path, "Sally", [a.url])


def connected(app) -> bool:
    return app.sub_title.startswith("connected")


def entry(app, name):
    return app.query_one(ContactsPane).entries.get(name.lower())


async def test_panes_at_start(seeds, tmp_path):
    a = await seeds("a")
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        assert app.title == "p2p-chat · Sally" and app.sub_title == "connected · home a"
        pane = app.query_one(SeedsPane)
        await until(pilot, lambda: any(s.name == "a" and s.home and s.up for s in pane.seeds))
        assert app.query_one(ContactsPane).option_count == 0
        assert app.query_one(ChatPane).peer is None
        assert app.focused is app.query_one(Composer)


async def test_add_contact_by_typing_and_presence_changes(seeds, users, tmp_path):
    a = await seeds("a")
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        await pilot.press(*"/add bo", "tab", "enter")  # Tab has nothing to complete yet
        assert app.query_one(Composer).value == ""
        await until(pilot, lambda: entry(app, "bo") is not None)
        for key in ["/", "a", "d", "d", "space", "b", "o", "b", "enter"]:
            await pilot.press(key)
        await until(pilot, lambda: entry(app, "bob") is not None)
        assert entry(app, "bob").online is False
        bob, bob_ev = await users("bob", [a.url])
        await until(pilot, lambda: entry(app, "bob").online)
        await users.stop(bob)
        await until(pilot, lambda: not entry(app, "bob").online and entry(app, "bob").last_seen)
        # Tab completes a contact's name in the input line
        field = app.query_one(Composer)
        field.load_text("/msg b")
        field.move_cursor((0, 6))
        await pilot.press("tab")
        assert field.value == "/msg bo"  # 'bo' and 'bob' share 'bo'
    assert complete("/wh", 3, []) == ("/whois ", 7)


async def test_receive_open_reply_and_see_delivered(seeds, users, tmp_path):
    a = await seeds("a")
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(pilot, lambda: connected(app))
        bob, bob_ev = await users("bob", [a.url])
        await next_event(bob_ev, lambda e: isinstance(e, NameRegistered))
        await bob.send("Sally", "hi sally")
        await until(pilot, lambda: entry(app, "bob") is not None and entry(app, "bob").unread == 1)
        assert entry(app, "bob").new is True
        await until(pilot, lambda: any("hi sally" in n.message for n in app._notifications))
        # select the contact with the keyboard
        app.query_one(ContactsPane).focus()
        await pilot.press("enter")
        chat = app.query_one(ChatPane)
        await until(pilot, lambda: chat.peer == "bob")
        assert [line.msg.text for line in chat.lines.values()] == ["hi sally"]
        assert entry(app, "bob").unread == 0 and entry(app, "bob").new is False
        assert app.focused is app.query_one(Composer)

        await submit(pilot, "hello bob")
        got = await next_event(bob_ev, lambda e: isinstance(e, MessageReceived))
        assert got.text == "hello bob" and got.from_ == "Sally"
        mine = await eventually(lambda: [x for x in chat.lines.values() if x.msg.outgoing])
        await until(pilot, lambda: mine[0].state == "delivered")
        assert mine[0].message_text().plain.endswith("✓✓") and mine[0].state == "delivered"


async def test_unread_counts_and_focus_stays(seeds, users, tmp_path):
    a = await seeds("a")
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        bob, bob_ev = await users("bob", [a.url])
        carol, carol_ev = await users("carol", [a.url])
        for _, ev in ((bob, bob_ev), (carol, carol_ev)):
            await next_event(ev, lambda e: isinstance(e, NameRegistered))
        await bob.send("Sally", "from bob")
        await until(pilot, lambda: entry(app, "bob") and entry(app, "bob").unread == 1)
        await submit(pilot, "/msg bob opening this")
        await until(pilot, lambda: app.query_one(ChatPane).peer == "bob")
        for i in range(3):
            await carol.send("Sally", f"carol {i}")
        await until(pilot, lambda: entry(app, "carol") and entry(app, "carol").unread == 3)
        assert app.query_one(ChatPane).peer == "bob"  # no focus stealing
        assert entry(app, "bob").unread == 0
        await bob.send("Sally", "bob again")
        chat = app.query_one(ChatPane)
        await until(pilot, lambda: any(x.msg.text == "bob again" for x in chat.lines.values()))
        assert entry(app, "bob").unread == 0
        await pilot.press("ctrl+n")
        await until(pilot, lambda: chat.peer == "carol")
        assert [x.msg.text for x in chat.lines.values()] == ["carol 0", "carol 1", "carol 2"]


async def test_message_to_an_unknown_name_waits_then_cancel_and_retry(seeds, users, tmp_path):
    """A name nobody holds yet: the message is shown waiting with why (it failed at once and for
    good before), /cancel gives it up, /retry puts it back, and it goes out once the name
    registers."""
    a = await seeds("a")
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        await submit(pilot, "/msg ghost are you there")
        chat = app.query_one(ChatPane)
        await until(pilot, lambda: chat.peer == "ghost" and chat.lines)
        line = next(iter(chat.lines.values()))
        await until(pilot, lambda: "nobody is registered as ghost yet" in (line.reason or ""))
        assert line.state == "queued" and "retrying" in line.message_text().plain
        await until(pilot, lambda: "the message waits" in "\n".join(chat.notes))
        await submit(pilot, "/cancel")
        await until(pilot, lambda: line.state == "failed")
        assert line.reason == "cancelled" and "gave up on your message" in chat.notes[-1]
        await submit(pilot, "/cancel")
        assert "no message to ghost to cancel" in chat.notes[-1]
        await submit(pilot, "/retry")
        await until(pilot, lambda: line.state == "queued")
        ghost, ghost_ev = await users("ghost", [a.url])
        await until(pilot, lambda: line.state == "delivered")
        assert (await next_event(ghost_ev, lambda e: isinstance(e, MessageReceived))).text == (
            "are you there"
        )
        await submit(pilot, "/frobnicate")
        assert "unknown command" in chat.notes[-1]
        await submit(pilot, "/msg ../x hi")
        assert "invalid name" in chat.notes[-1]


async def test_a_bug_in_a_worker_is_logged_and_shown_as_internal_error(
    seeds, users, tmp_path, monkeypatch, caplog
):
    """Workers that may not end the app (a slash command's, a history page's) must not fail
    unseen either: the traceback goes to the log, the chat says "internal error", the app goes on."""
    a, bob, bob_ev, app = await sally_and_bob(seeds, users, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        chat = app.query_one(ChatPane)
        node = app.node
        assert node is not None

        async def send_bug(to: str, text: str) -> str:
            raise KeyError("a bug in send")

        monkeypatch.setattr(node, "send", send_bug)
        await submit(pilot, "/msg bob hello")
        await until(pilot, lambda: any("internal error" in n for n in chat.notes))
        traced = [r for r in caplog.records if r.name == "p2p.tui" and r.exc_info]
        assert traced and isinstance(traced[-1].exc_info[1], KeyError)

        async def page_bug() -> bool:
            raise ZeroDivisionError

        before = len(chat.notes)
        monkeypatch.setattr(chat, "load_older", page_bug)
        chat.page_in("older")
        await until(pilot, lambda: any("internal error" in n for n in chat.notes[before:]))
        traced = [r for r in caplog.records if r.name == "p2p.tui" and r.exc_info]
        assert isinstance(traced[-1].exc_info[1], ZeroDivisionError)
        assert app.is_running and not chat.paging


async def test_home_seed_killed_shows_failover_in_seeds_pane(seeds, tmp_path):
    a = await seeds("a")
    b = await seeds("b", peers=[a.url])
    await eventually(lambda: "a" in b.mesh.peer_names(), what="mesh")
    app = make_app(tmp_path, "Sally", [a.url, b.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        pane = app.query_one(SeedsPane)
        home = {"a": a, "b": b}[app.home]
        other = "b" if app.home == "a" else "a"
        await home.stop()
        await until(pilot, lambda: app.home == other and connected(app), timeout=10)
        await until(
            pilot,
            lambda: (
                any(s.name == other and s.home for s in pane.seeds)
                and any(s.url == home.url and s.up is False for s in pane.seeds)
            ),
        )


async def test_history_after_restart(seeds, users, tmp_path):
    a, bob, bob_ev, app = await sally_and_bob(seeds, users, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        await submit(pilot, "/msg bob first words")
        await next_event(bob_ev, lambda e: isinstance(e, MessageReceived))
        await bob.send("Sally", "an answer")
        chat = app.query_one(ChatPane)
        await until(
            pilot,
            lambda: (
                len(chat.lines) == 2
                and all(x.state in ("delivered", "received") for x in chat.lines.values())
            ),
        )
    app2 = make_app(tmp_path, "Sally", [a.url])
    async with app2.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: entry(app2, "bob") is not None)
        app2.query_one(ContactsPane).focus()
        await pilot.press("enter")
        chat = app2.query_one(ChatPane)
        await until(pilot, lambda: chat.peer == "bob")
        assert [(x.msg.text, x.state) for x in chat.lines.values()] == [
            ("first words", "delivered"),
            ("an answer", "received"),
        ]


async def test_history_pages_in_from_disk(seeds, users, tmp_path):
    a, bob, bob_ev, app = await sally_and_bob(seeds, users, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        assert app.node is not None
        app.node.add_contact("bob")  # a stranger would be held to its allowance (100, 1/s)
        ids = [await bob.send("Sally", f"line {i}") for i in range(150)]
        await until(
            pilot, lambda: entry(app, "bob") and entry(app, "bob").unread == len(ids), timeout=20
        )
        await submit(pilot, "/msg bob ok")
        chat = app.query_one(ChatPane)
        await until(pilot, lambda: chat.peer == "bob" and len(chat.lines) == 101)
        assert list(chat.lines.values())[0].msg.text == "line 50"
        for _ in range(60):  # PageUp scrolls a page; near the top it reads the page before
            if len(chat.lines) == 151:
                break
            await pilot.press("pageup")
        assert len(chat.lines) == 151 and not chat.has_older


async def test_embedded_seed_starts_when_no_seed_answers(tmp_path):
    app = make_app(
        tmp_path,
        "Sally",
        ["ws://127.0.0.1:9"],
        embedded_seed=True,
        embedded_port=0,
        probe_timeout=0.3,
    )
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        assert app.embedded is not None and app.home == "embedded-Sally"
        pane = app.query_one(SeedsPane)
        await until(pilot, lambda: any(s.embedded and s.home for s in pane.seeds))
        assert "embedded seed" in app.query_one(ChatPane).notes[-1]


async def test_app_hosts_a_seed_when_the_one_it_used_goes_away(seeds, tmp_path):
    import socket

    with socket.socket() as s:  # a free port both "apps" agree on, as 5001 is by default
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    other_apps_seed = await seeds("embedded-Sally", port=port)
    app = make_app(
        tmp_path,
        "Bob",
        [other_apps_seed.url],
        embedded_seed=True,
        embedded_port=port,
        probe_timeout=0.3,
    )
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        assert app.home == "embedded-Sally" and app.embedded is None
        await other_apps_seed.stop()  # Sally quit her app
        await until(pilot, lambda: app.home == "embedded-Bob" and connected(app), timeout=15)
        pane = app.query_one(SeedsPane)
        await until(pilot, lambda: any(s.embedded and s.home for s in pane.seeds))


async def test_contacts_and_seeds_persist_in_toml_and_palette_offers_actions(seeds, tmp_path):
    import tomllib

    a = await seeds("a")
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        await submit(pilot, "/add Bob")
        await submit(pilot, "/seed ws://127.0.0.1:9")
        saved = tmp_path / "tui-Sally" / "tui.toml"
        await until(
            pilot,
            lambda: (
                saved.exists()
                and "ws://127.0.0.1:9" in saved.read_text()
                and "Bob" in saved.read_text()
            ),
        )
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Open Bob", "Whois Bob", "Remove Bob", "Help"} <= set(titles)
        await submit(pilot, "/remove Bob")
        await until(pilot, lambda: entry(app, "bob") is None)
    kept = tomllib.loads(saved.read_text())
    # the seed given on the command line is remembered too
    assert (kept["contacts"], kept["seeds"]) == ([], [a.url, "ws://127.0.0.1:9"])
    app2 = make_app(tmp_path, "Sally", [a.url])
    async with app2.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app2))
        await until(
            pilot, lambda: any(s.url == "ws://127.0.0.1:9" for s in app2.query_one(SeedsPane).seeds)
        )


async def test_mouse_selects_a_contact(seeds, users, tmp_path):
    a, bob, bob_ev, app = await sally_and_bob(seeds, users, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        await submit(pilot, "/add bob")
        await until(pilot, lambda: entry(app, "bob") is not None)
        await pilot.click(ContactsPane, offset=(3, 1))
        await until(pilot, lambda: app.query_one(ChatPane).peer == "bob")


async def test_msg_to_a_name_in_another_case_shows_its_owners_spelling(seeds, users, tmp_path):
    """Typed `/msg bob`, then a line: the conversation opens, and once bob's record is read the
    contact and the title say Bob, as its owner registered it (the typed text never runs into
    the name)."""
    a = await seeds("a")
    bob, bob_ev = await users("Bob", [a.url])
    await next_event(bob_ev, lambda e: isinstance(e, NameRegistered))
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        await submit(pilot, "/msg bob")
        assert app.query_one(Composer).value == ""
        assert app.current == "bob"
        await submit(pilot, "hi")
        got = await next_event(bob_ev, lambda e: isinstance(e, MessageReceived))
        assert got.text == "hi"
        await until(
            pilot, lambda: entry(app, "bob") is not None and entry(app, "bob").name == "Bob"
        )
        chat = app.query_one(ChatPane)
        await until(pilot, lambda: app.current == "Bob" and chat.peer == "Bob")
        assert "Bob" in str(chat.border_title)
