"""The only way out of a build container: a relay to the AWS sandbox, and nothing else.

A CodeBuild-style build (:mod:`coursekit.cicd.build.runner`) runs the learner's commands in a
container that sits on an **internal** Docker network: no route to the internet, to the
learner's network, or to real AWS. One other container shares that network, the relay,
reachable there as ``aws`` (``AWS_ENDPOINT_URL=http://aws:4566``). What the relay receives
it passes to the moto server of the learner's sandbox (``coursekit.aws.sandbox(server=True)``),
which listens on ``127.0.0.1`` of this machine only.

A container cannot connect to a server bound to the host's loopback (only ``--network host``
can, and a host-network build could reach everything else too). So the connections go the
other way round: the relay also publishes a control port on ``127.0.0.1``, this process keeps
a few idle connections open to it, and when a build opens a connection to ``aws:4566`` the
relay pairs it with an idle one and says "go". This process then connects to moto and copies
bytes both ways. The build reaches moto, and only moto; the same design works on Docker
Desktop, where ``--network host`` does not reach the host's loopback at all.

The relay runs the course's Python image (``coursekit/python:3.11``) and is labelled and
removed like every coursekit container. Used by :func:`coursekit.cicd.build.runner.run`
(lesson ``08-ci-cd``, CodeBuild buildspecs).
"""
from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from typing import Any

from ..docker import engine
from ..docker.labels import ROLE_LABEL
from ..errors import AWSSandboxError

RELAY_IMAGE = "coursekit/python:3.11"
ALIAS = "aws"                     # the relay's name on the build network
PORT = 4566                       # where builds connect (the port LocalStack made familiar)
CONTROL = 7000                    # the relay's control port, published on 127.0.0.1
POOL = 4                          # idle connections kept open to the relay

# Runs inside the relay container (stdlib only). Builds connect to PORT from the internal
# network; this process's idle connections arrive on CONTROL from outside it. Each build
# connection is paired with one idle connection: b"R" = registered, b"G" = go.
RELAY_SCRIPT = r"""
import ipaddress, os, queue, socket, threading
inner = ipaddress.ip_network(os.environ["CK_INNER_SUBNET"])
idle = queue.Queue()

def inside(conn):
    return ipaddress.ip_address(conn.getpeername()[0]) in inner

def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    for s in (b, a):
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass

def serve(conn):
    try:
        host = idle.get(timeout=30)
        host.sendall(b"G")
    except Exception:
        conn.close()
        return
    threading.Thread(target=pipe, args=(host, conn), daemon=True).start()
    pipe(conn, host)

def listen(port, accept):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(64)
    while True:
        conn, _ = srv.accept()
        accept(conn)

def control(conn):
    if inside(conn):          # a build may not pose as the host
        conn.close()
        return
    conn.sendall(b"R")
    idle.put(conn)

def client(conn):
    if not inside(conn):      # only builds on the internal network
        conn.close()
        return
    threading.Thread(target=serve, args=(conn,), daemon=True).start()

threading.Thread(target=listen, args=(int(os.environ["CK_CONTROL"]), control), daemon=True).start()
print("relay ready", flush=True)
listen(int(os.environ["CK_PORT"]), client)
"""


def _pipe(a: socket.socket, b: socket.socket) -> None:
    """Copy a -> b until a closes, then half-close b (the other direction may still be busy)."""
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        b.shutdown(socket.SHUT_WR)


class Relay:
    """A relay container on ``network`` plus this process's pool of connections to it.

    ``target`` is the ``(host, port)`` of the moto server (a loopback address). Use as a
    context manager: the container is removed and every connection closed on exit.
    """

    def __init__(self, network: Any, target: tuple[str, int], *, lesson: str | None = None):
        host = target[0]
        if not ipaddress.ip_address(socket.gethostbyname(host)).is_loopback:
            raise AWSSandboxError(f"the AWS relay only forwards to this machine's own moto server, not {host}",
                                  "start the sandbox with coursekit.aws.sandbox(server=True)")
        self.network, self.target, self.lesson = network, target, lesson
        self.container = None
        self.control_port = 0
        self.ip = ""                      # the relay's address on the build network
        self.connections = 0              # build connections forwarded (for tests and the lesson)
        self._stop = threading.Event()
        self._socks: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._ready = threading.Event()   # set once the relay has registered an idle connection

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 30) -> "Relay":
        self.network.reload()
        subnet = self.network.attrs["IPAM"]["Config"][0]["Subnet"]
        self.container = engine.create(
            RELAY_IMAGE, ["python3", "-u", "-c", RELAY_SCRIPT], lesson=self.lesson, init=True,
            environment={"CK_INNER_SUBNET": subnet, "CK_CONTROL": str(CONTROL), "CK_PORT": str(PORT)},
            ports={f"{CONTROL}/tcp": None}, labels={ROLE_LABEL: "aws-relay"})
        try:
            self.network.connect(self.container, aliases=[ALIAS])
            self.container.start()
            self.control_port = engine.host_port(self.container, CONTROL)  # reloads the container
            self.ip = self.container.attrs["NetworkSettings"]["Networks"][self.network.name]["IPAddress"]
            for _ in range(POOL):
                self._spawn()
            deadline = time.monotonic() + timeout
            while not self._ready.is_set():
                if time.monotonic() > deadline:
                    raise AWSSandboxError(f"the AWS relay did not answer within {timeout:.0f} s; its output:\n"
                                          f"{engine.log_tail(self.container)}",
                                          "run `coursekit doctor`, then try again")
                self._ready.wait(0.05)
        except BaseException:
            self.stop()
            raise
        return self

    def __enter__(self) -> "Relay":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        """Close every connection and remove the relay container. Idempotent, never raises."""
        self._stop.set()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            with contextlib.suppress(OSError):
                s.close()
        if self.container is not None:
            engine.remove_quietly(self.container)
            self.container = None

    # ------------------------------------------------------------------ the pool
    def _spawn(self) -> None:
        if self._stop.is_set():
            return
        threading.Thread(target=self._one, name="coursekit-aws-relay", daemon=True).start()

    def _track(self, s: socket.socket, add: bool = True) -> None:
        with self._lock:
            (self._socks.add if add else self._socks.discard)(s)

    def _one(self) -> None:
        """One idle connection: register with the relay, wait for "go", then forward to moto."""
        up = None
        while not self._stop.is_set():
            try:
                up = socket.create_connection(("127.0.0.1", self.control_port), timeout=5)
                self._track(up)
                up.settimeout(5)
                if up.recv(1) == b"R":  # before the relay listens, docker's proxy accepts and closes
                    break
            except OSError:
                pass
            if up is not None:
                self._track(up, False)
                up.close()
                up = None
            self._stop.wait(0.05)
        if up is None:
            return
        self._ready.set()
        try:
            up.settimeout(None)
            go = up.recv(1)
        except OSError:
            go = b""
        if go != b"G" or self._stop.is_set():
            self._track(up, False)
            up.close()
            return
        self._spawn()  # keep the pool full
        with self._lock:
            self.connections += 1
        try:
            down = socket.create_connection(self.target, timeout=10)
        except OSError:
            self._track(up, False)
            up.close()
            return
        self._track(down)
        back = threading.Thread(target=_pipe, args=(down, up), daemon=True)
        back.start()
        _pipe(up, down)
        back.join()
        for s in (up, down):
            self._track(s, False)
            s.close()
