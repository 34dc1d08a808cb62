"""The headless client's group commands (README, Groups): `/group ...` and `#GROUP text`."""

from __future__ import annotations

import re
import shlex

from ..errors import InvalidInput
from ..user.node import UserNode

GROUP_SEND_RE = re.compile(r"#(\S+)\s+(.+)", re.S)
USAGE = (
    "expected '/group new TOPIC [NAME ...]', '/group add|remove|admin GROUP NAME', "
    "'/group topic GROUP TEXT', '/group leave GROUP' or '#GROUP text'"
)


def is_group_line(line: str) -> bool:
    return line.startswith("#") or line == "/group" or line.startswith("/group ")


async def handle_group_line(node: UserNode, line: str) -> None:
    """Run one group command; InvalidInput says what is wrong (the caller prints it)."""
    groups = node.groups
    if m := GROUP_SEND_RE.fullmatch(line):
        await groups.send(m.group(1), m.group(2))
        return
    if line.startswith("#"):
        raise InvalidInput(USAGE)
    rest = line[len("/group") :].strip()
    verb, _, args = rest.partition(" ")
    args = args.strip()
    if verb == "topic":
        ref, _, text = args.partition(" ")
        if not ref or not text.strip():
            raise InvalidInput(USAGE)
        groups.set_topic(ref, text.strip())
        return
    try:
        words = shlex.split(args)
    except ValueError as exc:
        raise InvalidInput(f"cannot read the line: {exc}") from None
    if verb == "new" and words:
        await groups.new(words[0], words[1:])
    elif verb == "add" and len(words) == 2:
        await groups.add(words[0], words[1])
    elif verb == "remove" and len(words) == 2:
        groups.remove(words[0], words[1])
    elif verb == "admin" and len(words) == 2:
        groups.promote(words[0], words[1])
    elif verb == "leave" and len(words) == 1:
        groups.leave(words[0])
    else:
        raise InvalidInput(USAGE)
