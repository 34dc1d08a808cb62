"""The terminal client as a day of use meets it: one test per problem found trying it, and the
features people expect from weechat or iamb. Real seeds and user nodes on 127.0.0.1, driven by
Pilot; waits are for screen states, never for time."""

from __future__ import annotations

import asyncio
import time

from textual import events

from node.config import UserConfig
from node.user.events import (
    MessageReceived,
    MessageState,
    SeedState,
    SeedStatus,
    SessionReplaced,
)
from node.user.store import StoredMessage, UserStore
from tui import notifier
from tui.app import ChatApp
from tui.widgets.chat_pane import ChatPane
from tui.widgets.contacts_pane import ContactsPane
from tui.widgets.message_line import DayLine, MessageLine, ReadMarker, name_style
from tui.widgets.search_dialog import SearchDialog

from .helpers import eventually, next_event, registered

SIZE = (100, 30)
DAY = 86_400_000
T0 = 1_767_348_000_000  # 2026-01-02 10:00 UTC


def make_app(tmp_path, name: str, seeds: list[str], **kw) -> ChatApp:
    kw.setdefault("embedded_seed", False)
    kw.setdefault("probe_timeout", 0.2)
    return ChatApp(UserConfig(name=name, seeds=seeds, data_dir=tmp_path / f"tui-{name}"), **kw)


