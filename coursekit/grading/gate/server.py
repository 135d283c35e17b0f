"""The gate: a Docker API endpoint for one submission, on a unix socket, in front of the real engine.

``with Gate(folder, limits) as gate:`` makes the submission's namespace on the engine (its own
internal network), listens on ``gate.socket`` (``folder/docker.sock``, mode 0666: the sandbox's
non-root user connects to it through a bind mount of ``folder``, and has no network at all) and
serves each connection in a thread: every request is read whole with h11
(:mod:`coursekit.grading.gate.wire`), checked by the submission's
:class:`~coursekit.grading.gate.policy.Policy`, then either refused there or sent to the real
engine (a fresh connection each time, the API version prefix kept) and its answer passed back:
streamed as it comes (logs with ``follow``, a build's progress, ``wait``), rewritten when it lists
or describes objects, or, after a ``101`` (``attach``, ``exec start``), piped both ways as raw
bytes. When the block ends, every connection is closed and everything the submission made is
removed; it all carries the grader's labels, so the grader's reaper removes it too if the grader
is killed.

The real engine's socket is never in the sandbox: only this one, and only this policy behind it.
Docker's authorization plugins were not used: they see requests but cannot change them or filter
answers (so parallel students would see each other's containers), and they apply to every
client of the daemon, the grader included; a socket proxy that filters by path alone (such as
HAProxy-based ones) cannot check a request's body.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from pathlib import Path

import h11

from ...docker import engine
from ...docker.labels import IMAGE_LABEL
from ...dockerfile.limits import ContainerLimits
from ...errors import GradingError
from .policy import Answer, Caps, Forward, Policy, Refused, route
from .tenant import Tenant
from ..pipe import pipe
from .wire import Peer, TooBig, passable

#: What a submission's own containers run under (the sandbox itself is GradeLimits').
CONTAINER_LIMITS = ContainerLimits(memory="512m", pids=256, cpus=1.0, network="none")
#: Connections one sandbox may hold open to its gate at once (the docker SDK keeps a few idle ones per client;
#: a build holds its shell's exec session and its log stream; the worker's port watcher one more).
MAX_CONNECTIONS = 64


def course_images() -> dict[str, str]:
    """The course's images on this engine: tag -> id (the images that carry their own name as label)."""
    out = {}
    for im in engine.client().api.images(filters={"label": IMAGE_LABEL}):
        name = (im.get("Labels") or {}).get(IMAGE_LABEL)
        if name and name in (im.get("RepoTags") or []):
            out[name] = im["Id"]
    return out


