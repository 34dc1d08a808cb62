"""`p2p-node`: run a seed, a headless user, send one message, look a name up, or benchmark."""

from __future__ import annotations

import argparse
import asyncio
import sys

from ..errors import P2PError
from ..loops import loop_factory
from .bench import bench_parser
from .common import chosen_loop
from .lookup import lookup_parser
from .seed import seed_parser
from .user import send_parser, user_parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="p2p-node", description="p2p-chat node: seeds, headless users, tools."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (seed_parser, user_parser, send_parser, lookup_parser, bench_parser):
        add(sub)
    args = parser.parse_args(argv)
    try:
        factory = loop_factory(chosen_loop(args), warn)
        with asyncio.Runner(loop_factory=factory) as runner:
            code: int = runner.run(args.run(args))
        return code
    except P2PError as exc:
        print(f"p2p-node: {exc}", file=sys.stderr)
        return 2
    except (OSError, TimeoutError) as exc:
        print(f"p2p-node: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def warn(message: str) -> None:
    print(f"p2p-node: warning: {message}", file=sys.stderr)
