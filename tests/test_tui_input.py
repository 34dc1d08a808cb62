"""The input line on day two: drafts per conversation, weechat/irssi keys, completion of command
arguments and the small losses of typed text. One test per problem found (numbered as in the
issue), against real seeds and user nodes on 127.0.0.1, driven by Pilot."""

from __future__ import annotations

import tomllib

from textual import events
from textual._xterm_parser import XTermParser

from node.user.events import MessageReceived

from .helpers import next_event, registered
from .test_tui_client import SIZE, connected, entry, make_app, notes, screen_text, type_in, until


def raw(app, data: str) -> None:
    """Bytes as a terminal sends them, read by Textual's own parser (as the real driver does)."""
    parser = XTermParser()
    for token in [*parser.feed(data), *parser.feed("")]:
        app._driver.send_message(token)


def burst(app, *keys: tuple[str, str | None]) -> None:
    """Keys arriving in one read, before the app handled the first (a fast typist, a paste
    without bracketed paste mode)."""
    for key, character in keys:
        event = events.Key(key, character)
        event.set_sender(app)
        app._driver.send_message(event)


async def received(stream, text: str) -> MessageReceived:
    return await next_event(stream, lambda e: isinstance(e, MessageReceived) and e.text == text)


async def with_contacts(pilot, app, *names: str) -> None:
    await until(pilot, lambda: connected(app))
    for name in names:
        await type_in(pilot, f"/add {name}")
    await until(pilot, lambda: all(entry(app, n) is not None for n in names))


# ---------------------------------------------------------------- 1. the wrong person


async def test_1_a_draft_stays_with_its_conversation_and_the_input_names_the_recipient(
    seeds, users, tmp_path
):
    a = await seeds("a")
    bob, bob_ev = await users("bob", [a.url])
    carol, carol_ev = await users("carol", [a.url])
    await next_event(bob_ev, registered)
    await next_event(carol_ev, registered)
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await with_contacts(pilot, app, "bob", "carol")
        app.open_conversation("bob")
        await pilot.pause()
        assert "to bob" in str(app.composer.border_title)
        app.composer.load_text("half a thought for bob")
        app.open_conversation("carol")
        await pilot.pause()
        assert app.composer.text == "" and "to carol" in str(app.composer.border_title)
        await pilot.press("enter")  # an empty input sends nothing to carol
        await type_in(pilot, "hello carol")
        await received(carol_ev, "hello carol")
        app.open_conversation("bob")
        await pilot.pause()
        assert app.composer.text == "half a thought for bob"
    # the draft, the conversation open and the lines sent are still there after a restart
    again = make_app(tmp_path, "Sally", [a.url])
    async with again.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: again.chat.peer == "bob")
        assert again.composer.text == "half a thought for bob"
        again.open_conversation("carol")
        await pilot.pause()
        await pilot.press("up")
        assert again.composer.text == "hello carol"
        assert "half a thought" not in again.composer.text
    del bob


# ---------------------------------------------------------------- 2. keys that jump


async def test_2_alt_digits_jump_by_number_and_never_type_and_alt_a_finds_activity(
    seeds, users, tmp_path
):
    a = await seeds("a")
    dave, dave_ev = await users("dave", [a.url])
    await next_event(dave_ev, registered)
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await with_contacts(pilot, app, "bob", "carol", "dave")
        await until(pilot, lambda: "2 ○ carol" in screen_text(app))  # the number beside it
        app.composer.focus()
        raw(app, "\x1b2")  # what a terminal sends for alt+2 (Textual reads it as '™')
        await until(pilot, lambda: app.chat.peer == "carol")
        assert app.composer.text == ""
        raw(app, "\x1b1")
        await until(pilot, lambda: app.chat.peer == "bob")
        raw(app, "\x1bx")  # an alt+letter nothing is bound to: no text either
        await pilot.pause()
        assert app.composer.text == ""
        await dave.send("Sally", "ping")
        await until(pilot, lambda: entry(app, "dave").unread == 1)
        await pilot.press("alt+a")  # the next with activity
        await until(pilot, lambda: app.chat.peer == "dave")
        await type_in(pilot, "/window 2")
        assert app.chat.peer == "carol"
        await type_in(pilot, "/buffer da")
        assert app.chat.peer == "dave" and app.chat.message_lines()
        await type_in(pilot, "/clear")
        assert not app.chat.message_lines() and "view cleared" in notes(app)
        await type_in(pilot, "/open bob")
        await dave.send("Sally", "one")
        await dave.send("Sally", "two")
        await until(pilot, lambda: entry(app, "dave").unread == 2)
        await pilot.press("alt+shift+a")  # mark all read
        await until(pilot, lambda: entry(app, "dave").unread == 0)
        assert app.node.unread() == {}
        await type_in(pilot, "/window 9")
        assert app.chat.peer == "bob"  # no conversation 9: nothing moves


# ---------------------------------------------------------------- 4. retrying a failed message


