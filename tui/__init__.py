"""p2p-chat terminal UI (Textual)."""
