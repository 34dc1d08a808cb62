"""Benchmarks: `p2p-node bench` and the load generators it starts."""
