"""The terminal client, day two: alerts for what the user does not see, plain-text logs, and the
rendering and help problems found using it. One test per problem, named after it; real seeds
and user nodes on 127.0.0.1, driven by Pilot; waits are for screen states, never for time."""

from __future__ import annotations

import stat

from textual import events
from textual.widgets._toast import Toast

from node.user.events import GroupChanged, MessageState
from tui import notifier
from tui.widgets.message_line import MENTION_STYLE, URL_STYLE, MessageLine
from tui.widgets.search_dialog import SearchDialog

from .helpers import next_event, registered
from .test_tui_client import (
    SIZE,
    connected,
    entry,
    make_app,
    notes,
    prefill,
    screen_text,
    type_in,
    until,
)


def quiet_bursts(monkeypatch) -> None:
    """A burst ends when the test flushes it, not after a time: nothing here asserts timing."""
    monkeypatch.setattr(notifier, "QUIET", 600.0)
    monkeypatch.setattr(notifier, "LONGEST", 600.0)


def line_with(app, text: str) -> MessageLine | None:
    return next((x for x in app.chat.message_lines() if x.msg.text == text), None)


# ---------------------------------------------------------------- 3. alerts


async def test_3_the_open_conversation_alerts_while_the_app_is_not_focused(
    seeds, users, tmp_path, monkeypatch
):
    quiet_bursts(monkeypatch)
    a = await seeds("a")
    bob, bob_ev = await users("bob", [a.url])
    await next_event(bob_ev, registered)
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(pilot, lambda: connected(app))
        rings, written = [], []
        app.bell = lambda: rings.append(1)
        app.notifier.write = written.append
        await type_in(pilot, "/notify bell on")
        await type_in(pilot, "/notify desktop osc9")
        await type_in(pilot, "/msg bob hi")
        await until(pilot, lambda: app.current == "bob")
        # focused, on Bob: his message is seen, nothing rings
        await bob.send("Sally", "seen at once")
        await until(pilot, lambda: line_with(app, "seen at once") is not None)
        app.notifier.flush()
        assert rings == [] and written == []
        # the terminal reports the app lost focus (another tmux window): Bob's next one alerts
        app.post_message(events.AppBlur())
        await until(pilot, lambda: not app.app_focus)
        await bob.send("Sally", "are you there? the code is 4711")
        await until(pilot, lambda: line_with(app, "are you there? the code is 4711") is not None)
        app.notifier.flush()
        await pilot.pause()
        assert rings == [1] and len(written) == 1
        assert "4711" in written[0] and "Message from bob" in written[0]
        assert list(app._notifications) == []  # on screen already: a toast would only cover it
        # private: the notification names the sender, never the text; kept in the settings
        await type_in(pilot, "/notify private")
        assert "text hidden (private)" in app.chat.notes[-1]
        app.post_message(events.AppBlur())  # typing counted as the user being back
        await until(pilot, lambda: not app.app_focus)
        await bob.send("Sally", "the code is 4712")
        await until(pilot, lambda: line_with(app, "the code is 4712") is not None)
        app.notifier.flush()
        assert len(written) == 2 and "new message from bob" in written[1]
        assert "4712" not in written[1]
        # back in the window: nothing rings for what is on screen
        app.post_message(events.AppFocus())
        await until(pilot, lambda: app.app_focus)
        await bob.send("Sally", "welcome back")
        await until(pilot, lambda: line_with(app, "welcome back") is not None)
        app.notifier.flush()
        assert rings == [1, 1]
    assert "private = true" in (tmp_path / "tui-Sally" / "tui.toml").read_text()


