"""What lives on disk: private data dirs, SQLite with group commit, numbered schema migrations."""
