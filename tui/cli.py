"""`p2p-tui --name Sally`: the terminal chat client.

Every mistake on the command line (a config error, a seed URL that cannot be dialled, a data
dir that cannot be used) is one line on stderr and exit code 2, before the screen is taken.
"""

from __future__ import annotations

import argparse
import logging
import sys

from node.cli.common import add_user_options, user_config
from node.errors import P2PError
from node.runtime import configure_logging
from node.storage.files import default_data_dir, secure_dir
from node.wire.names import fold_name, require_name

from .seed_url import check_seed_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="p2p-tui", description="p2p-chat in the terminal.")
    add_user_options(parser)
    parser.add_argument(
        "--no-embedded-seed",
        action="store_true",
        help="do not start a seed in this process when none of the seeds answers",
    )
    args = parser.parse_args(argv)
    try:
        config = user_config(args)
        seeds = [check_seed_url(url) for url in config.seeds]
        data_dir = config.data_dir or default_data_dir(
            "users", fold_name(require_name(config.name))
        )
    except P2PError as exc:
        print(f"p2p-tui: {exc}", file=sys.stderr)
        return 2
    try:
        secure_dir(data_dir)
        # the screen belongs to the app: logs go to a file in the data dir
        configure_logging(config.log_level, logging.FileHandler(data_dir / "tui.log"))
    except (P2PError, OSError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        if not why.startswith("cannot use the data dir"):
            why = f"cannot use the data dir {data_dir}: {why}"
        print(f"p2p-tui: {why}; pick another with --data-dir", file=sys.stderr)
        return 2
    from .app import ChatApp

    app = ChatApp(
        config.model_copy(update={"data_dir": data_dir, "seeds": seeds}),
        embedded_seed=not args.no_embedded_seed,
    )
    app.run()
    return 0