async def test_3_a_mention_of_my_name_in_a_group_is_highlighted_and_alerts(
    seeds, users, tmp_path, monkeypatch
):
    quiet_bursts(monkeypatch)
    a = await seeds("a")
    bob, bob_ev = await users("Bob", [a.url])
    await next_event(bob_ev, registered)
    app = make_app(tmp_path, "Ann", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        rings: list[int] = []
        app.bell = lambda: rings.append(1)
        await type_in(pilot, "/notify bell on")
        await type_in(pilot, "/group new ops Bob")
        await until(pilot, lambda: app.current is not None and app.current.startswith("#"))
        gid = app.current[1:]
        await next_event(bob_ev, lambda e: isinstance(e, GroupChanged))
        app.post_message(events.AppBlur())
        await until(pilot, lambda: not app.app_focus)
        # the open group, the app away: chatter does not ring, a mention does
        await bob.groups.send(gid, "lunch anyone?")
        await until(pilot, lambda: line_with(app, "lunch anyone?") is not None)
        app.notifier.flush()
        assert rings == []
        await bob.groups.send(gid, "@ann can you review?")
        await until(pilot, lambda: line_with(app, "@ann can you review?") is not None)
        app.notifier.flush()
        assert rings == [1]
        line = line_with(app, "@ann can you review?")
        assert line.has_class("-mention") and not line_with(app, "lunch anyone?").has_class(
            "-mention"
        )
        text = line.message_text()
        at = text.plain.index("@ann")
        assert any(s.style == MENTION_STYLE and s.start == at for s in text.spans)
        # a longer name is not a mention
        await bob.groups.send(gid, "annabel says hi")
        await until(pilot, lambda: line_with(app, "annabel says hi") is not None)
        assert not line_with(app, "annabel says hi").has_class("-mention")
        # a group exports by its topic, like a person by name
        await type_in(pilot, "/export #ops")
        await until(pilot, lambda: "with #ops to " in notes(app))
        [path] = list((tmp_path / "tui-Ann" / "logs").glob("group-*.txt"))
        assert any(x.endswith(" Bob: @ann can you review?") for x in path.read_text().splitlines())


# ---------------------------------------------------------------- 5. readable logs


async def test_5_export_and_log_write_plain_text_files_only_the_user_reads(seeds, users, tmp_path):
    a = await seeds("a")
    bob, bob_ev = await users("bob", [a.url])
    await next_event(bob_ev, registered)
    texts = ["first", "two\nlines", "\x1b]0;pwned\x07 back\\slash", "/me waves"]
    await prefill(tmp_path, "Sally", "bob", len(texts), text=lambda i: texts[i])
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app) and entry(app, "bob") is not None)
        await type_in(pilot, "/export bob")
        await until(pilot, lambda: "exported 4 messages with bob to " in notes(app))
        logs = tmp_path / "tui-Sally" / "logs"
        [path] = list(logs.glob("bob-*.txt"))
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(logs.stat().st_mode) == 0o700
        lines = path.read_text().splitlines()
        assert len(lines) == 4
        assert lines[0].startswith("2026-01-02T") and lines[0].endswith(" bob: first")
        assert lines[1].endswith(" bob: two\\nlines")
        assert lines[2].endswith(" bob: \\x1b]0;pwned\\x07 back\\\\slash")
        assert lines[3].endswith(" * bob waves")
        assert "\x1b" not in path.read_text()
        mine = tmp_path / "bob.txt"
        await type_in(pilot, f"/export bob {mine}")
        await until(pilot, lambda: f"to {mine}" in notes(app))
        assert mine.read_text().splitlines() == lines
        # a log kept as messages come, both ways, until /log off
        app.open_conversation("bob")
        await type_in(pilot, "/log on")
        assert "logging bob" in app.chat.notes[-1]
        await bob.send("Sally", "logged\x1b[2J")
        await type_in(pilot, "and mine")
        log = logs / "bob.log"
        await until(pilot, lambda: log.exists() and len(log.read_text().splitlines()) == 2)
        got = log.read_text().splitlines()
        assert sorted(x.split(" ", 1)[1] for x in got) == ["Sally: and mine", "bob: logged\\x1b[2J"]
        assert stat.S_IMODE(log.stat().st_mode) == 0o600
        await type_in(pilot, "/log off")
        await bob.send("Sally", "not logged")
        await until(pilot, lambda: line_with(app, "not logged") is not None)
        assert len(log.read_text().splitlines()) == 2
        await type_in(pilot, "/export nobody-here")
        await until(pilot, lambda: "exported 0 messages with nobody-here" in notes(app))


# ---------------------------------------------------------------- 7. rendering and help


async def test_7_wrapped_lines_start_under_the_text_not_at_column_0(seeds, users, tmp_path):
    a = await seeds("a")
    words = " ".join(f"word{i}" for i in range(40))
    await prefill(tmp_path, "Sally", "bob", 1, text=lambda i: words)
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=(60, 20)) as pilot:
        await until(pilot, lambda: app.node is not None and entry(app, "bob") is not None)
        app.open_conversation("bob")
        await until(pilot, lambda: "word39" in screen_text(app))
        rows = [r for r in screen_text(app).splitlines() if "word" in r]
        assert len(rows) >= 3
        first = rows[0].index("word0")
        for row in rows[1:]:
            inner = row.strip("│ ")
            assert row.index(inner) == first - len("bob: ")  # under the text, after the time
        text_rows = [row[first - len("bob: ") :] for row in rows]
        assert " ".join(" ".join(r.strip("│ ").split()) for r in text_rows).endswith("word39")


async def test_7_delivered_is_just_the_mark_and_failed_says_why(seeds, users, tmp_path):
    a = await seeds("a")
    bob, bob_ev = await users("bob", [a.url])
    await next_event(bob_ev, registered)
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        await type_in(pilot, "/msg bob hello bob")
        await until(pilot, lambda: line_with(app, "hello bob") is not None)
        line = line_with(app, "hello bob")
        await until(pilot, lambda: line.state == "delivered")
        shown = str(line.message_text())
        assert shown.endswith("hello bob  ✓✓") and "delivered" not in shown
        assert line.tooltip == "delivered"
        line.set_state("failed", "expired undelivered (recipient offline)")
        assert str(line.message_text()).endswith(
            "✗ failed (expired undelivered (recipient offline))"
        )


