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
    "retry": ("[ID]", "try again now: the newest failed or waiting message here, or the one ID"),
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
    "seed": ("URL", "add a seed to register with (ws://HOST:PORT)"),
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
}
KEYS: list[tuple[str, str]] = [
    ("Enter", "send"),
    ("ctrl+j", "new line (shift+enter or alt+enter too, where the terminal tells them apart)"),
    ("Tab", "complete a name or command; after a space or on an empty line, next pane"),
    ("Up / Down", "in the input: what you sent before"),
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


def help_text() -> str:
    lines = [f"/{name} {usage}".ljust(24) + f" {what}" for name, (usage, what) in COMMANDS.items()]
    lines.append("plain text".ljust(24) + " goes to the open conversation (//text sends /text)")
    aliases = ", ".join(f"/{a} = /{c}" for a, c in ALIASES.items())
    lines.append(f"aliases: {aliases}")
    lines.append("keys:")
    lines.extend(f"  {key}".ljust(24) + f" {what}" for key, what in KEYS)
    return "\n".join(lines)
