"""A private ``redis-server`` for one simulation: a free port, no persistence, killed at the
end."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from types import TracebackType

import redis

from app.errors import GameschedError

START_TIMEOUT_S = 10.0
ATTEMPTS = 3


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """``with PrivateRedis() as r: r.url``: a redis-server of our own on a free port."""

    def __init__(self, binary: str = "redis-server") -> None:
        path = shutil.which(binary)
        if path is None:
            raise GameschedError(f"{binary} is not on PATH; install Redis or set "
                                 "GAMESCHED_BROKER_URL=redis://HOST:PORT/DB")
        self.binary = path
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="gamesched-redis-")

    @property
    def url(self) -> str:
        """The broker URL of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        """The server's process id."""
        if self.proc is None:
            raise GameschedError("the private redis-server is not running")
        return self.proc.pid

    def __enter__(self) -> PrivateRedis:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
        self._dir.cleanup()

    def start(self) -> None:
        """Start the server (on a new free port the first time, on the same one after a
        `stop`) and return once it answers PING."""
        problem = "no attempt made"
        for _ in range(ATTEMPTS):
            port = self.port or free_port()
            self.proc = subprocess.Popen(
                [self.binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", self._dir.name, "--protected-mode", "no"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            problem = self._wait_ready(port)
            if not problem:
                self.port = port
                return
            self.stop()
        raise GameschedError(f"could not start {self.binary}: {problem}")

    def stop(self) -> None:
        """Stop the server (its data is gone: nothing is persisted)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL the server: its queued messages die with it."""
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        """Kill the server and start an empty one on the same port."""
        self.kill()
        self.start()

    def _wait_ready(self, port: int) -> str:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1.0)
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    code = self.proc.returncode if self.proc else None
                    return f"exited with code {code} on port {port}"
                try:
                    if client.ping():
                        return ""
                except redis.ConnectionError:
                    time.sleep(0.02)
            return f"no answer on port {port} within {START_TIMEOUT_S:.0f}s"
        finally:
            client.close()
