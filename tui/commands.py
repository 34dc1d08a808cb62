"""What the input line understands: plain text, or a slash command with its arguments.

The table below is the one list of commands: /help prints it, Tab completes from it, and the
README lists the same. Aliases are the names weechat and irssi users type for the same thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# name -> (usage, what it does); in a usage, TEXT takes the rest of the input (lines included),
# [X] is optional, and every other word is one argument
COMMANDS: dict[str, tuple[str, str]] = {
    "msg": ("NAME TEXT", "send TEXT to NAME and open that conversation (no TEXT: just open it)"),
    "open": ("NAME", "open the conversation with NAME"),
    "me": ("TEXT", "send an action: '* Sally waves'"),
    "close": ("", "close the open conversation"),
    "window": ("N", "open conversation number N, as numbered in Contacts (alt+1..9, alt+0 is 10)"),
    "buffer": ("NAME", "open the conversation with NAME, or the first whose name starts so"),
    "read": ("[all]", "mark the open conversation read; /read all marks every one (alt+shift+a)"),
    "clear": ("", "clear the view of the open conversation (its history stays on disk)"),
    "search": ("TEXT", "search this conversation's whole history; Enter jumps to a hit"),
    "add": ("NAME", "add a contact and follow their presence"),
    "remove": ("NAME", "remove a contact (the history stays)"),
    "block": ("[NAME]", "refuse NAME's messages, unseen; no NAME lists who is blocked"),
    "unblock": ("NAME", "accept NAME's messages again"),
    "whois": ("NAME", "show NAME's key fingerprint, verified mark, presence and record"),
    "verify": (
        "NAME [yes]",
        "show both fingerprints to compare out of band; /verify NAME yes then marks NAME verified",
    ),
    "unverify": ("NAME", "take the verified mark off NAME"),
    "accept": ("NAME", "trust a contact's new key after it changed; held messages then go out"),
    "retry": ("[ID]", "try again now: the newest failed (else waiting) message here, or ID"),
    "cancel": ("[ID]", "give up on a waiting message: the newest here, or the one ID"),
    "reply": ("TEXT", "answer a message, quoting it: /reply [ID] TEXT (no ID: the newest line)"),
    "react": ("[ID] [EMOJI]", "your one reaction to a message (the newest line); ID alone: none"),
    "edit": ("TEXT", "change one of your messages: /edit [ID] TEXT (no ID: your newest)"),
    "delete": ("[ID]", "delete one of your messages on both sides (no ID: your newest)"),
    "jump": ("[ID]", "show the line a reply quotes (no ID: the newest reply); a click does too"),
    "fingerprint": ("", "show your own key fingerprint (F2)"),
    "group": ("new TOPIC [NAME ...]", "make a group with these members, and open it"),
    "invite": ("NAME", "add NAME to the open group (admins)"),
    "kick": ("NAME", "remove NAME from the open group (admins)"),
    "topic": ("TEXT", "change the open group's topic (admins)"),
    "members": ("", "list the open group's members and admins"),
    "leave": ("", "leave the open group"),
    "seed": ("[remove] URL", "add a seed (ws://HOST:PORT); /seed remove URL forgets one"),
    "seeds": ("", "list every seed known, up or down"),
    "reconnect": ("", "dial the seeds again, configured ones first (takes your name back)"),
    "notify": (
        "[SETTING VALUE]",
        "alerts: /notify bell on|off, desktop off|osc9|osc777, private on|off (no text shown)",
    ),
    "timestamps": ("", "show dates and seconds on every line, or not (ctrl+t)"),
    "export": ("NAME [FILE]", "write the whole conversation to a text file (default: in logs/)"),
    "log": ("[on|off]", "keep a text log of the open conversation in logs/; no value lists them"),
    "help": ("", "list the commands and keys"),
    "quit": ("", "leave (ctrl+q does too)"),
}
ALIASES = {
    "query": "open",
    "q": "open",
    "j": "open",
    "ignore": "block",
    "unignore": "unblock",
    "part": "close",
    "exit": "quit",
    "fp": "fingerprint",
    "w": "window",
    "b": "buffer",
}
# what each argument of a command completes to with Tab: "name" (contacts and groups), "seed"
# (the saved seeds), "command", or the words themselves ("on|off"); the last repeats when it
# ends in "..."
ARGUMENTS: dict[str, tuple[str, ...]] = {
    "msg": ("name",),
    "open": ("name",),
    "buffer": ("name",),
    "add": ("name",),
    "remove": ("name",),
    "block": ("name",),
    "unblock": ("name",),
    "whois": ("name",),
    "verify": ("name", "yes"),
    "unverify": ("name",),
    "accept": ("name",),
    "invite": ("name",),
    "kick": ("name",),
    "group": ("new", "", "name..."),
    "seed": ("remove", "seed"),
    "read": ("all",),
    "notify": ("bell|desktop", "on|off|osc9|osc777"),
    "help": ("command",),
}
KEYS: list[tuple[str, str]] = [
    ("Enter", "send"),
    ("ctrl+j", "new line (shift+enter or alt+enter too, where the terminal tells them apart)"),
    ("Tab", "complete a name, command or argument (/whois <Tab>); nothing to complete: next pane"),
    ("Up / Down", "in the input: what you sent before in this conversation (kept across restarts)"),
    ("alt+1 … alt+9, alt+0", "open conversation 1..10 as numbered in Contacts (/window N)"),
    ("alt+a", "next conversation with activity (unread messages)"),
    ("alt+shift+a", "mark every conversation read (/read all)"),
    ("ctrl+u", "delete everything before the cursor in the input"),
    ("Esc", "back to the input line (and close the contacts overlay)"),
    ("PageUp / PageDown", "scroll the conversation; older and newer history load as you go"),
    ("ctrl+end / ctrl+g", "jump to the newest line (alt+end too)"),
    ("ctrl+n", "next conversation with unread messages"),
    ("ctrl+l", "contacts (an overlay on narrow terminals)"),
    ("ctrl+b", "show or hide the side panes"),
    ("ctrl+r", "search this conversation (/search)"),
    ("ctrl+t", "full timestamps on or off"),
    ("F1 / F2", "help / your own key fingerprint"),
    ("ctrl+p", "command palette: open, whois, verify, block, themes"),
    ("drag, ctrl+c", "select text in the chat and copy it (OSC 52); shift+drag: the terminal's"),
    ("ctrl+q", "quit"),
]


class CommandError(ValueError):
    """The line is not a valid command; the message says how to write it."""


@dataclass(frozen=True)
class Command:
    name: str
    args: tuple[str, ...]


_HEAD = re.compile(r"/(\S*)\s?(.*)", re.DOTALL)


def parse(line: str) -> Command | str:
    """A Command for `/name args`, else the line itself as text to send (`//x` sends `/x`)."""
    if not line.startswith("/") or line.startswith("//"):
        return line[1:] if line.startswith("//") else line
    match = _HEAD.fullmatch(line)
    if match is None:  # cannot happen: the pattern matches every line that starts with "/"
        raise CommandError("cannot read that command; /help lists them")
    head, rest = match.group(1), match.group(2)
    name = ALIASES.get(head.lower(), head.lower())
    if name not in COMMANDS:
        raise CommandError(f"unknown command /{head}; /help lists them")
    usage, _ = COMMANDS[name]
    if name == "group":  # a list of names of any length
        words = rest.split()
        if len(words) < 2 or words[0] != "new":
            raise CommandError(f"usage: /group {usage}")
        return Command(name, tuple(words[1:]))
    wanted = usage.split()
    bad = CommandError(f"usage: /{name} {usage}".rstrip())
    if wanted and wanted[-1] == "TEXT":
        words = len(wanted) - 1
        parts = rest.lstrip().split(None, words)
        if name == "msg" and len(parts) == 1:
            return Command("open", (parts[0],))  # as /query: the text comes next
        if len(parts) < words + 1 or not parts[words].strip():
            raise bad
        return Command(name, (*parts[:words], parts[words].strip("\n")))
    args = rest.split()
    required = [w for w in wanted if not w.startswith("[")]
    if not wanted and args:
        raise bad
    if wanted and wanted[0].startswith("["):
        if len(args) > len(" ".join(wanted).split()):
            raise bad
        return Command(name, tuple(args))
    if not len(required) <= len(args) <= len(wanted):
        raise bad
    return Command(name, tuple(args))


def completions() -> list[str]:
    """Every command and alias, for Tab."""
    return sorted([*COMMANDS, *ALIASES])


def argument_choices(before: str, names: list[str], seeds: list[str]) -> list[str]:
    """What Tab offers for the word after `before` (the text before it on the first line): the
    command's argument there, names in plain text, nothing where the command takes free text."""
    if not before.startswith("/") or before.startswith("//"):
        return names
    words = before.split()
    name = ALIASES.get(words[0][1:].lower(), words[0][1:].lower())
    kinds = ARGUMENTS.get(name, ())
    index = len(words) - 1
    if not kinds:
        return []
    if index >= len(kinds):
        if not kinds[-1].endswith("..."):
            return []
        index = len(kinds) - 1
    kind = kinds[index].removesuffix("...")
    if kind == "name":
        return names
    if kind == "seed":
        return seeds if words[1:2] == ["remove"] else []
    if kind == "command":
        return sorted(COMMANDS)
    return kind.split("|") if kind else []


def help_text() -> str:
    lines = [f"/{name} {usage}".ljust(24) + f" {what}" for name, (usage, what) in COMMANDS.items()]
    lines.append("plain text".ljust(24) + " goes to the open conversation (//text sends /text)")
    aliases = ", ".join(f"/{a} = /{c}" for a, c in ALIASES.items())
    lines.append(f"aliases: {aliases}")
    lines.append("keys:")
    lines.extend(f"  {key}".ljust(24) + f" {what}" for key, what in KEYS)
    return "\n".join(lines)
