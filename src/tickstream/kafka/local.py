"""A real single-node Kafka broker on 127.0.0.1, for the one-machine mode and for tests.

KRaft, one process acting as broker and controller, started from the jars Maven
put in the cache, running in the background. Its state lives in
``<TICKSTREAM_HOME>/kafka/``: the formatted data directory, the generated
configuration, the broker's logs and a ``broker.json`` that says which process
serves which port.

>>> broker = LocalKafka(Path(".tickstream"), port=9092)   # doctest: +SKIP
>>> broker.start().bootstrap                              # doctest: +SKIP
'127.0.0.1:9092'
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from tickstream.errors import EnvironmentProblem
from tickstream.jvm.jars import ensure_jars
from tickstream.jvm.java import find_java
from tickstream.kafka.admin import wait_ready

HOST = "127.0.0.1"
DEFAULT_PORT = 9092
_STATE_FILE = "broker.json"
_MAIN_CLASS = "kafka.Kafka"


@dataclass(frozen=True)
class BrokerInfo:
    pid: int
    port: int
    controller_port: int
    data_dir: str
    log_file: str

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"


@dataclass(frozen=True)
class StartResult:
    info: BrokerInfo
    already_running: bool

    @property
    def bootstrap(self) -> str:
        return self.info.bootstrap


def port_in_use(port: int, host: str = HOST) -> bool:
    """True if something listens on the port. Like the broker, ignore closed connections that
    linger in TIME_WAIT (after a restart), which a plain bind would trip over."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (22 chars).

    Never starting with "-" (as Kafka's own ``Uuid.randomUuid``): the storage tool's command
    line would read such an id as an option, and the broker would not start (1 time in 64).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def server_properties(
    port: int,
    controller_port: int,
    data_dir: Path,
    *,
    node_id: int = 1,
    voters: str | None = None,
    extra: dict[str, str] | None = None,
) -> str:
    """The broker's configuration: broker and controller in one process, PLAINTEXT on loopback.

    Alone by default; with ``voters`` (``1@host:port,2@host:port,...``) one node of a cluster.
    """
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": voters or f"{node_id}@{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "3",
        # Topics are created on purpose (tickstream kafka start, the pipeline), never by a typo.
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "3",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "3",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "log.retention.hours": "168",
        "message.max.bytes": "10485760",
        **(extra or {}),
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


def log4j2_properties(log_file: Path) -> str:
    """Broker logs go to a rolling file, not to the terminal that started it."""
    return f"""status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.filePattern = {log_file}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = info
logger.apache.name = org.apache.kafka
logger.apache.level = info
"""


class LocalKafka:
    """Start, stop and inspect the local broker whose state lives under ``home/kafka``."""

    def __init__(
        self,
        home: Path,
        port: int = DEFAULT_PORT,
        *,
        jars_dir: Path | None = None,
        heap: str = "1g",
        node_id: int = 1,
        controller_port: int | None = None,
        voters: str | None = None,
        cluster_id: str | None = None,
        extra_props: dict[str, str] | None = None,
        scram_users: dict[str, str] | None = None,
    ) -> None:
        self.node_id = node_id
        self.scram_users = scram_users or {}
        self.fixed_controller_port = controller_port
        self.voters = voters
        self.cluster_id = cluster_id
        self.extra_props = extra_props
        self.home = home.resolve()
        self.jars_dir = jars_dir or self.home / "jars"
        self.port = port
        self.heap = heap
        self.state_dir = self.home / "kafka"
        self.data_dir = self.state_dir / "data"
        self.log_dir = self.state_dir / "logs"
        self._proc: subprocess.Popen[bytes] | None = None

    # --- inspecting ---------------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.state_dir / _STATE_FILE

    def _read_state(self) -> BrokerInfo | None:
        try:
            return BrokerInfo(**json.loads(self.state_file.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def _is_our_process(self, pid: int) -> bool:
        """True if ``pid`` is alive and is this broker (not a reused pid, not a zombie)."""
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        proc = Path(f"/proc/{pid}")
        if proc.is_dir():
            try:
                if (proc / "stat").read_text().split(") ", 1)[1].startswith("Z"):
                    return False
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                return False
        else:  # no /proc (macOS): ask ps
            out = subprocess.run(
                ["ps", "-p", str(pid), "-o", "command="],
                capture_output=True,
                text=True,
                check=False,
            )
            cmdline = out.stdout
        return _MAIN_CLASS in cmdline and str(self.state_dir) in cmdline

    def status(self) -> BrokerInfo | None:
        """The running broker, or None."""
        info = self._read_state()
        if info is None or not self._is_our_process(info.pid):
            return None
        return info

    # --- starting -----------------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> StartResult:
        """Start the broker (or find it running) and return once it answers admin requests."""
        result = self.launch()
        if not result.already_running:
            self.await_ready(result.info, timeout)
        return result

    def launch(self) -> StartResult:
        """Start the broker process (or find it running), without waiting for it."""
        running = self.status()
        if running is not None:
            if running.port != self.port:
                raise EnvironmentProblem(
                    f"the local broker already runs on {running.bootstrap} "
                    f"(data in {running.data_dir})",
                    "use that address, or `tickstream kafka stop` first to move it",
                )
            return StartResult(running, already_running=True)

        self._check_writable()
        if port_in_use(self.port):
            raise EnvironmentProblem(
                f"port {self.port} on {HOST} is already in use by another process",
                "stop that process, or start the broker on another port "
                f"(--port, e.g. {self.port + 1})",
            )
        java = find_java()
        jars = ensure_jars(self.jars_dir)
        classpath = os.pathsep.join(str(p) for p in jars.kafka_classpath())

        controller_port = self.fixed_controller_port or free_port()
        while controller_port == self.port:
            controller_port = free_port()
        props = self.state_dir / "server.properties"
        log4j = self.state_dir / "log4j2.properties"
        log_file = self.log_dir / "server.log"
        props.write_text(
            server_properties(
                self.port,
                controller_port,
                self.data_dir,
                node_id=self.node_id,
                voters=self.voters,
                extra=self.extra_props,
            ),
            "utf-8",
        )
        log4j.write_text(log4j2_properties(log_file), "utf-8")

        jvm_opts = [
            *os.environ.get("KAFKA_HEAP_OPTS", f"-Xms256m -Xmx{self.heap}").split(),
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={self.log_dir}",
        ]
        if not (self.data_dir / "meta.properties").is_file():
            self._format(str(java.executable), jvm_opts, classpath, props)

        stdout = (self.log_dir / "stdout.log").open("ab")
        self._proc = subprocess.Popen(
            [str(java.executable), *jvm_opts, "-cp", classpath, _MAIN_CLASS, str(props)],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the terminal that started it does not kill it
        )
        stdout.close()
        info = BrokerInfo(
            pid=self._proc.pid,
            port=self.port,
            controller_port=controller_port,
            data_dir=str(self.data_dir),
            log_file=str(log_file),
        )
        self.state_file.write_text(json.dumps(asdict(info), indent=2) + "\n", "utf-8")
        return StartResult(info, already_running=False)

    def await_ready(self, info: BrokerInfo, timeout: float) -> None:
        """Return once the broker answers an admin request; stop it and explain if it does not."""
        log_file = Path(info.log_file)
        if not wait_ready(info.bootstrap, timeout, alive=lambda: self._is_our_process(info.pid)):
            alive = self._is_our_process(info.pid)
            if alive:
                self.stop()
            what = f"did not answer within {timeout:g}s" if alive else "exited during start-up"
            raise EnvironmentProblem(
                f"the Kafka broker {what}; its log ends with: {self._log_tail()}",
                f"read {log_file} and {self.log_dir / 'stdout.log'}",
            )

    def _check_writable(self) -> None:
        try:
            for folder in (self.state_dir, self.data_dir, self.log_dir):
                folder.mkdir(parents=True, exist_ok=True)
            probe = self.data_dir / ".write-test"
            probe.write_text("ok", "utf-8")
            probe.unlink()
        except OSError as exc:
            raise EnvironmentProblem(
                f"the broker's data directory {self.data_dir} is not writable ({exc.strerror})",
                "fix its permissions, or set TICKSTREAM_HOME to a writable folder",
            ) from None

    def _format(self, java: str, jvm_opts: list[str], classpath: str, props: Path) -> None:
        cmd = [
            java,
            *jvm_opts,
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            self.cluster_id or new_cluster_id(),
            "--config",
            str(props),
            "--ignore-formatted",
        ]
        for user, password in self.scram_users.items():  # SCRAM users exist from the first start
            cmd += ["--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]"]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
        if result.returncode != 0:
            raise EnvironmentProblem(
                f"formatting the broker's storage in {self.data_dir} failed: "
                f"{(result.stderr or result.stdout).strip()[-500:]}",
                f"remove {self.data_dir} if it holds nothing you need, then start again",
            )

    def _log_tail(self, lines: int = 5) -> str:
        for name in ("server.log", "stdout.log"):
            path = self.log_dir / name
            with contextlib.suppress(OSError):
                text = path.read_text(encoding="utf-8", errors="replace").strip()
                interesting = [ln for ln in text.splitlines() if "ERROR" in ln or "Exception" in ln]
                picked = (interesting or text.splitlines())[-lines:]
                if picked:
                    return " | ".join(ln.strip() for ln in picked)[-800:]
        return "(no log)"

    # --- stopping -----------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs (benchmarks read its CPU time)."""
        return self._proc.pid if self._proc is not None else None

    def stop(self, timeout: float = 60.0) -> tuple[BrokerInfo | None, bool]:
        """Stop the broker: SIGTERM, wait for its controlled shutdown, SIGKILL past ``timeout``.

        Returns (the broker that ran or None, whether it had to be killed).
        """
        info = self.status()
        if info is None:
            self.state_file.unlink(missing_ok=True)
            return None, False
        os.kill(info.pid, signal.SIGTERM)
        killed = not self._wait_exit(info.pid, timeout)
        if killed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(info.pid, signal.SIGKILL)
            self._wait_exit(info.pid, 10)
        self.state_file.unlink(missing_ok=True)
        self._proc = None
        return info, killed

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not self._is_our_process(pid):
                return True
            time.sleep(0.1)
        return False
