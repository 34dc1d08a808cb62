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
from ..user.events import ErrorEvent, Event, EventStream, MessageReceived, MessageState
from ..user.node import UserNode
from .common import add_user_options, setup_logging, user_config, wait_for_signal
from .group_cmd import handle_group_line, is_group_line

SEND_RE = re.compile(r"@(\S+)\s+(.+)", re.S)
WATCH_RE = re.compile(r"/watch\s+(\S+)\s*")


def prepare(args: argparse.Namespace) -> tuple[Any, UserNode, EventStream]:
    """Config from flags and file, logging to stderr, and a node with its event stream subscribed."""
    config = user_config(args)
    setup_logging(config.log_level)
    node = UserNode(config)
    return config, node, node.subscribe()


def event_line(event: Event) -> dict[str, Any]:
    """The JSON object printed for an event; message states read as `delivered` and `failed`."""
    body = event.to_json()
    if isinstance(event, MessageState):
        if body.get("path") is None:
            body.pop("path", None)
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
        help="stop at end of stdin, once the queue is delivered",
    )
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
            while node.pending_count() and not stop.done():
                await asyncio.wait({stop}, timeout=0.1)
        await asyncio.sleep(0)  # let the printer write what is queued
        rest = []
        while not stream.queue.empty():
            rest.append(stream.queue.get_nowait())
        show(rest)
        for t in (printing, reading, stop):
            t.cancel()
    return 0


async def read_commands(node: UserNode, write: Callable[[dict[str, Any]], None]) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
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
        else:
            write(
                ErrorEvent(
                    code="bad_command",
                    message="expected '@NAME text' or '/watch NAME'",
                    line=line[:200],
                ).to_json()
            )
    except InvalidInput as exc:
        write(ErrorEvent(code="bad_command", message=str(exc), line=line[:200]).to_json())


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
    config, node, stream = prepare(args)
    async with node:
        msg_id = await node.send(args.to, args.text)
        try:
            async with asyncio.timeout(args.timeout):
                async for event in stream:
                    if isinstance(event, ErrorEvent) and event is node.fatal:
                        print(f"p2p-node send: {event.message}", file=sys.stderr)
                        return 1
                    if not isinstance(event, MessageState) or event.id != msg_id:
                        continue
                    if event.state == "delivered":
                        return 0
                    if event.state == "stored":
                        print(
                            f"p2p-node send: {args.to} is offline; the mesh holds the message and "
                            "hands it over when they come back",
                            file=sys.stderr,
                        )
                        return 0
                    if event.state == "failed":
                        print(
                            f"p2p-node send: not delivered to {args.to}: {event.reason}",
                            file=sys.stderr,
                        )
                        return 1
                    if event.reason and event.state == "queued":
                        print(
                            f"p2p-node send: {args.to}: {event.reason}; the message stays in the outbox "
                            f"and is retried the next time {config.name} runs",
                            file=sys.stderr,
                        )
                        return 1
        except TimeoutError:
            print(
                f"p2p-node send: no acknowledgement from {args.to} within {args.timeout:g}s; the message "
                f"stays in the outbox and is retried the next time {config.name} runs",
                file=sys.stderr,
            )
            return 1
    return 1
