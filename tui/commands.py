"""What the input line understands: plain text, or a slash command with its arguments."""

from __future__ import annotations

from dataclasses import dataclass

COMMANDS: dict[str, tuple[str, str]] = {
    "msg": ("NAME TEXT", "send TEXT to NAME and open that conversation"),
    "add": ("NAME", "add a contact and follow their presence"),
    "remove": ("NAME", "remove a contact"),
    "whois": ("NAME", "show a name's key fingerprint and record"),
    "accept": ("NAME", "trust a contact's new key after it changed"),
    "seed": ("URL", "add a seed to register with"),
    "help": ("", "list the commands"),
    "quit": ("", "leave (ctrl+q does too)"),
}


class CommandError(ValueError):
    """The line is not a valid command; the message says how to write it."""


@dataclass(frozen=True)
class Command:
    name: str
    args: tuple[str, ...]


def parse(line: str) -> Command | str:
    """A Command for `/name args`, else the line itself as text to send (`//x` sends `/x`)."""
    if not line.startswith("/") or line.startswith("//"):
        return line[1:] if line.startswith("//") else line
    head, _, rest = line[1:].partition(" ")
    name = head.lower()
    if name not in COMMANDS:
        raise CommandError(f"unknown command /{head}; /help lists them")
    usage, _ = COMMANDS[name]
    wanted = usage.split()
    rest = rest.strip()
    if not wanted:
        return Command(name, ())
    if wanted[-1] == "TEXT":
        first, _, text = rest.partition(" ")
        if not first or not text.strip():
            raise CommandError(f"usage: /{name} {usage}")
        return Command(name, (first, text.strip()))
    if len(rest.split()) != 1:
        raise CommandError(f"usage: /{name} {usage}")
    return Command(name, (rest,))


def help_text() -> str:
    lines = [f"/{name} {usage}".ljust(22) + f" {what}" for name, (usage, what) in COMMANDS.items()]
    lines.append("plain text".ljust(22) + " goes to the open conversation; Tab completes names")
    return "\n".join(lines)
