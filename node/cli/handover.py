"""`p2p-node send` beside a running node: the message goes through that node's control socket
(node/user/control.py), so the name keeps its one session; and how a send ends, in words."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

OUTCOMES = ("delivered", "stored", "failed", "queued")


def report(to: str, state: str, reason: str | None, later: str) -> int:
    """Say how a send ended (on stderr, in words) and return the exit code: 0 delivered or held
    as mail, 1 otherwise. `later` says when a message left in an outbox is tried again."""
    if state == "delivered":
        return 0
    if state == "stored":
        say(f"{to} is offline; the mesh holds the message and hands it over when they come back")
        return 0
    if state == "failed":
        say(f"not delivered to {to}: {reason}")
        return 1
    say(f"{to}: {reason}; the message stays in the outbox and is retried {later}")
    return 1


def say(text: str) -> None:
    print(f"p2p-node send: {text}", file=sys.stderr)


async def send_through(
    link: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    name: str,
    to: str,
    text: str,
    timeout: float,
) -> int:
    """Hand one message to the running node and wait for its final state, as a send of our own."""
    reader, writer = link
    later = f"by the node running for {name}"
    request = {"type": "send", "from": name, "to": to, "text": text}
    try:
        writer.write(json.dumps(request, ensure_ascii=False).encode() + b"\n")
        await writer.drain()
        async with asyncio.timeout(timeout):
            while raw := await reader.readline():
                answer: dict[str, Any] = json.loads(raw)
                if answer.get("type") == "error":
                    say(str(answer.get("message")))
                    return 1 if answer.get("code") == "busy" else 2
                if answer.get("type") == "state" and answer.get("state") in OUTCOMES:
                    return report(to, answer["state"], answer.get("reason"), later)
        say(f"the node running for {name} closed the connection before answering")
        return 1
    except TimeoutError:
        say(
            f"no acknowledgement from {to} within {timeout:g}s; the message stays in the outbox "
            f"and is retried {later}"
        )
        return 1
    except (ValueError, ConnectionError) as exc:
        say(f"the node running for {name} answered in a way this version does not read ({exc})")
        return 1
    finally:
        writer.close()
