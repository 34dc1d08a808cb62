"""`p2p-tui` entry point."""

import sys


def main() -> int:
    print("p2p-tui: the terminal UI is not built yet; use `p2p-node user` meanwhile", file=sys.stderr)
    return 1
