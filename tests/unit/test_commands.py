"""What the input line understands."""

import pytest

from tui.commands import Command, CommandError, parse


def test_plain_text_and_escaped_slashes():
    assert parse("hello") == "hello"
    assert parse("//not a command") == "/not a command"


def test_commands_with_their_arguments():
    assert parse("/msg Bob hi there") == Command("msg", ("Bob", "hi there"))
    assert parse("/ADD bob") == Command("add", ("bob",))
    assert parse("/help") == Command("help", ())
    assert parse("/verify bob") == Command("verify", ("bob",))
    assert parse("/verify bob yes") == Command("verify", ("bob", "yes"))
    assert parse("/retry") == Command("retry", ())
    assert parse("/cancel 1a2b3c4d") == Command("cancel", ("1a2b3c4d",))


def test_msg_with_a_name_alone_opens_the_conversation():
    # what irssi and weechat users type before the text; refusing it kept "/msg bob" in the
    # input, and the text typed next ran into the name
    assert parse("/msg Bob") == Command("open", ("Bob",))
    assert parse("/msg Bob ") == Command("open", ("Bob",))


@pytest.mark.parametrize(
    "line", ["/msg", "/add", "/add a b", "/nope", "/verify", "/verify a yes no", "/retry a b"]
)
def test_mistakes_say_how_to_write_it(line):
    with pytest.raises(CommandError) as info:
        parse(line)
    assert "usage" in str(info.value) or "unknown command" in str(info.value)


def test_the_readme_lists_every_command_alias_and_key():
    from pathlib import Path

    from tui.commands import ALIASES, COMMANDS, KEYS

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## The terminal client")[1].split("\n## ")[0]
    for name in [*COMMANDS, *ALIASES]:
        assert f"`/{name}" in section, name
    for key, _ in KEYS:
        for part in key.split(" / "):
            assert part in section, part
