"""What every long-running part shares: a start/stop life cycle and referenced background tasks."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Coroutine
from typing import Any, Self

log = logging.getLogger("p2p")


class Service:
    """Something started and stopped around an `async with` block (a seed, a user node)."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class Tasks:
    """Background tasks held until they finish, their failures logged.

    asyncio keeps only a weak reference to a task, so one nobody holds can vanish mid-way; and an
    exception in a task nobody awaits is otherwise reported late or never.
    """

    def __init__(self, logger: logging.Logger = log) -> None:
        self.log = logger
        self.running: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.running.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.running.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.log.error("task %s failed: %r", task.get_name(), exc, exc_info=exc)

    def __len__(self) -> int:
        return len(self.running)

    async def cancel_all(self) -> None:
        """Cancel what still runs and wait for it to end."""
        tasks = list(self.running)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class LogLimiter(logging.Filter):
    """Lets through at most `burst` records a minute per (logger, message), then one summary.

    A flood (a thousand refused sockets a second, a file-descriptor shortage) must not turn into
    megabytes of identical log lines; the first few say what happens, the count says how often.
    """

    def __init__(self, burst: int = 5, window: float = 60.0) -> None:
        super().__init__()
        self.burst = burst
        self.window = window
        self.seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = record.created
        start, count = self.seen.get(key, (now, 0))
        if now - start > self.window:
            if count > self.burst:
                record.msg = (
                    f"{record.msg} (and {count - self.burst} more like it in the last minute)"
                )
            start, count = now, 0
        self.seen[key] = (start, count + 1)
        if len(self.seen) > 10_000:
            self.seen.clear()
        return count < self.burst


# C0 and C1 controls, DEL, and the bidirectional overrides that reorder what a terminal shows
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with every control character escaped (`\\x1b`), for a log line on a terminal."""
    return _UNPRINTABLE.sub(
        lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text
    )


class LiteralFormatter(logging.Formatter):
    """Log lines carry names and URLs that peers chose: an escape sequence in one must reach an
    operator's terminal as visible text, never recolour it or set its title."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))


LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: str, handler: logging.Handler) -> None:
    """Every line through one handler, escaped (LiteralFormatter) and rate limited (LogLimiter)."""
    handler.setFormatter(LiteralFormatter(LOG_FORMAT))
    handler.addFilter(LogLimiter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper()))
    logging.getLogger("websockets").setLevel(logging.WARNING)


def quiet_loop_errors(loop: asyncio.AbstractEventLoop, limiter: LogLimiter) -> None:
    """Report the loop's own errors (accept() out of file descriptors, say) through a rate limit."""
    errors = logging.getLogger("p2p.loop")
    errors.addFilter(limiter)

    def handler(_: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        errors.error(
            "%s%s", context.get("message", "event loop error"), f": {exc!r}" if exc else ""
        )

    loop.set_exception_handler(handler)


def raise_file_limit() -> None:
    """Lift the soft limit on open files to the hard one: sockets are files."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


QUIET = LogLimiter()


def quiet_logger(name: str) -> logging.Logger:
    """A logger whose repeated lines are rate limited (what a peer can provoke must not flood logs).

    Filters on a logger see only what is logged to it, not to its children: every p2p-chat
    module takes its logger from here, so they all share one limiter.
    """
    logger = logging.getLogger(name)
    if QUIET not in logger.filters:
        logger.addFilter(QUIET)
    return logger
