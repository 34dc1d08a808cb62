"""The seed an app hosts when no seed answers, so people on one machine can chat with nothing else running."""

from __future__ import annotations

from pathlib import Path

from node.config import SeedConfig
from node.seed.server import Seed


async def host_seed(user: str, port: int, data_dir: Path) -> Seed:
    """Start a seed named after the user on 127.0.0.1:`port`; OSError when the port is taken."""
    cfg = SeedConfig(
        host="127.0.0.1",
        port=port,
        name=f"embedded-{user}",
        data_dir=data_dir / "embedded-seed",
        log_level="warning",
    )
    seed = Seed(cfg)
    await seed.start()
    return seed
