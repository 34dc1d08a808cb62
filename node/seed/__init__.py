"""The seed node: the directory and presence rules, the watchers, the store, the server and the mesh."""