async def until(pilot, predicate, timeout: float = 10.0):
    """Let the app run until the screen shows what is expected."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await pilot.pause(0.02)


def connected(app) -> bool:
    return app.sub_title.startswith("connected")


def entry(app, name):
    return app.contacts.get(name)


def notes(app) -> str:
    return "\n".join(app.chat.notes)


def screen_text(app) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def type_in(pilot, text: str) -> None:
    composer = pilot.app.composer
    composer.focus()
    composer.load_text(text)
    await pilot.press("enter")


async def prefill(tmp_path, owner: str, peer: str, count: int, text=None, start=T0, step=60_000):
    """History on disk before the app starts: `count` messages from `peer`, all unread."""
    data = tmp_path / f"tui-{owner}"
    data.mkdir(mode=0o700, exist_ok=True)
    store = UserStore(data / "user.sqlite3")
    store.start()
    store.add_contact(peer, start)
    for i in range(count):
        body = text(i) if text else f"line {i}"
        await store.add_message(
            StoredMessage.new_incoming(f"p{i}", peer, owner, start + i * step, body)
        )
    await store.close()


async def open_prefilled(pilot, app, peer: str) -> ChatPane:
    """Open the conversation `prefill` wrote, once the node is up, and wait for its lines."""
    await until(pilot, lambda: entry(app, peer) is not None and app.node is not None)
    app.open_conversation(peer)
    chat = app.chat
    await until(pilot, lambda: chat.visible_lines())
    return chat


def shown_numbers(chat: ChatPane) -> set[int]:
    return {line.msg.n for line in chat.visible_lines()}


async def paged(pilot, key: str) -> set[int]:
    """Press a paging key and wait for the page read it started, if any; what is shown then."""
    await pilot.press(key)
    await pilot.pause()
    await until(pilot, lambda: not pilot.app.chat.paging)
    await pilot.pause()
    return shown_numbers(pilot.app.chat)


# ---------------------------------------------------------------- 1. unread state across restarts


async def test_1_unread_counts_and_the_read_marker_survive_a_restart(seeds, users, tmp_path):
    a = await seeds("a")
    carol, carol_ev = await users("carol", [a.url])
    await next_event(carol_ev, registered)
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        for i in range(2):
            await carol.send("Sally", f"carol {i}")
        await until(pilot, lambda: entry(app, "carol") and entry(app, "carol").unread == 2)
    again = make_app(tmp_path, "Sally", [a.url])
    async with again.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: entry(again, "carol") and entry(again, "carol").unread == 2)
        await until(pilot, lambda: "carol (2)" in screen_text(again))
        await pilot.press("ctrl+n")
        await until(pilot, lambda: again.chat.peer == "carol")
        children = list(again.chat.children)
        marker = next(c for c in children if isinstance(c, ReadMarker))
        assert isinstance(children[children.index(marker) + 1], MessageLine)
        assert entry(again, "carol").unread == 0
    third = make_app(tmp_path, "Sally", [a.url])
    async with third.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: entry(third, "carol") is not None)
        assert entry(third, "carol").unread == 0
        await until(pilot, lambda: third.chat.peer == "carol")  # the last one open is back
        await pilot.press("ctrl+n")
        assert third.chat.peer == "carol"  # nothing unread: ctrl+n says so and opens nothing


# ---------------------------------------------------------------- 2. new messages below the view


async def test_2_the_palette_opens_at_the_newest_line_and_new_messages_below_are_marked(
    seeds, users, tmp_path
):
    a = await seeds("a")
    bob, bob_ev = await users("bob", [a.url])
    await prefill(tmp_path, "Sally", "bob", 150)
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(pilot, lambda: connected(app) and entry(app, "bob") is not None)
        await pilot.press("ctrl+p")
        await pilot.press(*"open bob")
        await until(pilot, lambda: "Open bob" in screen_text(app))
        await pilot.press("enter")
        chat = app.chat
        await until(pilot, lambda: chat.peer == "bob" and len(app.screen_stack) == 1)
        newest = max(line.msg.n for line in chat.message_lines())
        await until(pilot, lambda: newest in shown_numbers(chat))
        # scrolled up, a new message is counted below, not lost from sight
        await pilot.press("pageup", "pageup")
        await until(pilot, lambda: newest not in shown_numbers(chat))
        await next_event(bob_ev, registered)
        await bob.send("Sally", "are you there?")
        await until(pilot, lambda: "1 new message below" in screen_text(app))
        assert entry(app, "bob").unread == 1
        line = next(x for x in chat.message_lines() if x.msg.text == "are you there?")
        assert line not in chat.visible_lines()
        await pilot.press("ctrl+end")
        await until(pilot, lambda: line in chat.visible_lines() and not app.jump_bar.display)
        await until(pilot, lambda: entry(app, "bob").unread == 0)  # read, and kept as read


# ---------------------------------------------------------------- 3. scrollback


async def test_3_paging_up_shows_every_message_and_paging_down_works_from_the_input(
    seeds, tmp_path
):
    a = await seeds("a")
    await prefill(tmp_path, "Sally", "bob", 330)
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        chat = await open_prefilled(pilot, app, "bob")
        seen = set(shown_numbers(chat))
        assert app.focused is app.composer
        for _ in range(200):
            seen |= await paged(pilot, "pageup")
            if chat.scroll_y == 0 and not chat.has_older:
                break
        assert seen == set(range(1, 331))  # every message was on screen on the way up
        top = chat.scroll_y
        await paged(pilot, "pagedown")
        assert chat.scroll_y > top and app.focused is app.composer


async def test_3_the_mouse_wheel_at_the_top_of_a_page_reads_the_page_before(seeds, tmp_path):
    a = await seeds("a")
    await prefill(tmp_path, "Sally", "bob", 150)
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        chat = await open_prefilled(pilot, app, "bob")
        # two PageUps in one burst from the terminal (handled before a refresh) move two pages
        newest = max(shown_numbers(chat))
        height = chat.scrollable_content_region.height
        app.action_page_up()
        app.action_page_up()
        await pilot.pause()
        assert max(shown_numbers(chat)) == newest - 2 * height
        chat.paging = True  # get to the top of the loaded page without reading more
        chat.scroll_to(y=0, animate=False, immediate=True)
        await pilot.pause()
        chat.paging = False
        first = min(line.msg.n for line in chat.message_lines())
        assert first in shown_numbers(chat) and chat.has_older
        chat.post_message(events.MouseScrollUp(chat, 5, 5, 0, -1, 0, False, False, False))
        await until(pilot, lambda: min(x.msg.n for x in chat.message_lines()) == 1)
        await until(pilot, lambda: not chat.paging)
        await pilot.pause()
        assert first in shown_numbers(chat)  # the view stayed put; older lines are above it
        assert chat.scroll_y > 0  # so the next turns of the wheel scroll into them


# ---------------------------------------------------------------- 4. and 5. the composer


async def test_4_pastes_and_lines_typed_in_a_burst_arrive_whole_and_once(seeds, users, tmp_path):
    a = await seeds("a")
    bob, bob_ev = await users("bob", [a.url])
    await next_event(bob_ev, registered)
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        await type_in(pilot, "/open bob")
        await until(pilot, lambda: app.chat.peer == "bob")
        app.post_message(events.Paste("line one\rline two\r\nline three"))
        await until(pilot, lambda: app.composer.text == "line one\nline two\nline three")
        await pilot.press("enter")
        got = await next_event(bob_ev, lambda e: isinstance(e, MessageReceived))
        assert got.text == "line one\nline two\nline three"
        await pilot.press(*"one", "enter", *"two", "enter", *"three", "ctrl+j", *"four", "enter")
        texts = [
            (await next_event(bob_ev, lambda e: isinstance(e, MessageReceived))).text
            for _ in range(3)
        ]
        assert texts == ["one", "two", "three\nfour"]


async def test_5_a_message_over_the_limit_is_refused_and_kept(seeds, tmp_path):
    a = await seeds("a")
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        await type_in(pilot, "/open bob")
        await until(pilot, lambda: app.chat.peer == "bob")
        long = "word " * 1000  # 5,000 characters
        await type_in(pilot, long)
        assert app.composer.text == long and "4,000" in app.chat.notes[-1]
        assert app.composer.border_subtitle == "5,000 / 4,000"
        assert app.chat.lines == {}
        await type_in(pilot, "/frobnicate now")  # a mistyped command is kept too
        assert app.composer.text == "/frobnicate now" and "unknown command" in notes(app)


# ---------------------------------------------------------------- 6. last seen


async def test_6_last_seen_is_redrawn_as_time_passes(seeds, users, tmp_path, monkeypatch):
    monkeypatch.setattr(ContactsPane, "SEEN_EVERY", 0.05)
    a = await seeds("a")
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        bob, _ = await users("bob", [a.url])
        await type_in(pilot, "/add bob")
        await until(pilot, lambda: entry(app, "bob") and entry(app, "bob").online)
        await users.stop(bob)
        await until(pilot, lambda: "seen just now" in screen_text(app))
        app.contacts.clock = lambda: time.time() + 8 * 60  # eight minutes later
        await until(pilot, lambda: "seen 8m ago" in screen_text(app))


# ---------------------------------------------------------------- 7. a burst, one notification


async def test_7_a_burst_of_messages_is_one_notification(seeds, users, tmp_path, monkeypatch):
    # the burst ends when the test says so, not after a time: no timing in the assertion
    monkeypatch.setattr(notifier, "QUIET", 600.0)
    monkeypatch.setattr(notifier, "LONGEST", 600.0)
    a = await seeds("a")
    carol, carol_ev = await users("carol", [a.url])
    await next_event(carol_ev, registered)
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(pilot, lambda: connected(app))
        assert app.node is not None
        app.node.add_contact("carol")  # a stranger would be held to its allowance (100, 1/s)
        for i in range(120):
            await carol.send("Sally", f"spam {i}")
        await until(pilot, lambda: entry(app, "carol") and entry(app, "carol").unread == 120)
        assert list(app._notifications) == []
        app.notifier.flush()
        await pilot.pause()
        assert [n.message for n in app._notifications] == ["120 new messages from carol"]


# ---------------------------------------------------------------- 8. keyboard


async def test_8_esc_typing_anywhere_tab_order_and_a_visible_focus(seeds, tmp_path):
    a = await seeds("a")
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        assert app.focused is app.composer
        await pilot.press("tab")
        assert app.focused is app.contacts
        await pilot.press("tab")
        assert app.focused is app.chat
        assert app.chat.styles.border_top[0] == "double"  # the chat shows it has focus
        await pilot.press(*"hi")
        assert app.focused is app.composer and app.composer.text == "hi"
        await pilot.press("tab", "escape")
        assert app.focused is app.composer
        app.contacts.focus()
        await pilot.press("escape")
        assert app.focused is app.composer
        await pilot.press("shift+tab")
        assert app.focused is app.chat


# ---------------------------------------------------------------- 9. contacts say what happened


async def test_9_contacts_say_what_happened_and_strangers_can_be_blocked(seeds, users, tmp_path):
    a = await seeds("a")
    mallory, mallory_ev = await users("mallory", [a.url])
    await next_event(mallory_ev, registered)
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        await type_in(pilot, "/add ghost")
        await until(pilot, lambda: "nobody is registered as ghost yet; added anyway" in notes(app))
        assert entry(app, "ghost") is not None
        await type_in(pilot, "/remove ghost")
        assert "removed ghost" in app.chat.notes[-1]
        await type_in(pilot, "/msg spooky are you there")
        await until(pilot, lambda: "nobody is registered as spooky yet" in notes(app))
        assert "the message waits" in notes(app) and entry(app, "spooky") is not None
        # a stranger writes: a new contact, which can be blocked
        await mallory.send("Sally", "buy my stuff")
        await until(pilot, lambda: entry(app, "mallory") and entry(app, "mallory").new)
        await type_in(pilot, "/block mallory")
        await until(pilot, lambda: entry(app, "mallory").blocked)  # kept, marked
        assert "blocked mallory" in app.chat.notes[-1]
        again = await mallory.send("Sally", "buy it now")
        failed = await next_event(
            mallory_ev,
            lambda e: isinstance(e, MessageState) and e.id == again and e.state == "failed",
        )
        assert "does not accept messages from you" in failed.reason
        assert entry(app, "mallory").blocked
        assert [m.text for m in app.node.history("mallory")] == ["buy my stuff"]
        await type_in(pilot, "/block")
        assert "blocked: mallory" in app.chat.notes[-1]


# ---------------------------------------------------------------- 10. narrow terminals


async def test_10_narrow_terminals_keep_everything_reachable(seeds, tmp_path):
    a = await seeds("a")
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=(45, 15)) as pilot:
        await until(pilot, lambda: connected(app))
        name = "a" + "very-long-name-of-a-contact-x"
        await type_in(pilot, f"/add {name}")
        await until(pilot, lambda: entry(app, name) is not None)
        assert app.chat.region.width >= 44 and not app.side.display  # the chat gets the width
        await pilot.press("ctrl+l")
        assert app.focused is app.contacts and app.contacts.region.height >= 3
        assert app.side.region.right <= 45
        assert app.contacts.virtual_size.height == 1  # a long entry stays on one line
        await pilot.press("escape")
        assert app.focused is app.composer and not app.side.display
        # many seeds: the pane is bounded and Contacts stays in view
        await pilot.resize_terminal(80, 24)
        app.seeds.show(
            [SeedState(f"ws://10.0.0.{i}:5001", f"s{i}", True, 1.0, i == 0) for i in range(12)]
        )
        await pilot.pause()
        assert app.side.display and app.seeds.outer_size.height <= 8
        assert app.contacts.region.height >= 8


# ---------------------------------------------------------------- 11. the same name twice


async def test_11_a_session_replaced_elsewhere_says_so_and_reconnects_on_request(seeds, tmp_path):
    a = await seeds("a")
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(pilot, lambda: connected(app))
        calls = []
        app.node.reconnect = lambda: calls.append("reconnect")  # what the node will offer
        app.node.emit(SessionReplaced(name="Sally", message="Sally registered at seed b"))
        await until(pilot, lambda: app.sub_title == "in use elsewhere")
        assert "/reconnect" in app.chat.notes[-1] and "Sally registered at seed b" in notes(app)
        app.node.emit(SeedStatus(state="offline", home=None, detail="closed by the seed"))
        await until(pilot, lambda: app.state == "offline")
        assert app.sub_title == "in use elsewhere"  # not "offline": it says why
        await type_in(pilot, "/reconnect")
        await until(pilot, lambda: calls == ["reconnect"])
        assert app.sub_title != "in use elsewhere"


# ---------------------------------------------------------------- 12. mistakes say why


async def test_12_bad_seed_urls_are_refused_and_whois_offline_answers_at_once(tmp_path):
    data = tmp_path / "tui-Sally"
    data.mkdir(mode=0o700)
    (data / "tui.toml").write_text(
        'seeds = ["ws://", "ws://127.0.0.1:99999", "ws://127.0.0.1:9"]\n'
    )
    app = make_app(tmp_path, "Sally", ["ws://127.0.0.1:9"])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.node is not None and app.state == "offline")
        assert "skipped the saved seed 'ws://'" in notes(app)
        assert "'ws://127.0.0.1:99999': the port must be" in notes(app)
        await type_in(pilot, "/seed ws://")
        assert "needs a host" in app.chat.notes[-1]
        await type_in(pilot, "/seed http://127.0.0.1:5001")
        assert "ws:// or wss://" in app.chat.notes[-1]
        await type_in(pilot, "/add bob")
        await type_in(pilot, "/whois bob")
        assert "no seed reachable now" in app.chat.notes[-1]  # at once, from what is known here
        assert "never seen" in app.chat.notes[-1] or "last seen" in app.chat.notes[-1]
    assert "99999" not in (data / "tui.toml").read_text()


def test_12_seed_url_and_data_dir_mistakes_on_the_command_line(tmp_path, capsys):
    from tui.cli import main

    assert main(["--name", "Sally", "--seed", "garbage"]) == 2
    err = capsys.readouterr().err
    assert "ws:// or wss://" in err and "seeds" in err and len(err.splitlines()) == 1
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["--name", "Sally", "--data-dir", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert (
        "cannot use the data dir" in err and "Traceback" not in err and len(err.splitlines()) == 1
    )


# ---------------------------------------------------------------- 13. bell and desktop alerts


async def test_13_bell_and_desktop_notification_are_opt_in_and_once_per_burst(
    seeds, users, tmp_path
):
    a = await seeds("a")
    carol, carol_ev = await users("carol", [a.url])
    await next_event(carol_ev, registered)
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        rings, written = [], []
        app.bell = lambda: rings.append(1)
        app.notifier.write = written.append
        await carol.send("Sally", "quiet one")
        await until(pilot, lambda: app.notifier.toasts == 1)
        assert rings == [] and written == []  # off by default
        await type_in(pilot, "/notify bell on")
        await type_in(pilot, "/notify desktop osc777")
        assert "bell on, desktop osc777" in app.chat.notes[-1]
        for i in range(5):
            await carol.send("Sally", f"\x1b]0;pwned\x07 [b]{i}[/b];x")
        await until(pilot, lambda: app.notifier.toasts >= 2 and app.notifier.burst.total == 0)
        assert len(rings) == len(written) == app.notifier.toasts - 1
        seq = written[0]
        assert seq.startswith("\x1b]777;notify;p2p-chat") and seq.endswith("\x1b\\")
        assert seq.count("\x1b") == 2 and "\x07" not in seq  # only the frame is an escape
    kept = (tmp_path / "tui-Sally" / "tui.toml").read_text()
    assert "bell = true" in kept and 'desktop = "osc777"' in kept


# ---------------------------------------------------------------- what terminal chat users expect


async def test_days_full_times_me_and_name_colours(seeds, users, tmp_path):
    a = await seeds("a")
    bob, bob_ev = await users("bob", [a.url])
    await next_event(bob_ev, registered)
    await prefill(tmp_path, "Sally", "bob", 4, start=T0, step=DAY // 2)
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app) and entry(app, "bob") is not None)
        app.open_conversation("bob")
        chat = app.chat
        await until(pilot, lambda: len(chat.lines) == 4)
        assert len([c for c in chat.children if isinstance(c, DayLine)]) == 2
        line = chat.message_lines()[0]
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(T0 / 1000))
        assert stamp not in line.message_text().plain
        await pilot.press("ctrl+t")
        assert stamp in line.message_text().plain
        await type_in(pilot, "/me waves")
        got = await next_event(bob_ev, lambda e: isinstance(e, MessageReceived))
        assert got.text == "/me waves"
        await until(pilot, lambda: any(x.msg.outgoing for x in chat.message_lines()))
        mine = next(x for x in chat.message_lines() if x.msg.outgoing)
        assert "* Sally waves" in mine.message_text().plain
    assert name_style("bob") == name_style("BOB") != name_style("carol")


async def test_search_reads_the_whole_history_and_jumps_to_the_hit(seeds, tmp_path):
    a = await seeds("a")
    await prefill(
        tmp_path, "Sally", "bob", 300, text=lambda i: "the needle" if i == 9 else f"hay {i}"
    )
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await open_prefilled(pilot, app, "bob")
        await type_in(pilot, "/search NEEDLE")
        await until(pilot, lambda: isinstance(app.screen, SearchDialog))
        assert [m.n for m in app.screen.hits] == [10]
        await pilot.press("enter")
        await until(pilot, lambda: len(app.screen_stack) == 1)
        await until(pilot, lambda: 10 in shown_numbers(app.chat))
        hit = next(x for x in app.chat.message_lines() if x.msg.n == 10)
        assert hit.has_class("-hit") and app.chat.has_newer
        await pilot.press("ctrl+end")
        await until(pilot, lambda: 300 in shown_numbers(app.chat))


async def test_fingerprints_verify_and_a_changed_key_clears_the_mark(seeds, users, tmp_path):
    a = await seeds("a", lease_days=1 / 86_400_000)  # a 1 ms lease: a name can change hands
    bob, bob_ev = await users("bob", [a.url])
    await next_event(bob_ev, registered)
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        await pilot.press("f2")
        assert app.node.my_fingerprint() in app.chat.notes[-1]
        await type_in(pilot, "/add bob")
        await type_in(pilot, "/verify bob yes")  # nothing shown yet: a yes marks nothing
        await until(pilot, lambda: "/verify bob yes" in notes(app))
        assert "Nothing is marked yet" in app.chat.notes[-1]
        assert not entry(app, "bob").verified and not app.node.contact("bob").verified
        await type_in(pilot, "/verify bob")
        await until(pilot, lambda: "Compare these" in app.chat.notes[-1])
        assert bob.my_fingerprint() in app.chat.notes[-1]
        assert app.node.my_fingerprint() in app.chat.notes[-1]
        assert not entry(app, "bob").verified and not app.node.contact("bob").verified
        await type_in(pilot, "/verify bob yes")
        await until(pilot, lambda: entry(app, "bob").verified)
        assert app.node.contact("bob").verified and bob.my_fingerprint() in app.chat.notes[-1]
        await until(pilot, lambda: "bob ✔" in screen_text(app))
        await users.stop(bob)
        await until(pilot, lambda: not entry(app, "bob").online)
        bob2, bob2_ev = await users("bob", [a.url], data_dir=tmp_path / "bob-new-key")
        await next_event(bob2_ev, registered)
        await bob2.send("Sally", "it is me, honest")
        await until(pilot, lambda: entry(app, "bob").held)
        assert not entry(app, "bob").verified and "that mark is cleared" in notes(app)
        assert not app.node.contact("bob").verified


async def test_a_changed_key_keeps_its_messages_marked_and_holds_ours_until_accept(
    seeds, users, tmp_path
):
    """Bob re-keys and writes: Sally's app keeps and acknowledges his message (it was refused and
    lost before) but shows it under a warning that it is not from the key she trusted; what she
    writes to him waits, saying why, until /accept, then goes out."""
    a = await seeds("a", lease_days=1 / 86_400_000)  # a 1 ms lease: a name can change hands
    bob, bob_ev = await users("bob", [a.url])
    await next_event(bob_ev, registered)
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        await bob.send("Sally", "the first bob")
        await until(pilot, lambda: entry(app, "bob") and entry(app, "bob").unread == 1)
        await users.stop(bob)
        await until(pilot, lambda: not entry(app, "bob").online)
        bob2, bob2_ev = await users("bob", [a.url], data_dir=tmp_path / "bob-new-key")
        await next_event(bob2_ev, registered)
        app.open_conversation("bob")
        sent = await bob2.send("Sally", "trust me, new phone")
        await next_event(bob2_ev, lambda e: isinstance(e, MessageState) and e.state == "delivered")
        await until(pilot, lambda: len(app.chat.lines) == 2)
        first, second = sorted(app.chat.lines.values(), key=lambda x: x.msg.ts)
        assert second.msg.id == sent and second.msg.key_changed
        assert "NOT FROM THE KEY YOU TRUSTED" in second.message_text().plain
        assert "NOT FROM THE KEY YOU TRUSTED" not in first.message_text().plain
        await until(pilot, lambda: "NOT FROM THE KEY YOU TRUSTED" in screen_text(app))
        assert entry(app, "bob").held and "key changed" in screen_text(app)
        await type_in(pilot, "are you really bob?")
        mine = next(x for x in app.chat.lines.values() if x.msg.outgoing)
        await until(pilot, lambda: mine.reason == "key changed; /accept bob to send")
        assert mine.state == "queued"
        await type_in(pilot, "/accept bob")
        await until(pilot, lambda: mine.state == "delivered")
        got = await next_event(bob2_ev, lambda e: isinstance(e, MessageReceived))
        assert got.text == "are you really bob?"
    # after a restart the message read from history is still marked
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app) and entry(app, "bob") is not None)
        app.open_conversation("bob")
        await until(pilot, lambda: len(app.chat.lines) == 3)
        marked = [x.msg.text for x in app.chat.lines.values() if x.msg.key_changed]
        assert marked == ["trust me, new phone"]


# ---------------------------------------------------------------- hostile text


HOSTILE = "[bold red]x[/] [/] [@click=app.quit]click to win[/] \x1b]0;pwned\x07\x1b[2J\x9b31m"


async def test_network_text_is_shown_literally_everywhere(seeds, users, tmp_path):
    evil_seed = "evil[/]\x1b]0;seed\x07"
    a = await seeds(evil_seed)
    mallory, mallory_ev = await users("mallory", [a.url])
    await next_event(mallory_ev, registered)
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(pilot, lambda: connected(app))
        await mallory.send("Sally", HOSTILE)
        await until(pilot, lambda: app.notifier.toasts == 1)
        await until(pilot, lambda: any("click to win" in n.message for n in app._notifications))
        app.open_conversation("mallory")
        await until(pilot, lambda: app.chat.lines)
        await type_in(pilot, "/whois mallory")
        await until(pilot, lambda: "online at" in screen_text(app))
        text = screen_text(app)
        assert "[@click=app.quit]click to win[/]" in text and "␛]0;pwned␇␛[2J" in text
        assert "evil[/]␛]0;seed␇" in text  # seeds pane and header
        assert "\x1b" not in text and "\x9b" not in text
        assert app.sub_title == "connected · home evil[/]␛]0;seed␇"
        await pilot.click(ChatPane, offset=(20, 2))  # where a link would be: nothing happens
        await pilot.pause()
        assert app.is_running


async def test_last_seen_is_kept_when_the_seed_does_not_know_it(seeds, tmp_path):
    """Sally last saw bob five minutes ago at her old seed; her seed now (a new one) has never
    heard of him. Contacts keep "seen 5m ago" from her own store (it said "never seen")."""
    data = tmp_path / "tui-Sally"
    data.mkdir(mode=0o700)
    store = UserStore(data / "user.sqlite3")
    store.start()
    store.add_contact("bob", T0)
    seen = int(time.time() * 1000) - 5 * 60_000
    store.seen("bob", seen)
    await store.close()
    a = await seeds("a")  # a new seed: bob is unknown here
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        await eventually(lambda: "bob" in a.watchers.by_name, what="bob watched")
        await type_in(pilot, "/whois bob")  # answered after the presence pushed on the watch
        await until(pilot, lambda: "nobody is registered as bob" in notes(app))
        await pilot.pause()
        assert entry(app, "bob").last_seen == seen and app.node.contact("bob").last_seen == seen
        assert "seen 5m ago" in screen_text(app) and "never seen" not in screen_text(app)
