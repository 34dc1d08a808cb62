"""Lines from stdin, whatever it is: a pipe, a terminal, a socket, a regular file or /dev/null.

asyncio's pipe transport takes pipes, sockets and terminals only (a regular file is refused,
and /dev/null cannot be polled): those are read with plain reads in a worker thread, which
never blocks for long on them.
"""

from __future__ import annotations

import asyncio
import os
import stat
from typing import IO, Protocol, TextIO


class LineReader(Protocol):
    async def readline(self) -> bytes:
        """The next line with its newline; b"" at the end; ValueError for a line over the limit
        (which is skipped)."""
        ...


class FileLines:
    """Lines of a file read in a thread, bounded like asyncio.StreamReader.readline."""

    def __init__(self, file: IO[bytes] | None, limit: int) -> None:
        self.file = file
        self.limit = limit

    def _read(self) -> bytes:
        if self.file is None:
            return b""
        line = self.file.readline(self.limit + 1)
        if len(line) <= self.limit or line.endswith(b"\n"):
            return line
        while (rest := self.file.readline(self.limit)) and not rest.endswith(b"\n"):
            pass  # the rest of the long line is skipped
        raise ValueError("line too long")

    async def readline(self) -> bytes:
        return await asyncio.to_thread(self._read)


def _pollable(fd: int) -> bool:
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)


async def open_lines(file: TextIO | None, limit: int) -> LineReader:
    """A line reader over `file` (sys.stdin); a closed stdin reads as empty."""
    try:
        fd = file.fileno() if file is not None else -1
        pollable = fd >= 0 and _pollable(fd)
    except (OSError, ValueError):
        return FileLines(None, limit)
    if not pollable:
        return FileLines(file.buffer if file is not None else None, limit)
    reader = asyncio.StreamReader(limit=limit)
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), file)
    return reader
