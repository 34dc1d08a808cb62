"""`p2p-node seed`: run a seed node until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from ..loops import loop_name
from .common import add_loop_option, setup_logging, wait_for_signal

SEED_OPTION_KEYS = (
    "host",
    "port",
    "name",
    "url",
    "peers",
    "data_dir",
    "storage",
    "log_level",
    "loop",
)


def seed_parser(sub: Any) -> None:
    p = sub.add_parser(
        "seed", help="run a seed node", description="Run a seed node of the p2p-chat mesh."
    )
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default 5001; 0 picks a free one)")
    p.add_argument("--name", help="seed name shown to peers and users (default seed-<port>)")
    p.add_argument("--url", help="URL other parties reach this seed at (default ws://HOST:PORT)")
    p.add_argument(
        "--peer",
        action="append",
        dest="peers",
        metavar="URL",
        help="a seed to link with (repeatable)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        help="where the key and directory live (default: per-user data dir)",
    )
    p.add_argument(
        "--storage",
        metavar="WHERE",
        help="sqlite (default: this seed's own database) or nats://H1:P1,H2:P2,H3:P3 "
        "(a fleet of seeds sharing one NATS JetStream cluster)",
    )
    p.add_argument("--config", type=Path, help="TOML file whose [seed] table sets defaults")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    add_loop_option(p, "seed")
    p.set_defaults(run=run_seed)


async def run_seed(args: argparse.Namespace) -> int:
    from ..config import SeedConfig, build
    from ..seed.server import Seed

    # only the flags given: a flag left out is no override, and the file's value keeps its line
    overrides = {k: v for k in SEED_OPTION_KEYS if (v := getattr(args, k, None)) is not None}
    config = build(SeedConfig, args.config, "seed", overrides)
    setup_logging(config.log_level)
    logging.getLogger("p2p.seed").debug("running on the %s event loop", loop_name())
    async with Seed(config):
        await wait_for_signal()
    return 0
