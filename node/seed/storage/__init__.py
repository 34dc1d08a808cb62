"""Where a seed's replicated state lives: the seam (base), SQLite (default) and NATS JetStream."""
