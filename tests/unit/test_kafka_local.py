from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tickstream.errors import EnvironmentProblem
from tickstream.kafka.local import LocalKafka, new_cluster_id, port_in_use, server_properties


def test_server_properties_is_a_single_kraft_node_on_loopback(tmp_path: Path) -> None:
    props = dict(
        line.split("=", 1) for line in server_properties(19092, 19093, tmp_path).splitlines()
    )
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["log.dirs"] == str(tmp_path)
    assert props["auto.create.topics.enable"] == "false"
    assert "zookeeper.connect" not in props


def test_cluster_id_form() -> None:
    ids = {new_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == 22 and "=" not in i for i in ids)
    # One random id in 64 starts with "-", which the storage tool reads as an option: in 2,000
    # draws the old generator made ~31 of them.
    assert not any(i.startswith("-") for i in ids)


def test_port_in_use() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert port_in_use(port)
    assert not port_in_use(port)


def test_unwritable_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "a-file"
    home.write_text("not a folder")
    with pytest.raises(EnvironmentProblem, match=r"is not writable.*set TICKSTREAM_HOME"):
        LocalKafka(home).start()


def test_status_of_a_never_started_broker(tmp_path: Path) -> None:
    broker = LocalKafka(tmp_path)
    assert broker.status() is None
    assert broker.stop() == (None, False)
