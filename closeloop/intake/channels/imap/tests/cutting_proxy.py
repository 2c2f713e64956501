"""A real TCP proxy in front of the real Dovecot that drops the connection mid-FETCH, the way
an IMAP server process that crashes on one message does: no BYE, just the end of the stream
(`mode="eof"`) or a reset (`mode="reset"`).

It watches the client's commands; while the last one matches `command` (a regular
expression on the command line), it forwards the server's answer up to `marker` (or, without
a marker, `cut_after` bytes of it) and then cuts. `armed = False` stands for the server fixed.
"""

from __future__ import annotations

import re
import select
import socket
import struct
import threading
from contextlib import suppress


class CuttingProxy:
    def __init__(self, target_port: int, command: bytes, *, marker: bytes | None = None, cut_after: int = 200,
                 mode: str = "eof") -> None:
        self.target_port, self.command, self.marker = target_port, re.compile(command), marker
        self.cut_after, self.mode = cut_after, mode
        self.armed, self.cuts = True, 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()

    def start(self) -> CuttingProxy:
        threading.Thread(target=self._accept, daemon=True, name="cutting-proxy").start()
        return self

    def close(self) -> None:
        self._stop.set()
        with suppress(OSError):
            self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        """One connection, both directions in one thread (so a cut closes sockets nobody is reading)."""
        server = socket.create_connection(("127.0.0.1", self.target_port))
        armed, held, sent = False, b"", 0
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([client, server], [], [], 0.2)
                if client in ready:
                    data = client.recv(65536)
                    if not data:
                        break
                    for line in data.split(b"\r\n"):
                        if line:  # the command just sent: is it the one to cut?
                            armed, held, sent = self.armed and bool(self.command.search(line)), b"", 0
                    server.sendall(data)
                if server in ready:
                    data = server.recv(65536)
                    if not data:
                        client.sendall(held)
                        break
                    if not armed:
                        client.sendall(data)
                        continue
                    pending, held = held + data, b""
                    cut = self._cut_at(pending, sent)
                    if cut is not None:
                        client.sendall(pending[:cut])
                        self._cut(client, server)
                        return
                    keep = self._partial_marker(pending)
                    client.sendall(pending[:len(pending) - keep])
                    sent, held = sent + len(pending) - keep, pending[len(pending) - keep:]
        except OSError:
            pass
        for sock in (client, server):
            with suppress(OSError):
                sock.close()

    def _cut_at(self, pending: bytes, sent: int) -> int | None:
        if self.marker is not None:
            found = pending.find(self.marker)
            return None if found < 0 else found
        return max(self.cut_after - sent, 0) if sent + len(pending) > self.cut_after else None

    def _partial_marker(self, pending: bytes) -> int:
        """How many trailing bytes could be the start of the marker (held back until more comes)."""
        if self.marker is None:
            return 0
        for size in range(min(len(self.marker) - 1, len(pending)), 0, -1):
            if self.marker.startswith(pending[-size:]):
                return size
        return 0

    def _cut(self, client: socket.socket, server: socket.socket) -> None:
        self.cuts += 1
        if self.mode == "reset":  # SO_LINGER 0: close sends RST, the client reads "connection reset"
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        for sock in (client, server):
            with suppress(OSError):
                sock.close()
