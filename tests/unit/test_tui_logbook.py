"""Plain-text logs, addresses and mentions: what a line says, without an app or a network."""

from __future__ import annotations

import stat

from tui.highlight import mentions, urls
from tui.logbook import LOG_LINE, Logbook, escape, file_stem, log_line
from tui.notifier import Burst, private_body


def test_a_log_line_is_one_line_with_every_control_character_escaped(utc):
    line = log_line(1_767_348_000_000, "bob", "a\nb\\c\x1b[2J\x07\x9b\u202e\t")
    assert line == "2026-01-02T10:00:00+00:00 bob: a\\nb\\\\c\\x1b[2J\\x07\\x9b\\u202e\\t"
    assert escape("\ud800") == "\\ud800"  # a lone surrogate cannot even be written as UTF-8
    assert log_line(0, "bob", "/me waves").endswith(" * bob waves")
    long = log_line(0, "bob", "x" * 20_000, LOG_LINE)
    assert len(long) < LOG_LINE + 40 and long.endswith("more characters cut]")


def test_log_files_are_named_safely_and_made_0600(tmp_path):
    assert file_stem("Bob") == "bob" and file_stem("#ab12") == "group-ab12"
    assert file_stem("#../x") == "group-.._x"
    book = Logbook(lambda: tmp_path / "logs", lambda: ["bob"])
    book.append("Bob", 0, "Bob", "hi")
    book.append("carol", 0, "carol", "not kept")
    assert [p.name for p in (tmp_path / "logs").iterdir()] == ["bob.log"]
    assert stat.S_IMODE((tmp_path / "logs" / "bob.log").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "logs").stat().st_mode) == 0o700


def test_urls_and_mentions_are_found_in_the_text():
    text = "see https://example.com/a?b=1. or (http://w.org/p_(1)) not http:// nor ftp://x"
    assert [text[a:b] for a, b in urls(text)] == ["https://example.com/a?b=1", "http://w.org/p_(1)"]
    said = "@Ann, ann: annabel ann. ann.x"
    assert [said[a:b] for a, b in mentions(said, "Ann")] == ["@Ann", "ann", "ann"]
    assert mentions("Ann", "") == []


def test_a_private_notification_names_the_sender_never_the_text():
    burst = Burst(senders={"bob": 1}, last_text="the code is 4711", total=1)
    assert private_body(burst) == "new message from bob"
    burst = Burst(senders={"bob": 2, "carol": 1}, last_text="secret", total=3)
    assert private_body(burst) == "3 new messages from bob, carol"
