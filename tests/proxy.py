"""A TCP proxy a test controls: what goes through it can be cut off (every connection
closed, new ones refused) and healed, as a network partition between two machines would,
while the server behind it keeps running and keeps its data."""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class Proxy:
    """``with Proxy(port) as p: p.url``: forwards 127.0.0.1:<p.port> to 127.0.0.1:`port`."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._cut = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        """The Redis URL of the server behind it, through the proxy."""
        return f"redis://127.0.0.1:{self.port}/0"

    def cut(self) -> None:
        """Close every connection through it (what was in flight is dropped) and refuse new
        ones until `heal`."""
        with self._lock:
            self._cut = True
            sockets, self._open = self._open, []
        for sock in sockets:
            _close(sock)

    def heal(self) -> None:
        """Let connections through again."""
        with self._lock:
            self._cut = False

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.cut()
        _close(self._server)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                if self._cut:
                    _close(client)
                    continue
                upstream = socket.create_connection(("127.0.0.1", self.upstream))
                self._open += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, target), daemon=True).start()


def _pump(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    _close(source)
    _close(target)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
