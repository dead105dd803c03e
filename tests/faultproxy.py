"""A loopback TCP proxy that breaks the network on purpose, placed between a client and a real server.

Faults, each armed by a test and consumed as the traffic flows:
- ``drop_after(n)``: cut every open connection once ``n`` more response bytes went through;
- ``reject(k)``: close the open connections, then answer the next ``k`` requests with HTTP 503;
- ``stall(seconds)``: the next connection gets no answer for ``seconds``, then is closed;
- ``down()`` / ``up()``: refuse connections (reset at once), as a stopped server would;
- ``hang()`` / ``up()``: every connection, open or new, is kept open with no byte passed, as a hung
  server's would be (the stall that only a client-side timeout ends).
A slow link, for benchmarks: ``latency_s`` delays every request on its way to the server, and
``bandwidth_bytes_per_s`` caps the responses of all connections together.
``requests`` counts the HTTP requests that went through, by method, and ``request_log`` lists their
(method, path) (from each request's first line).
Only 127.0.0.1 is used; every thread ends when the proxy is closed.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections import Counter

_REQUEST_LINE = re.compile(rb"(?:^|\r\n)(GET|HEAD|PUT|POST|DELETE) (/[^ ?]*)[^ ]* HTTP/1\.[01]\r\n")


class FaultProxy:
    def __init__(
        self, upstream_port: int, *, latency_s: float = 0.0, bandwidth_bytes_per_s: float | None = None
    ) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.latency_s = latency_s
        self.bandwidth_bytes_per_s = bandwidth_bytes_per_s
        self._link_free_at = 0.0  # monotonic time at which the capped link has sent everything so far
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._drop_budget: int | None = None
        self._rejects = 0
        self._stall_s = 0.0
        self._down = False
        self._hung = False
        self._closed = threading.Event()
        self.stats = {"connections": 0, "dropped": 0, "rejected": 0, "stalled": 0, "refused": 0, "hung": 0}
        self.requests: Counter[str] = Counter()
        self.request_log: list[tuple[str, str]] = []
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------------- arming faults

    def drop_after(self, num_bytes: int) -> None:
        with self._lock:
            self._drop_budget = num_bytes

    def reject(self, num_requests: int) -> None:
        with self._lock:
            self._rejects = num_requests
        self._close_all()

    def stall(self, seconds: float) -> None:
        with self._lock:
            self._stall_s = seconds
        self._close_all()

    def down(self) -> None:
        with self._lock:
            self._down = True
        self._close_all()

    def hang(self) -> None:
        with self._lock:
            self._hung = True

    def up(self) -> None:
        with self._lock:
            self._down = False
            self._hung = False

    def close(self) -> None:
        self._closed.set()
        self._thread.join()
        self._listener.close()
        self._close_all()

    # ------------------------------------------------------------------------------ plumbing

    def _close_all(self) -> None:
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with self._lock:
            self.stats["connections"] += 1
            down, stall_s, reject = self._down, self._stall_s, self._rejects > 0
            if stall_s:
                self._stall_s = 0.0
            if reject and not down:
                self._rejects -= 1
        if down:
            self.stats["refused"] += 1
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            client.close()  # RST: connection reset
            return
        if self._hung:
            self.stats["hung"] += 1
            self._wait_while_hung()
            client.close()
            return
        if stall_s:
            self.stats["stalled"] += 1
            self._closed.wait(stall_s)
            client.close()
            return
        if reject:
            self.stats["rejected"] += 1
            with contextlib.suppress(OSError):
                client.recv(65536)
                client.sendall(
                    b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: 98\r\n"
                    b"Connection: close\r\n\r\n<?xml version='1.0'?><Error><Code>SlowDown</Code>"
                    b"<Message>Reduce your rate</Message></Error>"
                )
            client.close()
            return
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            client.close()
            return
        for conn in (client, server):  # no Nagle: small HTTP writes would wait for delayed ACKs (~40 ms)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        server.settimeout(None)
        with self._lock:
            self._connections.update((client, server))
        threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
        self._pump(server, client, True)

    def _pump(self, source: socket.socket, sink: socket.socket, is_response: bool) -> None:
        try:
            while not self._closed.is_set():
                data = source.recv(65536)
                if not data:
                    break
                cut = False
                if is_response:
                    data, cut = self._spend(data)
                    self._throttle(len(data))
                else:
                    with self._lock:
                        for method, path in _REQUEST_LINE.findall(data):
                            self.requests[method.decode()] += 1
                            self.request_log.append((method.decode(), path.decode()))
                    if self.latency_s:
                        time.sleep(self.latency_s)
                self._wait_while_hung()
                if data:
                    sink.sendall(data)
                if cut:
                    self.stats["dropped"] += 1
                    break
        except OSError:
            pass
        finally:
            for conn in (source, sink):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            with self._lock:
                self._connections.discard(source)
                self._connections.discard(sink)

    def _wait_while_hung(self) -> None:
        while self._hung and not self._closed.wait(0.05):
            pass

    def _throttle(self, num_bytes: int) -> None:
        """Wait until the capped link has room for ``num_bytes`` more (shared by all connections)."""
        if not self.bandwidth_bytes_per_s:
            return
        with self._lock:
            start = max(time.monotonic(), self._link_free_at)
            self._link_free_at = start + num_bytes / self.bandwidth_bytes_per_s
            wait_s = self._link_free_at - time.monotonic()
        if wait_s > 0:
            time.sleep(wait_s)

    def _spend(self, data: bytes) -> tuple[bytes, bool]:
        """What the drop budget lets through, and whether the connection is cut after it."""
        with self._lock:
            if self._drop_budget is None or len(data) < self._drop_budget:
                if self._drop_budget is not None:
                    self._drop_budget -= len(data)
                return data, False
            allowed, self._drop_budget = data[: self._drop_budget], None
            return allowed, True
