"""The fleet's tests start their NATS cluster with the benchmark's code (one copy, in node/)."""

from node.bench.natscluster import NatsCluster, nats_server_binary

__all__ = ["NatsCluster", "nats_server_binary"]
