"""`p2p-node bench`: the benchmark scenarios (node/bench/), with figures against same-run baselines."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def bench_parser(sub: Any) -> None:
    from ..bench.runner import SCENARIOS

    p = sub.add_parser(
        "bench",
        help="measure p2p-chat against raw WebSockets on this machine",
        description="Scenarios: " + ", ".join(SCENARIOS) + " (default: all).",
    )
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO")
    p.add_argument(
        "--quick", action="store_true", help="smaller counts: a smoke run in under a minute"
    )
    p.add_argument("--seed", metavar="URL", help="drive the seed scenarios against this live seed")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    p.set_defaults(run=run_bench)


async def run_bench(args: argparse.Namespace) -> int:
    from ..bench.runner import run

    return await run(args.scenarios, args.quick, args.seed, args.json)
