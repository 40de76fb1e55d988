"""A local multi-node KRaft cluster, for the fault tests (tickstream itself runs one node)."""

from __future__ import annotations

import random
import socket
from pathlib import Path

from tickstream.kafka.local import HOST, LocalKafka, new_cluster_id

EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")


def lasting_ports(count: int = 1) -> list[int]:
    """``count`` distinct free ports below the kernel's ephemeral range, for brokers that are
    stopped and started again on the same port.

    A free port from the range (``free_port``: bind to 0) can be handed, while its broker is
    down, to any client connection, even to the producer's own retry to that very port (a TCP
    self-connect); the restart then finds the port in use. That failed a CI run, three minutes
    into the outage scenario. Below the range, only a listener can take the port.
    """
    low = int(EPHEMERAL.read_text().split()[0]) if EPHEMERAL.exists() else 32768
    ports: list[int] = []
    while len(ports) < count:
        port = random.randrange(max(1024, low - 12000), low)
        if port in ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:  # taken: try another
                continue
        ports.append(port)
    return ports


class LocalKafkaCluster:
    """Several KRaft nodes on 127.0.0.1 (each broker and controller), for fault tests.

    Replication defaults follow the node count: replication factor = size and
    ``min.insync.replicas`` = size - 1, so one node can fail without losing writes.
    """

    def __init__(
        self, home: Path, size: int = 3, *, jars_dir: Path | None = None, heap: str = "512m"
    ) -> None:
        ports = lasting_ports(2 * size)
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
