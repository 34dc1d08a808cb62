"""p2p-chat networking core: protocol, identity, seeds and user nodes (never imports textual)."""

__version__ = "0.1.0"
