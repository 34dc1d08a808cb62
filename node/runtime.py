"""What every long-running part shares: a start/stop life cycle and referenced background tasks."""

from __future__ import annotations

import asyncio
import logging
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
