"""Inside the sandbox: the submission's published ports, on the sandbox's own 127.0.0.1.

The sandbox has no network, and the submission's containers run on an internal network of its
own, so "publish port 8000 and fetch ``http://127.0.0.1:<port>/``" cannot work the usual way.
It works this way instead: the gate (:mod:`coursekit.grading.gate.server`) gives each published
port a number and tells this watcher (a long poll on the gate's socket, ``GET /coursekit/ports``),
which listens on ``127.0.0.1:<number>`` inside the sandbox, then says so (``POST
/coursekit/ports/ready``) before the container's start call returns to the submission. Each
connection to such a port goes to the gate as ``POST /coursekit/tunnel?port=<number>`` with
``Upgrade: tcp``; after the gate's ``101`` the bytes flow both ways, to the container's port on
its network. So the submission's code (and the exercise's check helpers) use ``127.0.0.1`` and
the port Docker reports, as on the learner's own machine.

HTTP is spoken with the standard library's :mod:`http.client` over the unix socket. The watcher
runs in the worker (PID 1), never in the student's kernel.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading

from ..pipe import pipe


class _Unix(http.client.HTTPConnection):
    """An HTTP connection over the gate's unix socket."""

    def __init__(self, path: str, timeout: float | None = 60):
        super().__init__("gate", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class Ports:
    """Watches the gate's published ports and listens on each of them (a thread; ``stop`` ends it)."""

    def __init__(self, gate_socket: str):
        self.gate = gate_socket
        self.listeners: dict[int, socket.socket] = {}
        self.version = -1
        self.stopped = threading.Event()

    def start(self) -> "Ports":
        threading.Thread(target=self._watch, name="ports", daemon=True).start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        for s in self.listeners.values():
            with contextlib.suppress(OSError):
                s.close()

    def _watch(self) -> None:
        while not self.stopped.is_set():
            try:
                conn = _Unix(self.gate, timeout=40)
                conn.request("GET", f"/coursekit/ports?after={self.version}")
                doc = json.loads(conn.getresponse().read() or b"{}")
                conn.close()
            except (OSError, ValueError, http.client.HTTPException):
                if self.stopped.wait(0.5):
                    return
                continue
            if self.stopped.is_set():  # (an answer that came after stop: listen on nothing more)
                return
            for port in doc.get("ports", []):
                if port not in self.listeners:
                    self._listen(int(port))
            self.version = int(doc.get("version", self.version))
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = _Unix(self.gate, timeout=10)
                conn.request("POST", f"/coursekit/ports/ready?version={self.version}")
                conn.getresponse().read()
                conn.close()

    def _listen(self, port: int) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            s.close()
            return  # taken in the sandbox already (by the submission's own code): nothing to do
        s.listen(32)
        self.listeners[port] = s
        threading.Thread(target=self._accept, args=(s, port), daemon=True).start()

    def _accept(self, listener: socket.socket, port: int) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(conn, port), daemon=True).start()

    def _tunnel(self, local: socket.socket, port: int) -> None:
        gate = _Unix(self.gate, timeout=None)
        try:
            gate.request("POST", f"/coursekit/tunnel?port={port}", headers={"Connection": "Upgrade", "Upgrade": "tcp"})
            resp = gate.getresponse()
            if resp.status == 101:  # else nothing answers there: the client sees the connection close
                pipe(local, gate.sock, read_b=resp.fp.read1)  # (what the response's reader already holds, too)
        except (OSError, http.client.HTTPException):
            pass
        finally:
            for s in (local, gate.sock):
                with contextlib.suppress(OSError, AttributeError):
                    s.close()
