"""Which event loop a node runs on: the standard asyncio loop, or uvloop (the `fast` extra).

Chosen by `--loop`, else the config's `loop` key, else the P2P_LOOP environment variable (so a
test run can put every node it starts on one loop), else the standard loop. "auto" is uvloop
when it is installed; "uvloop" when it is not falls back to the standard loop with a warning.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Literal, get_args

from .errors import ConfigError

LoopChoice = Literal["asyncio", "uvloop", "auto"]
LOOPS: tuple[str, ...] = get_args(LoopChoice)
ENV = "P2P_LOOP"
NOT_INSTALLED = (
    "uvloop was asked for but is not installed (pip install 'p2p-chat[fast]'); "
    "running on the standard asyncio loop"
)


def env_choice() -> str | None:
    """The loop P2P_LOOP names (None when unset or empty); ConfigError for an unknown one."""
    value = os.environ.get(ENV, "").strip()
    if not value:
        return None
    if value not in LOOPS:
        raise ConfigError(f"{ENV}={value!r}: the loop must be one of {', '.join(LOOPS)}")
    return value


def loop_factory(
    choice: str | None, warn: Callable[[str], None]
) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory of the loop `choice` names (None: the standard loop's), telling `warn` when
    uvloop was asked for and cannot be had."""
    if choice not in ("uvloop", "auto"):
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            warn(NOT_INSTALLED)
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def loop_name() -> str:
    """The running loop's kind, as the choices name it (for logs and health)."""
    return (
        "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"
    )