async def test_4_up_history_survives_a_restart_and_retry_takes_the_failed_one_here(seeds, tmp_path):
    a = await seeds("a")
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        await type_in(pilot, "/msg ghost are you there")
        await until(pilot, lambda: app.chat.peer == "ghost" and app.chat.lines)
        line = next(iter(app.chat.lines.values()))
        await until(pilot, lambda: "nobody is registered as ghost" in (line.reason or ""))
        await type_in(pilot, "/cancel")
        await until(pilot, lambda: line.state == "failed")
    again = make_app(tmp_path, "Sally", [a.url])
    async with again.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(again) and again.chat.peer == "ghost")
        await pilot.press("up")
        assert again.composer.text == "/cancel"  # what was typed in this conversation
        again.composer.load_text("")
        await type_in(pilot, "still there?")  # newer, and waiting: /retry takes the failed one
        await until(pilot, lambda: len(again.chat.lines) == 2)
        failed, waiting = again.chat.message_lines()
        assert failed.state == "failed" and waiting.state != "failed"
        await type_in(pilot, "/retry")
        await until(pilot, lambda: "trying your message to ghost again" in notes(again))
        await until(pilot, lambda: failed.state == "queued")


# ---------------------------------------------------------------- 6. Tab


async def test_6_tab_after_a_space_completes_command_arguments(seeds, tmp_path):
    a = await seeds("a")
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await with_contacts(pilot, app, "bob")
        composer = app.composer
        composer.focus()
        composer.load_text("/whois ")
        composer.move_cursor(composer.document.end)
        await pilot.press("tab")
        assert composer.text == "/whois bob " and app.focused is composer
        await with_contacts(pilot, app, "carol")
        composer.load_text("/msg ")
        composer.move_cursor(composer.document.end)
        await pilot.press("tab")  # two fit: both are listed, nothing typed
        assert composer.text == "/msg " and "bob  carol" in notes(app)
        composer.load_text("/notify b")
        composer.move_cursor(composer.document.end)
        await pilot.press("tab")
        assert composer.text == "/notify bell "
        composer.load_text("/he")
        composer.move_cursor(composer.document.end)
        await pilot.press("tab")
        assert composer.text == "/help "
        composer.load_text("hello ")  # plain text after a space: Tab moves on
        composer.move_cursor(composer.document.end)
        await pilot.press("tab")
        assert composer.text == "hello " and app.focused is not composer


# ---------------------------------------------------------------- 7. small losses


async def test_7_rejected_text_is_easy_to_clear_and_stays_when_the_seed_url_is_wrong(
    seeds, tmp_path
):
    a = await seeds("a")
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        await type_in(pilot, "/open bob")
        composer = app.composer
        await type_in(pilot, "word " * 820)  # 4,100 characters: refused, kept
        assert "at most" in notes(app) and len(composer.text) == 4100
        composer.move_cursor(composer.document.end)
        await pilot.press("ctrl+u")
        assert composer.text == ""
        await type_in(pilot, "/seed http://foo")
        assert composer.text == "/seed http://foo" and "ws://" in notes(app).splitlines()[-1]
        await type_in(pilot, "/seed remove")
        assert composer.text == "/seed remove" and "usage: /seed" in notes(app).splitlines()[-1]
        composer.load_text("")
        await type_in(pilot, "/seed ws://127.0.0.1:9")
        saved = tmp_path / "tui-Sally" / "tui.toml"
        await until(pilot, lambda: "127.0.0.1:9" in saved.read_text())
        await type_in(pilot, "/seed remove ws://127.0.0.1:9")
        assert "removed seed ws://127.0.0.1:9" in notes(app)
        assert "127.0.0.1:9" not in saved.read_text()
        assert tomllib.loads(saved.read_text())["seeds"] == [a.url]  # --seed is remembered
        await until(pilot, lambda: all(s.url != "ws://127.0.0.1:9" for s in app.seeds.seeds))


async def test_7_enter_in_a_burst_typed_into_the_chat_pane_sends(seeds, users, tmp_path):
    a = await seeds("a")
    bob, bob_ev = await users("bob", [a.url])
    await next_event(bob_ev, registered)
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await with_contacts(pilot, app, "bob")
        app.open_conversation("bob")
        app.chat.focus()
        await pilot.pause()
        assert app.focused is app.chat
        burst(app, ("h", "h"), ("i", "i"), ("enter", "\r"))
        await received(bob_ev, "hi")
        assert app.composer.text == ""
        app.composer.load_text("a draft")  # Enter pressed on its own in the chat sends nothing
        app.chat.focus()
        await pilot.pause()
        await pilot.press("enter")
        assert app.composer.text == "a draft"


async def test_7_after_close_the_view_starts_at_the_top_and_the_input_sends_to_nobody(
    seeds, users, tmp_path
):
    a = await seeds("a")
    bob, bob_ev = await users("bob", [a.url])
    await next_event(bob_ev, registered)
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await with_contacts(pilot, app, "bob")
        app.open_conversation("bob")
        for i in range(40):
            await bob.send("Sally", f"line {i}")
        await until(pilot, lambda: len(app.chat.message_lines()) == 40)
        await until(pilot, lambda: app.chat.scroll_y > 0)
        await type_in(pilot, "/close")
        await pilot.pause()
        assert app.chat.scroll_y == 0 and "Welcome to p2p-chat" in screen_text(app)
        assert app.chat.peer is None and "no conversation open" in str(app.composer.border_title)