async def test_7_toasts_do_not_cover_the_newest_line_on_a_small_terminal(seeds, users, tmp_path):
    a = await seeds("a")
    carol, carol_ev = await users("carol", [a.url])
    await next_event(carol_ev, registered)
    await prefill(tmp_path, "Sally", "bob", 30)
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=(60, 20), notifications=True) as pilot:
        await until(pilot, lambda: connected(app) and entry(app, "bob") is not None)
        app.open_conversation("bob")
        await until(pilot, lambda: "line 29" in screen_text(app))
        await carol.send("Sally", "a long message from carol " * 4)
        await until(pilot, lambda: bool(app.screen.query(Toast)))
        await pilot.pause()
        newest = line_with(app, "line 29")
        toast = app.screen.query_one(Toast)
        assert not toast.region.overlaps(newest.region)
        assert not toast.region.overlaps(app.composer.region)
        assert "line 29" in screen_text(app)


async def test_7_help_with_no_conversation_shows_its_end_and_ctrl_end_goes_there(seeds, tmp_path):
    a = await seeds("a")
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=(100, 24)) as pilot:
        await until(pilot, lambda: connected(app))
        await type_in(pilot, "/help")
        last = "ctrl+q" + " " * 17 + "quit"
        await until(pilot, lambda: last in screen_text(app))
        app.chat.scroll_home(animate=False)
        await until(pilot, lambda: last not in screen_text(app))
        await pilot.press("ctrl+end")
        await until(pilot, lambda: last in screen_text(app))
        app.chat.scroll_home(animate=False)
        await until(pilot, lambda: last not in screen_text(app))
        await pilot.press("ctrl+g")
        await until(pilot, lambda: last in screen_text(app))


async def test_7_urls_are_highlighted_as_literal_text(seeds, users, tmp_path):
    a = await seeds("a")
    text = "see https://example.com/a?b=1. and [link=http://evil]x[/link] \x1b]8;;http://e\x1b\\"
    await prefill(tmp_path, "Sally", "bob", 1, text=lambda i: text)
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=(140, 30)) as pilot:
        await until(pilot, lambda: app.node is not None and entry(app, "bob") is not None)
        app.open_conversation("bob")
        await until(pilot, lambda: app.chat.message_lines())
        line = app.chat.message_lines()[0]
        rendered = line.message_text()
        plain = rendered.plain
        url = "https://example.com/a?b=1"
        styled = {plain[s.start : s.end] for s in rendered.spans if s.style == URL_STYLE}
        assert styled == {url, "http://evil]x[/link"}
        assert all("link" not in str(s.style) or s.style == URL_STYLE for s in rendered.spans)
        await until(pilot, lambda: "[link=http://evil]x[/link]" in screen_text(app))  # not parsed
        assert "␛]8;;http://e␛\\" in plain  # an OSC 8 hyperlink from the network stays visible


async def test_7_block_keeps_the_contact_marked_and_unblock_brings_it_back(seeds, users, tmp_path):
    a = await seeds("a")
    mallory, mallory_ev = await users("mallory", [a.url])
    await next_event(mallory_ev, registered)
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: connected(app))
        await type_in(pilot, "/add mallory")
        await until(pilot, lambda: entry(app, "mallory") is not None)
        await type_in(pilot, "/block mallory")
        await until(pilot, lambda: entry(app, "mallory").blocked)
        assert "blocked mallory" in app.chat.notes[-1]
        assert "mallory (blocked)" in screen_text(app)
        sent = await mallory.send("Sally", "let me in")
        await next_event(
            mallory_ev,
            lambda e: isinstance(e, MessageState) and e.id == sent and e.state == "failed",
        )
        assert app.node.history("mallory") == [] and entry(app, "mallory").unread == 0
        assert entry(app, "mallory").blocked  # silent: no unread, no alert, still listed
        await type_in(pilot, "/unblock mallory")
        await until(pilot, lambda: not entry(app, "mallory").blocked)
        assert "mallory (blocked)" not in screen_text(app)
        await mallory.send("Sally", "sorry")
        await until(pilot, lambda: entry(app, "mallory").unread == 1)


async def test_7_the_search_counter_says_1_message(seeds, tmp_path):
    a = await seeds("a")
    await prefill(tmp_path, "Sally", "bob", 3, text=lambda i: ["apple", "pear", "plum"][i])
    app = make_app(tmp_path, "Sally", [a.url])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.node is not None and entry(app, "bob") is not None)
        app.open_conversation("bob")
        await type_in(pilot, "/search pear")
        await until(pilot, lambda: isinstance(app.screen, SearchDialog))
        await until(pilot, lambda: "1 message, newest first" in screen_text(app))
        assert "1 messages" not in screen_text(app)


def test_7_mouse_copy_is_documented() -> None:
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert "OSC 52" in readme and "mouse drag, ctrl+c" in readme
