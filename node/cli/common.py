"""What every command shares: logging to stderr, waiting for a signal, and the user options.

The user options are defined once here and used by `p2p-node user`, `p2p-node send` and `p2p-tui`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from ..config import UserConfig, build, read_table
from ..errors import P2PError
from ..loops import LOOPS, env_choice
from ..runtime import configure_logging

USER_OPTION_KEYS = (
    "name",
    "seeds",
    "host",
    "port",
    "advertise",
    "relay_only",
    "data_dir",
    "log_level",
    "loop",
)


def setup_logging(level: str) -> None:
    """Log to stderr, each repeated line at most a few times a minute (a flood must not fill disks),
    with control characters escaped."""
    configure_logging(level, logging.StreamHandler(sys.stderr))


async def wait_for_signal() -> None:
    """Return on SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def add_user_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="your name (required here or in the config file)")
    p.add_argument(
        "--seed",
        action="append",
        dest="seeds",
        metavar="URL",
        help="a seed to register with (repeatable)",
    )
    p.add_argument("--host", help="address of the direct endpoint (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port of the direct endpoint (default: a free one)")
    p.add_argument(
        "--advertise", metavar="URL", help="endpoint to publish instead of ws://HOST:PORT"
    )
    p.add_argument(
        "--relay-only",
        action="store_true",
        default=None,
        help="accept no direct connections: peers reach you through your seed (your address stays private)",
    )
    p.add_argument("--data-dir", type=Path, help="where your key, contacts and history live")
    p.add_argument("--config", type=Path, help="TOML file whose [user] table sets defaults")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])


def user_config(args: argparse.Namespace) -> UserConfig:
    """The [user] table of --config overlaid with the options given on the command line."""
    # only the options given: a key present in the overrides is not blamed on the file
    overrides = {k: v for k in USER_OPTION_KEYS if (v := getattr(args, k, None)) is not None}
    config: UserConfig = build(UserConfig, args.config, "user", overrides)
    return config


def add_loop_option(p: argparse.ArgumentParser, table: str) -> None:
    """`--loop`, read before the loop starts (with the `loop` key of --config's `table`)."""
    p.add_argument(
        "--loop",
        choices=LOOPS,
        help="event loop: asyncio (the standard one), uvloop (the fast extra), or auto (uvloop "
        "when installed); default: the config's loop, else $P2P_LOOP, else asyncio",
    )
    p.set_defaults(loop_table=table)


def chosen_loop(args: argparse.Namespace) -> str | None:
    """The loop to run on: --loop, else the config file's `loop`, else P2P_LOOP (None: asyncio)."""
    if getattr(args, "loop", None):
        return str(args.loop)
    table, path = getattr(args, "loop_table", None), getattr(args, "config", None)
    if table and path:
        try:
            value = read_table(path, table).get("loop")
        except P2PError:
            value = None  # the command reports the file's error, with its line
        if value is not None:
            return value if value in LOOPS else None  # a wrong value: the same
    return env_choice()
