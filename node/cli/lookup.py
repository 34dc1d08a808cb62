"""`p2p-node lookup NAME --seed URL`: resolve a name through one seed and print its record."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def lookup_parser(sub: Any) -> None:
    p = sub.add_parser("lookup", help="resolve a name through a seed")
    p.add_argument("name")
    p.add_argument("--seed", required=True, metavar="URL", help="the seed to ask")
    p.add_argument("--json", action="store_true", help="print the raw `found` frame")
    p.set_defaults(run=run_lookup)


async def run_lookup(args: argparse.Namespace) -> int:
    from ..crypto.keys import fingerprint
    from ..crypto.signing import verify_record
    from ..wire.names import fold_name
    from ..wire.protocol import FROM_SEED, ChallengeFrame, Found, frame_text, parse
    from ..wire.sockets import dial

    async with await dial(args.seed) as ws:
        await ws.send(frame_text({"type": "lookup", "id": "1", "name": args.name}))
        reply = parse(FROM_SEED, await ws.recv())
        while isinstance(reply, ChallengeFrame):  # a seed's first frame; a lookup needs no session
            reply = parse(FROM_SEED, await ws.recv())
    if not isinstance(reply, Found):
        print(f"{args.name}: {reply.message} ({reply.code})", file=sys.stderr)
        return 1
    if fold_name(reply.record.name) != fold_name(args.name) or not verify_record(reply.record):
        print(
            f"{args.name}: the seed answered with a record that does not prove itself",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(reply.model_dump_json(by_alias=True))
        return 0
    r = reply.record
    state = f"online at {reply.seed}" if reply.online else "offline"
    seen = reply.last_seen if reply.last_seen is not None else "never"
    print(f"{r.name}  {state}  last seen {seen}")
    print(f"  key       {r.key}\n  print     {fingerprint(r.key)}")
    print(f"  endpoint  {r.endpoint}\n  seq       {r.seq}")
    return 0
