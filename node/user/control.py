"""The local control socket: `p2p-node send` hands a message to the node already running on a
data dir instead of registering a second session (which would take the name from it).

A running node listens on `control.sock` in its data dir (mode 0600, in a 0700 dir, peers of
another uid refused); it is removed on exit, and one left by a node that died is replaced. The
format, one JSON line each way and then one more, is in docs/PROTOCOL.md ("Local control socket").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ..errors import InvalidInput
from ..runtime import quiet_logger
from ..wire.names import fold_name
from .events import EventStream, MessageState

log = quiet_logger("p2p.control")

CONTROL_NAME = "control.sock"
MAX_REQUEST = 64 * 1024  # bytes in a request line (a 4000-character text, escaped, fits)
REQUEST_WITHIN = 10.0  # seconds a client has to send its line
MAX_CLIENTS = 16  # connections served at once; more are answered `busy` and closed


class SendRequest(BaseModel):
    """`{"type": "send", "to": NAME, "text": TEXT, "from": NAME?}`: `from`, when given, must be
    the running node's name (a guard against a data dir holding someone else)."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    type: Literal["send"]
    to: str = Field(min_length=1, max_length=64)
    text: str
    from_: str | None = Field(None, alias="from", max_length=64)


REQUEST: TypeAdapter[SendRequest] = TypeAdapter(SendRequest)


def settled(event: MessageState) -> bool:
    """Whether a one-shot sender is done with a message: delivered, held by the mesh as mail,
    failed, or held back for a reason (it stays in the outbox and is retried)."""
    return event.state in ("delivered", "stored", "failed") or (
        event.state == "queued" and event.reason is not None
    )


class Sender(Protocol):
    """What the control socket needs of a user node."""

    name: str

    async def send(self, to: str, text: str) -> str: ...

    def subscribe(self) -> EventStream: ...

    def unsubscribe(self, stream: EventStream) -> None: ...


@contextlib.contextmanager
def reachable(path: Path) -> Iterator[str]:
    """A name for the socket short enough for AF_UNIX (108 bytes): the path itself, or, for a
    deep data dir, the same file through /proc/self/fd (Linux)."""
    if len(os.fsencode(path)) < 100 or not Path("/proc/self/fd").is_dir():
        yield str(path)
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


async def open_control(
    data_dir: Path,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A connection to the node running on `data_dir`, or None when none runs there (or none
    can be reached: the caller then goes on as if alone, and reports a bad data dir itself)."""
    path = data_dir / CONTROL_NAME
    try:
        if not stat.S_ISSOCK(path.lstat().st_mode):
            return None
        with reachable(path) as name:
            return await asyncio.open_unix_connection(name, limit=MAX_REQUEST)
    except OSError:  # no such file, refused (stale), not a directory, no permission
        return None


def _peer_uid(writer: asyncio.StreamWriter) -> int | None:
    sock = writer.get_extra_info("socket")
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return None
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    uid: int = struct.unpack("3i", raw)[1]
    return uid


class ControlSocket:
    """Serves the control socket of a running node; `start()` and `stop()` with the node."""

    def __init__(self, node: Sender, data_dir: Path) -> None:
        self.node = node
        self.path = data_dir / CONTROL_NAME
        self.server: asyncio.AbstractServer | None = None
        self.inode: int | None = None
        self.clients: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen, replacing a socket left by a node that died; a live one is left alone (another
        process runs on this data dir) and this node serves none."""
        try:
            mode = self.path.lstat().st_mode
        except FileNotFoundError:
            mode = None
        if mode is not None and not stat.S_ISSOCK(mode):
            log.warning("%s is not a socket: no control socket for this node", self.path)
            return
        if mode is not None:
            link = await open_control(self.path.parent)
            if link is not None:
                link[1].close()
                log.warning("another process serves %s: no control socket here", self.path)
                return
            self.path.unlink(missing_ok=True)  # stale: its node is gone
        try:
            with reachable(self.path) as name:
                self.server = await asyncio.start_unix_server(
                    self._client, name, limit=MAX_REQUEST, start_serving=True
                )
                os.chmod(name, 0o600)
                self.inode = os.stat(name).st_ino
        except OSError as exc:  # the node runs on; `p2p-node send` then registers its own session
            log.warning("no control socket at %s: %s", self.path, exc.strerror or exc)

    async def stop(self) -> None:
        if self.server is None:
            return
        self.server.close()
        for task in list(self.clients):
            task.cancel()
        await asyncio.gather(*self.clients, return_exceptions=True)
        await self.server.wait_closed()
        with contextlib.suppress(OSError):
            if self.path.lstat().st_ino == self.inode:  # ours still, not a successor's
                self.path.unlink()
        self.server = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:  # always, inside a stream callback
            self.clients.add(task)
        try:
            await self._serve(reader, writer, _answer(writer))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.clients.discard(task)
            writer.close()

    async def _serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        answer: Callable[[dict[str, Any]], None],
    ) -> None:
        uid = _peer_uid(writer)
        if uid is not None and uid != os.getuid():
            return
        if len(self.clients) > MAX_CLIENTS:
            answer(_error("busy", "the node is serving other local requests; try again"))
            return
        try:
            async with asyncio.timeout(REQUEST_WITHIN):
                line = await reader.readline()
        except (TimeoutError, ValueError):
            answer(_error("bad_request", "send one JSON line of at most 64 KiB, at once"))
            return
        try:
            request = REQUEST.validate_json(line)
        except ValidationError as exc:
            why = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in why["loc"]) or "the request"
            answer(_error("bad_request", f"{where}: {why['msg']}"))
            return
        if request.from_ is not None and fold_name(request.from_) != fold_name(self.node.name):
            answer(_error("wrong_name", f"the node running on this data dir is {self.node.name}"))
            return
        await self._send(request, reader, answer)

    async def _send(
        self,
        request: SendRequest,
        reader: asyncio.StreamReader,
        answer: Callable[[dict[str, Any]], None],
    ) -> None:
        stream = self.node.subscribe()  # before sending: no state of the message is missed
        gone = asyncio.ensure_future(reader.read(1))  # the client hung up (or spoke out of turn)
        try:
            try:
                msg_id = await self.node.send(request.to, request.text)
            except InvalidInput as exc:
                answer(_error("bad_command", str(exc)))
                return
            answer({"type": "queued", "id": msg_id, "from": self.node.name})
            while not gone.done():
                next_event = asyncio.ensure_future(stream.queue.get())
                await asyncio.wait({next_event, gone}, return_when=asyncio.FIRST_COMPLETED)
                if not next_event.done():
                    next_event.cancel()
                    return
                event = next_event.result()
                if isinstance(event, MessageState) and event.id == msg_id and settled(event):
                    answer(
                        {
                            "type": "state",
                            "id": msg_id,
                            "state": event.state,
                            "reason": event.reason,
                            "path": event.path,
                        }
                    )
                    return
        finally:
            gone.cancel()
            self.node.unsubscribe(stream)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}


def _answer(writer: asyncio.StreamWriter) -> Callable[[dict[str, Any]], None]:
    def write(obj: dict[str, Any]) -> None:
        writer.write(json.dumps(obj, ensure_ascii=False).encode() + b"\n")

    return write
