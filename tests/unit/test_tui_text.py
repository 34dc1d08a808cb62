"""The terminal client's pure pieces: inert text, seed URLs, message marks, alert escapes."""

from __future__ import annotations

import pytest
from rich.cells import cell_len

from node.errors import InvalidInput
from node.user.store import StoredMessage
from tui.notifier import desktop_escape
from tui.safe import safe_text
from tui.seed_url import check_seed_url
from tui.widgets.message_line import NAME_COLOURS, MessageLine, name_style


def test_control_characters_are_shown_one_cell_each_and_newlines_only_in_bodies():
    evil = "A\x1b]0;t\x07B\x1b[2JC\x9bD\x00E\x7fF\r\nG\tH\u202eI\ud800J"
    shown = safe_text(evil)
    assert shown == "A␛]0;t␇B␛[2JC\\x9bD␀E␡F␍␊G    H<U+202E>I\ufffdJ"
    assert cell_len(shown) == len(shown)
    assert safe_text("a\r\nb\nc", multiline=True) == "a\nb\nc"
    assert "\n" not in safe_text("a\nb")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ws://", "needs a host"),
        ("ws://127.0.0.1:99999", "port must be"),
        ("ws://127.0.0.1:0", "port must be"),
        ("ws://127.0.0.1:x", "port must be"),
        ("http://127.0.0.1:5001", "ws:// or wss://"),
        ("garbage", "ws:// or wss://"),
        ("ws://127.0.0.1:5001/?q=1", "no query"),
    ],
)
def test_a_bad_seed_url_says_why(url, why):
    with pytest.raises(InvalidInput, match=why):
        check_seed_url(url)


def test_good_seed_urls_pass():
    assert check_seed_url("ws://127.0.0.1:5001/") == "ws://127.0.0.1:5001"
    assert check_seed_url("wss://seed.example.org") == "wss://seed.example.org"
    assert check_seed_url("ws://[::1]:5001") == "ws://[::1]:5001"


def test_each_state_has_its_mark_and_sent_names_the_path():
    line = MessageLine(StoredMessage.new_outgoing("m", "Sally", "bob", 0, "hi"), "Sally")
    marks = {}
    for state, path in [("queued", None), ("sent", "direct"), ("sent", "relay"), ("stored", "mail"),
                        ("delivered", None), ("failed", None)]:  # fmt: skip
        line.state, line.reason, line.path = state, "why" if state == "failed" else None, path
        line.set_tooltip()
        marks[(state, path)] = (line.message_text().plain.split("hi", 1)[1].strip(), line.tooltip)
    # the mark alone where it says enough, words where the user may act; words on hover
    assert marks == {
        ("queued", None): ("… queued", "queued: waiting to go out"),
        ("sent", "direct"): ("✓", "sent direct"),
        ("sent", "relay"): ("✓", "relayed"),
        ("stored", "mail"): (
            "✉",
            "stored for the recipient (offline): delivered when they come online",
        ),
        ("delivered", None): ("✓✓", "delivered"),
        ("failed", None): ("✗ failed (why)", "failed (why)"),
    }


def test_names_keep_their_colour_and_colours_parse():
    from rich.style import Style

    for colour in NAME_COLOURS:
        Style.parse(colour)
    assert name_style("Bob") == name_style("bob")


def test_the_desktop_escape_carries_no_escape_of_its_own():
    seq = desktop_escape("osc777", "from \x1b]0;x\x07 bob", "a;b\x9bc\nd", in_tmux=False)
    assert seq.startswith("\x1b]777;notify;") and seq.endswith("\x1b\\")
    assert seq.count("\x1b") == 2 and "\x07" not in seq and "\x9b" not in seq
    assert seq.count(";") == 3  # the body's ';' cannot open a field
    wrapped = desktop_escape("osc9", "t", "b", in_tmux=True)
    assert wrapped.startswith("\x1bPtmux;\x1b\x1b]9;t: b")


def test_a_message_from_a_changed_key_is_never_drawn_as_from_the_trusted_key():
    """In the chat and in search hits, a message flagged key_changed carries its warning; the
    same message from the pinned key does not."""
    from tui.widgets.search_dialog import hit_prompt

    plain = StoredMessage.new_incoming("m1", "Bob", "Sally", 1_000, "hi it is me")
    flagged = StoredMessage.new_incoming("m2", "Bob", "Sally", 2_000, "hi it is me", True)
    assert "NOT FROM THE KEY YOU TRUSTED" in MessageLine(flagged, "Sally").message_text().plain
    assert "TRUSTED" not in MessageLine(plain, "Sally").message_text().plain
    assert MessageLine(flagged, "Sally").has_class("-key-changed")
    assert "new key, not accepted" in hit_prompt(flagged, "me").plain
    assert "new key" not in hit_prompt(plain, "me").plain
