"""A TCP proxy of the tests' own, on 127.0.0.1, between the worker and
PostgreSQL. It can

- freeze: stop forwarding in both directions without closing anything (as a
  network that silently drops packets looks to the application), and resume;
- hold cancel requests: a new connection whose first packet is a PostgreSQL
  CancelRequest is accepted and never answered (an unresponsive server on
  the cancel path), while every other connection is forwarded.

While frozen, the kernel still completes handshakes and acknowledges bytes
into its buffers; nothing reaches the other side until resume().
"""
import socket
import struct
import threading

CANCEL_REQUEST_CODE = 80877102


class TcpProxy:
    def __init__(self, upstream_port, upstream_host="127.0.0.1"):
        self.upstream = (upstream_host, upstream_port)
        self.flowing = threading.Event()
        self.flowing.set()
        self.hold_cancels = False
        self.held_cancels = 0          # cancel requests received and held
        self.forwarded = 0             # connections forwarded
        self._lock = threading.Lock()
        self._socks = []
        self._held = []
        self._closed = False
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, url):
        """`url` (postgresql://...@127.0.0.1:PORT/...) through the proxy."""
        return url.replace(":%d/" % self.upstream[1], ":%d/" % self.port)

    def freeze(self):
        self.flowing.clear()

    def resume(self):
        self.flowing.set()

    def release_cancels(self):
        """Closes held cancel connections (the requester's wait ends)."""
        with self._lock:
            held, self._held = self._held, []
        for s in held:
            self._close(s)

    def close(self):
        self._closed = True
        self.flowing.set()
        self._close(self.listener)
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            self._close(s)

    # -- internals ---------------------------------------------------------

    def _track(self, s):
        with self._lock:
            self._socks.append(s)

    def _close(self, s):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            s.close()
        except OSError:
            pass

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self._track(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _recv_exact(self, s, n):
        data = b""
        while len(data) < n:
            chunk = s.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def _serve(self, client):
        self.flowing.wait()
        try:
            head = self._recv_exact(client, 8)
        except OSError:
            head = None
        if head is None:
            self._close(client)
            return
        length, code = struct.unpack("!II", head)
        if self.hold_cancels and length == 16 and code == CANCEL_REQUEST_CODE:
            try:
                self._recv_exact(client, 8)
            except OSError:
                pass
            with self._lock:
                self._held.append(client)
                self.held_cancels += 1
            return   # never answered, never closed (until release/close)
        try:
            up = socket.create_connection(self.upstream, timeout=10)
            up.settimeout(None)
        except OSError:
            self._close(client)
            return
        self._track(up)
        with self._lock:
            self.forwarded += 1
        up.sendall(head)
        threading.Thread(target=self._pump, args=(client, up), daemon=True).start()
        threading.Thread(target=self._pump, args=(up, client), daemon=True).start()

    def _pump(self, src, dst):
        while True:
            self.flowing.wait()
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            # a packet read just before a freeze is held back as well
            self.flowing.wait()
            if not data:
                self._close(dst)
                self._close(src)
                return
            try:
                dst.sendall(data)
            except OSError:
                self._close(src)
                return