class Gate:
    """One submission's engine endpoint (a context manager); ``socket`` is the path to give the sandbox."""

    def __init__(self, folder: str | os.PathLike, limits: ContainerLimits = CONTAINER_LIMITS, caps: Caps | None = None):
        self.folder = Path(folder)
        self.socket = self.folder / "docker.sock"
        self.limits, self.caps, self.tenant = limits, caps or Caps(), Tenant()
        self.policy: Policy | None = None
        self._server: socket.socket | None = None
        self._conns: set[socket.socket] = set()     # every socket the gate holds (closed at the end)
        self._clients: set[socket.socket] = set()   # the sandbox's connections to it (capped)
        self._lock = threading.Lock()
        self._closing = False
        self.requests = 0
        # the published ports, as the sandbox's worker serves them on its own 127.0.0.1 (see the tunnel below)
        self._ports = threading.Condition()
        self._ports_version = 0
        self._ports_ready = 0
        self._watching = 0
        self._listeners: list[socket.socket] = []  # the engine's way to the submission's registries

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "Gate":
        api = engine.client().api
        engine.track()  # what the submission makes carries this process's labels: the reaper knows them
        network = self.tenant.name("net")
        api.create_network(network, driver="bridge", internal=True, labels=self.tenant.labels_in({}),
                           check_duplicate=True)
        swarm = api.info().get("Swarm") or {}
        self.policy = Policy(self.tenant, self.limits, network, course_images(), self.caps, on_ports=self._ports_changed,
                             on_registry=self._registry,
                             swarm=swarm.get("LocalNodeState") == "active" and bool(swarm.get("ControlAvailable")))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o755)
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(str(self.socket))
        self.socket.chmod(0o666)  # the sandbox's non-root user connects; nothing else can reach this folder
        srv.listen(64)
        self._server = srv
        threading.Thread(target=self._accept, name=f"gate-{self.tenant.id}", daemon=True).start()
        return self

    def stop(self) -> list[str]:
        """Close everything, then remove what the submission made; returns what was removed."""
        self._closing = True
        with self._ports:
            self._ports.notify_all()
        for srv in [self._server, *self._listeners]:
            if srv is not None:
                with contextlib.suppress(OSError):
                    srv.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                c.close()
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        return self.policy.remove_all() if self.policy else []

    def __enter__(self) -> "Gate":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def refusals(self) -> list[str]:
        return self.policy.refusals if self.policy else []

    # ------------------------------------------------------------------ connections
    def _accept(self) -> None:
        while not self._closing:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                if len(self._clients) >= MAX_CONNECTIONS:
                    with contextlib.suppress(OSError):
                        conn.close()
                    note = f"a connection to the engine: at most {MAX_CONNECTIONS} are open at once (close what you " \
                           "no longer use)"
                    if self.policy is not None and note not in self.policy.refusals:
                        self.policy.refusals.append(note)
                    continue
                self._conns.add(conn)
                self._clients.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        client = Peer(conn, h11.SERVER, timeout=120)
        try:
            while not self._closing:
                try:
                    req = client.read_request(self._body_cap)
                except TooBig:
                    client.refuse(413, "refused by the grading sandbox (size): the request is too big")
                    return
                except h11.RemoteProtocolError as exc:
                    with contextlib.suppress(Exception):
                        client.refuse(400, f"refused by the grading sandbox (HTTP): a malformed request ({exc})")
                    return
                if req is None:
                    return
                self.requests += 1
                try:
                    r = route(req.method, req.target)
                    if r.parts[:1] == ["coursekit"]:  # the gate's own: published ports and their tunnel
                        if not self._own(client, req, r):
                            return
                        continue
                    action = self.policy.decide(r, req.body)
                except Refused as exc:
                    if not exc.quiet:
                        self.policy.refusals.append(f"{req.method} {req.target[:200]}: {exc.message}")
                    client.refuse(exc.status, exc.message)
                    continue
                if isinstance(action, Answer):
                    client.respond_json(action.status, action.doc)
                    continue
                if not self._forward(client, req, r.version, action):
                    return
                if client.conn.our_state is h11.MUST_CLOSE:
                    return
        except (OSError, h11.LocalProtocolError, ConnectionError):
            return
        finally:
            with self._lock:
                self._conns.discard(conn)
                self._clients.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def _body_cap(self, method: str, target: str) -> int:
        """A build context or an archive may be big; any other request body is small JSON."""
        path = target.split("?", 1)[0]
        big = (method == "POST" and path.rstrip("/").endswith("/build")) or (method == "PUT" and "/archive" in path)
        return self.caps.context_bytes if big else self.caps.body_bytes

    # ------------------------------------------------------------------ published ports
    def _ports_changed(self) -> None:
        """A container with ports started: wait (a moment) until the sandbox's worker listens on them, so that
        the submission's code can connect as soon as its start call returns, as it could on its own machine."""
        with self._ports:
            self._ports_version += 1
            version = self._ports_version
            self._ports.notify_all()
            if self._watching:
                self._ports.wait_for(lambda: self._ports_ready >= version or self._closing, timeout=3)

    def _own(self, client: Peer, req, r) -> bool:
        """The gate's own endpoints; False when the connection is done (after a tunnel)."""
        what = r.parts[1:]
        if what == ["ports"] and r.method == "GET":  # long poll: the ports, once they differ from `after`
            after = int((r.query.get("after") or ["-1"])[0] or -1)
            with self._ports:
                self._watching += 1
                try:
                    self._ports.wait_for(lambda: self._ports_version != after or self._closing, timeout=25)
                finally:
                    self._watching -= 1
                ports = sorted({p for mapping in self.tenant.ports.values() for p in mapping.values()})
                version = self._ports_version
            client.respond_json(200, {"version": version, "ports": ports})
            return True
        if what == ["ports", "ready"] and r.method == "POST":
            with self._ports:
                self._ports_ready = max(self._ports_ready, int((r.query.get("version") or ["0"])[0] or 0))
                self._ports.notify_all()
            client.respond(204, b"")
            return True
        if what == ["tunnel"] and r.method == "POST" and req.upgrade:
            port = int((r.query.get("port") or ["0"])[0] or 0)
            try:
                target = self._tunnel_target(port)
                upstream = socket.create_connection(target, timeout=10)
            except Refused as exc:
                client.refuse(exc.status, exc.message)
                return True
            except OSError as exc:
                client.refuse(502, f"nothing answers on port {port} ({exc.strerror or exc})")
                return True
            with self._lock:
                self._conns.add(upstream)
            client.send(h11.InformationalResponse(status_code=101, headers=[("Connection", "Upgrade"),
                                                                            ("Upgrade", "tcp")]))
            try:
                pipe(client.sock, upstream, a_rest=client.conn.trailing_data[0])
            finally:
                with self._lock:
                    self._conns.discard(upstream)
                with contextlib.suppress(OSError):
                    upstream.close()
            return False
        client.refuse(404, f"refused by the grading sandbox (endpoint): {req.method} {req.target[:100]}")
        return True

    # ------------------------------------------------------------------ the engine's way to a registry
    def _registry(self, port: int) -> int:
        """A port on the grading host's 127.0.0.1 that leads to the submission's registry on sandbox ``port``:
        the engine pushes there and pulls from there (it cannot reach the submission's internal network)."""
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.bind(("127.0.0.1", 0))
        srv.listen(16)
        self._listeners.append(srv)
        threading.Thread(target=self._registry_accept, args=(srv, port), daemon=True,
                         name=f"gate-{self.tenant.id}-registry-{port}").start()
        return srv.getsockname()[1]

    def _registry_accept(self, srv: socket.socket, port: int) -> None:
        while not self._closing:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=self._registry_pipe, args=(conn, port), daemon=True).start()

    def _registry_pipe(self, conn: socket.socket, port: int) -> None:
        upstream = None
        with self._lock:
            self._conns.add(conn)
        try:
            upstream = socket.create_connection(self._tunnel_target(port), timeout=10)
            with self._lock:
                self._conns.add(upstream)
            pipe(conn, upstream)
        except (Refused, OSError):
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
                self._conns.discard(upstream)
            for s in (conn, upstream):
                if s is not None:
                    with contextlib.suppress(OSError):
                        s.close()

    def _tunnel_target(self, port: int) -> tuple[str, int]:
        """(address, port) of the submission's container that publishes sandbox port ``port``."""
        for cid, mapping in self.tenant.ports.items():
            for inside, published in mapping.items():
                if published != port:
                    continue
                doc = engine.client().api.inspect_container(cid)
                nets = (doc.get("NetworkSettings") or {}).get("Networks") or {}
                # on the submission's default network if it is there (as Docker publishes), else its first
                ip = (nets.get(self.policy.network) or {}).get("IPAddress") or next(
                    (n.get("IPAddress") for n in nets.values() if n.get("IPAddress")), "")
                if not (doc.get("State") or {}).get("Running"):
                    raise Refused(502, f"the container that publishes port {port} is not running")
                if not ip:
                    raise Refused(502, f"the container that publishes port {port} has no network to reach it on")
                return ip, int(inside.split("/")[0])
        raise Refused(404, f"no container of this submission publishes port {port}")

    def _engine_socket(self) -> socket.socket:
        url = engine.engine_url()
        if not url.startswith("unix://"):
            raise GradingError(f"the grading gate speaks to the engine over a unix socket, and DOCKER_HOST is {url}",
                               "grade on the machine that runs the engine (DOCKER_HOST=unix:///var/run/docker.sock)")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(url[len("unix://"):])
        return s

    def _unprefixed(self, data: bytes) -> bytes:
        return self.tenant.shown_text(data.decode("utf-8", "replace")).encode()

    def _forward(self, client: Peer, req, version: str, fw: Forward) -> bool:
        """Send ``fw`` to the engine and its answer to the sandbox; False when the connection is done."""
        eng = self._engine_socket()
        with self._lock:
            self._conns.add(eng)
        try:
            upstream = Peer(eng, h11.CLIENT, timeout=None)
            target = (f"/v{version}" if version else "") + fw.path + (f"?{fw.query}" if fw.query else "")
            upstream.request(req, fw.method, target, fw.body)
            head = upstream.response_head()
            if head.status_code == 101:  # attach, exec start: raw bytes both ways from now on
                client.send(h11.InformationalResponse(status_code=101, headers=passable(head.headers) + [
                    (b"Connection", b"Upgrade"), (b"Upgrade", b"tcp")]))
                pipe(client.sock, eng, a_rest=client.conn.trailing_data[0], b_rest=upstream.conn.trailing_data[0])
                return False
            kind = next((v.decode() for k, v in head.headers if k.lower() == b"content-type"), "application/json")
            if fw.then or fw.after or head.status_code >= 400:
                raw = upstream.body(self.caps.answer_bytes)
                doc = None
                with contextlib.suppress(ValueError):
                    doc = json.loads(raw) if raw.strip() else None
                try:
                    if fw.after:
                        fw.after(head.status_code, doc)
                except Refused as exc:
                    client.refuse(exc.status, exc.message)
                    return True
                if head.status_code < 300 and fw.then and doc is not None:
                    raw = json.dumps(fw.then(doc)).encode()
                elif head.status_code >= 400:
                    raw = self._unprefixed(raw)
                client.respond(head.status_code, raw, kind)
                return True
            client.send(h11.Response(status_code=head.status_code, headers=passable(head.headers)))
            if fw.lines:
                self._relay_lines(client, upstream, fw.lines)
            else:
                for part in upstream.body_parts():
                    client.send(h11.Data(data=part))
            client.send(h11.EndOfMessage())
            return True
        finally:
            with self._lock:
                self._conns.discard(eng)
            with contextlib.suppress(OSError):
                eng.close()

    @staticmethod
    def _relay_lines(client: Peer, upstream: Peer, rewrite) -> None:
        """A stream of JSON lines (a build's progress), each rewritten as it comes."""
        buf = b""
        for part in upstream.body_parts():
            buf += part
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                with contextlib.suppress(ValueError):
                    doc = rewrite(json.loads(line))
                    if doc is None:
                        continue  # a line that is the gate's, not the submission's
                    line = json.dumps(doc).encode()
                client.send(h11.Data(data=line + b"\n"))
        if buf:
            client.send(h11.Data(data=buf))


def wait_for_socket(path: Path, timeout: float = 5) -> None:
    """For tests: until the gate's socket answers connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as s:
            s.connect(str(path))
            return
        time.sleep(0.05)
    raise TimeoutError(path)
