"""Drafts and Up history per conversation: bounded, kept per folded name, and a bad file is set
aside instead of stopping the app."""

from __future__ import annotations

import json

from tui.commands import argument_choices
from tui.drafts import CONVERSATIONS, HISTORY_BYTES, HISTORY_ENTRIES, Drafts
from tui.widgets.composer import complete


def test_drafts_and_history_survive_a_save_and_are_kept_per_folded_name(tmp_path):
    drafts = Drafts()
    drafts.keep("Bob", "half a line")
    drafts.sent("bob").append("sent to bob")
    drafts.keep(None, "no conversation yet")
    drafts.last = "Bob"
    drafts.save(tmp_path / "drafts.json")
    again, warnings = Drafts.load(tmp_path / "drafts.json")
    assert warnings == [] and again.last == "Bob"
    assert again.draft("BOB") == "half a line" and again.sent("Bob") == ["sent to bob"]
    assert again.draft(None) == "no conversation yet" and again.draft("carol") == ""


def test_history_is_bounded_in_count_and_bytes_and_the_list_handed_out_stays_live(tmp_path):
    drafts = Drafts()
    lines = drafts.sent("bob")
    lines.extend(f"line {i}" for i in range(HISTORY_ENTRIES + 50))
    drafts.save(tmp_path / "drafts.json")
    assert len(lines) == HISTORY_ENTRIES and lines[-1] == f"line {HISTORY_ENTRIES + 49}"
    lines[:] = ["x" * 4000] * 30  # 120 KB: the oldest go
    drafts.save(tmp_path / "drafts.json")
    assert sum(len(line) for line in lines) <= HISTORY_BYTES and len(lines) == 16
    empty = drafts.sent("carol")
    drafts.save(tmp_path / "drafts.json")
    empty.append("after the save")  # the list the input holds is still the one saved
    drafts.save(tmp_path / "drafts.json")
    assert Drafts.load(tmp_path / "drafts.json")[0].sent("carol") == ["after the save"]


def test_a_file_with_too_many_conversations_keeps_those_with_drafts(tmp_path):
    data = {
        "history": {f"u{i}": ["hi"] for i in range(CONVERSATIONS + 10)},
        "drafts": {"u0": "keep me"},
    }
    (tmp_path / "drafts.json").write_text(json.dumps(data))
    drafts, _ = Drafts.load(tmp_path / "drafts.json")
    assert len(drafts.history) == CONVERSATIONS and drafts.draft("u0") == "keep me"


def test_an_unreadable_file_is_kept_aside(tmp_path):
    (tmp_path / "drafts.json").write_text("{not json")
    drafts, warnings = Drafts.load(tmp_path / "drafts.json")
    assert drafts.drafts == {} and "unusable" in warnings[0]
    assert (tmp_path / "drafts.json.bad").exists()


def test_tab_offers_each_commands_arguments():
    names, seeds = ["bob", "carol"], ["ws://127.0.0.1:9"]
    assert argument_choices("/whois ", names, seeds) == names
    assert argument_choices("/q ", names, seeds) == names  # an alias of /open
    assert argument_choices("/verify bob ", names, seeds) == ["yes"]
    assert argument_choices("/seed ", names, seeds) == ["remove"]
    assert argument_choices("/seed remove ", names, seeds) == seeds
    assert argument_choices("/group new Lunch bob ", names, seeds) == names
    assert argument_choices("/me ", names, seeds) == []  # free text: nothing to complete
    assert argument_choices("hello ", names, seeds) == names
    assert complete("/whois ", 7, names) == names  # two fit, nothing to add: both listed
    assert complete("/whois c", 8, names) == ("/whois carol ", 13)
