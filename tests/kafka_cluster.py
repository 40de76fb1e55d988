"""A local multi-node KRaft cluster, for the fault tests (tickstream itself runs one node)."""

from __future__ import annotations

from pathlib import Path

from tickstream.kafka.local import HOST, LocalKafka, free_port, new_cluster_id


class LocalKafkaCluster:
    """Several KRaft nodes on 127.0.0.1 (each broker and controller), for fault tests.

    Replication defaults follow the node count: replication factor = size and
    ``min.insync.replicas`` = size - 1, so one node can fail without losing writes.
    """

    def __init__(
        self, home: Path, size: int = 3, *, jars_dir: Path | None = None, heap: str = "512m"
    ) -> None:
        ports = [free_port() for _ in range(2 * size)]
        while len(set(ports)) != len(ports):
            ports = [free_port() for _ in range(2 * size)]
        client_ports, controller_ports = ports[:size], ports[size:]
        voters = ",".join(f"{i + 1}@{HOST}:{p}" for i, p in enumerate(controller_ports))
        replication = {
            "default.replication.factor": str(size),
            "min.insync.replicas": str(max(1, size - 1)),
            "offsets.topic.replication.factor": str(size),
            "transaction.state.log.replication.factor": str(size),
            "transaction.state.log.min.isr": str(max(1, size - 1)),
            "share.coordinator.state.topic.replication.factor": str(size),
            "share.coordinator.state.topic.min.isr": str(max(1, size - 1)),
        }
        cluster_id = new_cluster_id()
        self.nodes = [
            LocalKafka(
                home / f"node-{i + 1}",
                port=client_ports[i],
                jars_dir=jars_dir,
                heap=heap,
                node_id=i + 1,
                controller_port=controller_ports[i],
                voters=voters,
                cluster_id=cluster_id,
                extra_props=replication,
            )
            for i in range(size)
        ]

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{HOST}:{node.port}" for node in self.nodes)

    def start(self, timeout: float = 120.0) -> None:
        """Launch every node first (a quorum needs them all), then wait for each."""
        launched = [node.launch() for node in self.nodes]
        for node, result in zip(self.nodes, launched, strict=True):
            node.await_ready(result.info, timeout)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop(timeout=30)
