"""The headless user: `p2p-node user` (JSON lines out, commands in) and `p2p-node send`."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Callable
from typing import Any

from ..errors import InvalidInput
from ..storage.files import default_data_dir
from ..user.acts import ActType
from ..user.control import open_control, settled
from ..user.events import (
    ErrorEvent,
    Event,
    EventStream,
    MessageChanged,
    MessageReceived,
    MessageState,
)
from ..user.node import UserNode
from ..wire.names import fold_name, require_name
from .common import add_loop_option, add_user_options, setup_logging, user_config, wait_for_signal
from .group_cmd import handle_group_line, is_group_line
from .handover import report, say, send_through
from .lines import open_lines

SEND_RE = re.compile(r"@(\S+)\s+(.+)", re.S)
WATCH_RE = re.compile(r"/watch\s+(\S+)\s*")
RETRY_RE = re.compile(r"/retry(?:\s+(\S+))?\s*")
CANCEL_RE = re.compile(r"/cancel\s+(\S+)\s*")
# r3: replies, reactions, edits, deletes of a message named by its id or a unique prefix
ACT_RE = re.compile(r"/(reply|react|edit|delete)\s+(\S+)(?:\s+(.+))?", re.S)


def prepare(args: argparse.Namespace) -> tuple[Any, UserNode, EventStream]:
    """Config from flags and file, logging to stderr, and a node with its event stream subscribed."""
    config = user_config(args)
    setup_logging(config.log_level)
    node = UserNode(config)
    return config, node, node.subscribe()


def event_line(event: Event) -> dict[str, Any]:
    """The JSON object printed for an event; message states read as `delivered` and `failed`."""
    body = event.to_json()
    if isinstance(event, MessageChanged):
        body["reactions"] = dict(event.reactions)
    if isinstance(event, MessageReceived) and not event.key_changed:
        body.pop("key_changed")
    if isinstance(event, MessageState):
        for key in ("path", "code"):
            if body.get(key) is None:
                body.pop(key, None)
        if event.state in ("delivered", "failed"):
            body["event"] = event.state
            body.pop("state")
            if event.state == "delivered":
                body.pop("reason")
    return body


def user_parser(sub: Any) -> None:
    p = sub.add_parser("user", help="run a headless user (JSON lines on stdout, commands on stdin)")
    add_user_options(p)
    p.add_argument(
        "--exit-on-eof",
        action="store_true",
        help="stop at end of stdin, once the queue is delivered or held by the mesh as mail",
    )
    add_loop_option(p, "user")
    p.set_defaults(run=run_user)


async def run_user(args: argparse.Namespace) -> int:
    _, node, stream = prepare(args)
    out = sys.stdout

    def write(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj, ensure_ascii=False) + "\n")
        out.flush()

    shown = 0

    def show(events: list[Event]) -> None:
        """Print events in one write; a message at most once here, marked shown once printed."""
        nonlocal shown
        lines = []
        newest = shown
        for event in events:
            if isinstance(event, MessageReceived):
                if event.n <= newest:
                    continue  # printed already, from the replay
                newest = event.n
            lines.append(json.dumps(event_line(event), ensure_ascii=False) + "\n")
        if lines:
            out.write("".join(lines))
            out.flush()
        if newest > shown:
            shown = newest
            node.mark_shown(newest)

    async def printer() -> None:
        """Whatever has queued up since the last turn goes out together (one write, one mark)."""
        queue = stream.queue
        while True:
            events = [await queue.get()]
            while not queue.empty():
                events.append(queue.get_nowait())
            show(events)

    async with node:
        # messages stored by an earlier run that was killed before it printed them come first
        show(list(node.unshown()))
        printing = asyncio.ensure_future(printer())
        reading = asyncio.ensure_future(read_commands(node, write))
        stop = asyncio.ensure_future(wait_for_signal())
        waits = {stop, reading} if args.exit_on_eof else {stop}
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if args.exit_on_eof and reading.done():
            while node.unsettled_count() and not stop.done():
                await asyncio.wait({stop}, timeout=0.1)
            if waiting := node.held_count():
                say(
                    f"{waiting} message(s) still wait for a name to register or a key to be "
                    "accepted; they stay in the outbox and go out on a later run"
                )
        await asyncio.sleep(0)  # let the printer write what is queued
        rest = []
        while not stream.queue.empty():
            rest.append(stream.queue.get_nowait())
        show(rest)
        for t in (printing, reading, stop):
            t.cancel()
    return 0


async def read_commands(node: UserNode, write: Callable[[dict[str, Any]], None]) -> None:
    reader = await open_lines(sys.stdin, 1 << 20)
    while True:
        try:
            raw = await reader.readline()
        except ValueError:
            write(ErrorEvent(code="bad_command", message="line too long").to_json())
            continue
        if not raw:
            return
        await handle_line(node, raw.decode("utf-8", "replace").rstrip("\r\n"), write)


async def handle_line(node: UserNode, line: str, write: Callable[[dict[str, Any]], None]) -> None:
    if not line.strip():
        return
    try:
        if is_group_line(line):
            await handle_group_line(node, line)  # r3 groups (group_cmd.py)
        elif m := SEND_RE.fullmatch(line):
            await node.send(m.group(1), m.group(2))
        elif m := WATCH_RE.fullmatch(line):
            node.add_contact(m.group(1))
        elif m := RETRY_RE.fullmatch(line):
            node.retry(m.group(1))  # the state line that follows is the answer
        elif m := CANCEL_RE.fullmatch(line):
            node.cancel(m.group(1))
        elif m := ACT_RE.fullmatch(line):
            await act_line(node, m.group(1), m.group(2), (m.group(3) or "").strip())
        else:
            write(
                ErrorEvent(
                    code="bad_command",
                    message="expected '@NAME text', '/watch NAME', '/retry [ID]', '/cancel ID', "
                    "'/reply ID text', '/react ID [EMOJI]', '/edit ID text' or '/delete ID'",
                    line=line[:200],
                ).to_json()
            )
    except InvalidInput as exc:
        write(ErrorEvent(code="bad_command", message=str(exc), line=line[:200]).to_json())


async def act_line(node: UserNode, verb: str, ref: str, rest: str) -> None:
    """`/reply ID text`, `/react ID [EMOJI]` (none: take it back), `/edit ID text`, `/delete ID`."""
    if verb in ("reply", "edit") and not rest:
        raise InvalidInput(f"expected '/{verb} ID text'")
    if verb == "delete" and rest:
        raise InvalidInput("expected '/delete ID'")
    kind: ActType = verb  # type: ignore[assignment]
    await node.act_on(ref, kind, rest)


def send_parser(sub: Any) -> None:
    p = sub.add_parser(
        "send",
        help="register, deliver one message, and exit once it is acknowledged or held as mail",
    )
    add_user_options(p)
    p.add_argument("--to", required=True, help="the recipient's name")
    p.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for the acknowledgement"
    )
    p.add_argument("text")
    p.set_defaults(run=run_send)


async def run_send(args: argparse.Namespace) -> int:
    config = user_config(args)
    name = require_name(config.name)
    running = await open_control(config.data_dir or default_data_dir("users", fold_name(name)))
    if running is not None:  # a node runs on this data dir: it sends, and keeps its session
        setup_logging(config.log_level)
        return await send_through(running, name, args.to, args.text, args.timeout)
    _, node, stream = prepare(args)
    later = f"the next time {config.name} runs"
    async with node:
        msg_id = await node.send(args.to, args.text)
        try:
            async with asyncio.timeout(args.timeout):
                async for event in stream:
                    if isinstance(event, ErrorEvent) and event is node.fatal:
                        say(event.message)
                        return 1
                    if isinstance(event, MessageState) and event.id == msg_id and settled(event):
                        return report(args.to, event.state, event.reason, later)
        except TimeoutError:
            say(
                f"no acknowledgement from {args.to} within {args.timeout:g}s; the message stays "
                f"in the outbox and is retried {later}"
            )
            return 1
    return 1
