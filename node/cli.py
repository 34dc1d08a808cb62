"""`p2p-node`: run a seed, a headless user, send one message, look a name up, or benchmark."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from .errors import P2PError


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("websockets").setLevel(logging.WARNING)


async def wait_for_signal() -> None:
    """Return on SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


# ---------------------------------------------------------------------- seed


def seed_parser(sub) -> None:
    p = sub.add_parser("seed", help="run a seed node", description="Run a seed node of the p2p-chat mesh.")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default 5001; 0 picks a free one)")
    p.add_argument("--name", help="seed name shown to peers and users (default seed-<port>)")
    p.add_argument("--url", help="URL other parties reach this seed at (default ws://HOST:PORT)")
    p.add_argument("--peer", action="append", dest="peers", metavar="URL", help="a seed to link with (repeatable)")
    p.add_argument("--data-dir", type=Path, help="where the key and directory live (default: per-user data dir)")
    p.add_argument("--config", type=Path, help="TOML file whose [seed] table sets defaults")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.set_defaults(run=run_seed)


async def run_seed(args: argparse.Namespace) -> int:
    from .config import SeedConfig, build
    from .seed import Seed

    overrides = {k: getattr(args, k) for k in ("host", "port", "name", "url", "peers", "data_dir", "log_level")}
    config = build(SeedConfig, args.config, "seed", overrides)
    setup_logging(config.log_level)
    async with Seed(config):
        await wait_for_signal()
    return 0


# ---------------------------------------------------------------------- lookup


def lookup_parser(sub) -> None:
    p = sub.add_parser("lookup", help="resolve a name through a seed")
    p.add_argument("name")
    p.add_argument("--seed", required=True, metavar="URL", help="the seed to ask")
    p.add_argument("--json", action="store_true", help="print the raw `found` frame")
    p.set_defaults(run=run_lookup)


async def run_lookup(args: argparse.Namespace) -> int:
    from .identity import fingerprint
    from .protocol import FROM_SEED, Found, parse
    from .wire import dial, frame

    async with await dial(args.seed) as ws:
        await ws.send(frame({"type": "lookup", "id": "1", "name": args.name}))
        reply = parse(FROM_SEED, await ws.recv())
    if not isinstance(reply, Found):
        print(f"{args.name}: {reply.message} ({reply.code})", file=sys.stderr)
        return 1
    if args.json:
        print(reply.model_dump_json(by_alias=True))
        return 0
    r = reply.record
    state = f"online at {reply.seed}" if reply.online else "offline"
    print(f"{r.name}  {state}  last seen {reply.last_seen if reply.last_seen is not None else 'never'}")
    print(f"  key       {r.key}\n  print     {fingerprint(r.key)}\n  endpoint  {r.endpoint}\n  seq       {r.seq}")
    return 0


# ---------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="p2p-node", description="p2p-chat node: seeds, headless users, tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    seed_parser(sub)
    lookup_parser(sub)
    for extra in _extra_parsers():
        extra(sub)
    args = parser.parse_args(argv)
    try:
        return asyncio.run(args.run(args))
    except P2PError as exc:
        print(f"p2p-node: {exc}", file=sys.stderr)
        return 2
    except (OSError, TimeoutError) as exc:
        print(f"p2p-node: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _extra_parsers():
    """Subcommands that live in their own modules."""
    from .headless import send_parser, user_parser

    return [user_parser, send_parser, bench_parser]


def bench_parser(sub) -> None:
    from .bench.runner import SCENARIOS

    p = sub.add_parser("bench", help="measure p2p-chat against raw WebSockets on this machine",
                       description="Scenarios: " + ", ".join(SCENARIOS) + " (default: all).")
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO")
    p.add_argument("--quick", action="store_true", help="smaller counts: a smoke run in under a minute")
    p.add_argument("--seed", metavar="URL", help="drive the seed scenarios against this live seed")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    p.set_defaults(run=run_bench)


async def run_bench(args: argparse.Namespace) -> int:
    from .bench.runner import run

    return await run(args.scenarios, args.quick, args.seed, args.json)


if __name__ == "__main__":
    sys.exit(main())
