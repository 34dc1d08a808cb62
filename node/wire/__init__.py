"""Everything that crosses a socket: frames and their parsing, sockets, queues, correlation, limits."""
