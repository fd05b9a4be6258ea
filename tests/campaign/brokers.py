"""Private broker servers a test may kill and restart: a redis-server and a RabbitMQ node on free
ports, with their own data directories (the shared servers on 6379/5672 are never touched)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")  # the Debian package's script, not the su wrapper


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


class _Server:
    """A server process in its own session (so SIGKILL reaches every process of it)."""

    port: int
    dir: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir,
                                         start_new_session=True)

    def _wait_up(self, ready: object, timeout_s: float) -> float:
        """Seconds until `ready()` answered true."""
        t0 = time.monotonic()
        while not ready():  # type: ignore[operator]
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.log.name}: exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            if time.monotonic() - t0 > timeout_s:
                raise RuntimeError(f"{self.log.name}: not up after {timeout_s} s: {self.log.read_text()[-2000:]}")
            time.sleep(0.2)
        return time.monotonic() - t0

    def kill(self) -> None:
        """SIGKILL, no goodbye: what the server kept only in memory is gone."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        deadline = time.monotonic() + 10
        while _listening(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def close(self) -> None:
        self.kill()


class RedisServer(_Server):
    """redis-server on a free port without persistence (a restart loses every queued message)."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = workdir / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 30) -> float:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server")
        self._spawn([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                     "--dir", str(self.dir)])
        return self._wait_up(lambda: _listening(self.port), timeout_s)


class RabbitNode(_Server):
    """A RabbitMQ node of its own (node name, ports, Mnesia and log directories, no plugins, so
    no management listener on 15672); a restart keeps its Mnesia directory, as a real one would."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        (workdir / "home").mkdir(parents=True, exist_ok=True)
        self.port, dist = free_port(), free_port()
        self.log = workdir / "rabbitmq.out"
        plugins = workdir / "enabled_plugins"
        plugins.write_text("[].\n")
        conf = workdir / "rabbitmq.conf"
        conf.write_text(f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\n")
        base = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        self.env = {**base, "HOME": str(workdir / "home"),  # its own Erlang cookie
                    "RABBITMQ_CONF_ENV_FILE": "/dev/null",  # not the shared node's rabbitmq-env.conf
                    "RABBITMQ_NODENAME": f"hstest{uuid.uuid4().hex[:8]}@localhost",
                    "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(self.port),
                    "RABBITMQ_DIST_PORT": str(dist), "RABBITMQ_CONFIG_FILE": str(conf),
                    "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins), "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"),
                    "RABBITMQ_LOG_BASE": str(workdir / "log"), "RABBITMQ_PID_FILE": str(workdir / "pid"),
                    "RABBITMQ_PLUGINS_EXPAND_DIR": str(workdir / "expand"), "ERL_EPMD_ADDRESS": "127.0.0.1",
                    "ERL_FLAGS": "-kernel inet_dist_use_interface {127,0,0,1}"}

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def _accepts(self) -> bool:
        import pika

        try:
            pika.BlockingConnection(pika.URLParameters(self.url + "?connection_attempts=1&socket_timeout=2")).close()
        except Exception:  # pika raises several unrelated types while the node boots
            return False
        return True

    def start(self, timeout_s: float = 120) -> float:
        if not RABBITMQ_SERVER.is_file():
            raise FileNotFoundError(str(RABBITMQ_SERVER))
        self._spawn([str(RABBITMQ_SERVER)], self.env)
        return self._wait_up(self._accepts, timeout_s)
