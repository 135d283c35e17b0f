"""HTTP/1.1 on both sides of the gate, spoken by h11 (never by hand on raw bytes).

:class:`Peer` wraps one socket and one :class:`h11.Connection`: the sandbox's side (the gate is
the server) or the engine's side (the gate is the client). It reads a whole request (head and
body, the body capped), sends responses (a JSON body, or a stream of chunks), and, after a
``101`` on an ``Upgrade: tcp`` request (``attach``, ``exec start``), hands both sockets over to
:func:`pipe`, which copies raw bytes both ways until either side closes. h11 takes care of
keep-alive, ``Content-Length`` against chunked bodies, and what a well-formed message is; a
malformed one (a smuggling attempt, say) is a :class:`h11.RemoteProtocolError`, answered 400.
"""
from __future__ import annotations

import json
import socket
from dataclasses import dataclass

import h11

#: Headers that belong to one hop of the connection, never forwarded.
HOP = {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade",
       b"content-length", b"host"}
READ = 65536


class TooBig(Exception):
    """A request body over the cap."""


@dataclass
class Request:
    method: str
    target: str
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: str) -> str:
        key = name.lower().encode()
        return next((v.decode("latin-1") for k, v in self.headers if k.lower() == key), "")

    @property
    def upgrade(self) -> bool:
        return "upgrade" in self.header("connection").lower() and self.header("upgrade").lower() == "tcp"


class Peer:
    """One socket and the h11 state of the HTTP conversation on it."""

    def __init__(self, sock: socket.socket, role, timeout: float | None = 60):
        self.sock, self.conn = sock, h11.Connection(role)
        sock.settimeout(timeout)

    def _event(self):
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            try:
                data = self.sock.recv(READ)
            except OSError:
                data = b""
            self.conn.receive_data(data)

    def send(self, event) -> None:
        data = self.conn.send(event)
        if data:
            self.sock.sendall(data)

    # -- the gate as a server: the sandbox's requests
    def read_request(self, max_body) -> Request | None:
        """The next whole request on this connection; None when the client closed it.

        ``max_body(method, target)``: the largest body this request may have (decided on its head)."""
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        event = self._event()
        if isinstance(event, h11.ConnectionClosed):
            return None
        if not isinstance(event, h11.Request):
            raise h11.RemoteProtocolError(f"expected a request, got {type(event).__name__}")
        names = {k.lower() for k, _ in event.headers}
        if b"content-length" in names and b"transfer-encoding" in names:  # framed two ways: smuggling
            raise h11.RemoteProtocolError("a request framed both by Content-Length and Transfer-Encoding")
        cap = max_body(event.method.decode(), event.target.decode("latin-1"))
        body, size = [], 0
        while True:
            part = self._event()
            if isinstance(part, h11.Data):
                size += len(part.data)
                if size > cap:
                    raise TooBig(size)
                body.append(bytes(part.data))
            elif isinstance(part, h11.EndOfMessage):
                break
            else:
                raise h11.RemoteProtocolError("the request ended before its body did")
        return Request(event.method.decode(), event.target.decode("latin-1"), list(event.headers), b"".join(body))

    def respond(self, status: int, body: bytes, content_type: str = "application/json",
                extra: list[tuple[str, str]] = ()) -> None:
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), ("Api-Version", "1.41"),
                   *extra]
        self.send(h11.Response(status_code=status, headers=headers))
        self.send(h11.Data(data=body))
        self.send(h11.EndOfMessage())

    def respond_json(self, status: int, doc) -> None:
        self.respond(status, json.dumps(doc).encode())

    def refuse(self, status: int, message: str) -> None:
        """Docker's own error shape: ``{"message": ...}``, which the docker SDK shows as the reason."""
        self.respond_json(status, {"message": message})

    # -- the gate as a client: the engine's responses
    def request(self, req: Request, method: str, target: str, body: bytes) -> None:
        headers = [(k, v) for k, v in req.headers if k.lower() not in HOP]
        headers += [(b"Host", b"docker"), (b"Content-Length", str(len(body)).encode())]
        if req.upgrade:
            headers += [(b"Connection", b"Upgrade"), (b"Upgrade", b"tcp")]
        self.send(h11.Request(method=method, target=target, headers=headers))
        if body:
            self.send(h11.Data(data=body))
        self.send(h11.EndOfMessage())

    def response_head(self):
        """The engine's response head: an h11.Response, or an InformationalResponse (101) for an upgrade."""
        while True:
            event = self._event()
            if isinstance(event, (h11.Response, h11.InformationalResponse)):
                if isinstance(event, h11.InformationalResponse) and event.status_code != 101:
                    continue  # 100 Continue and the like: not ours to pass on
                return event
            if isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("the engine closed the connection")

    def body_parts(self):
        """The response body, as the engine sends it (a stream: logs with follow, build progress...)."""
        while True:
            event = self._event()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                return

    def body(self, cap: int) -> bytes:
        parts, size = [], 0
        for part in self.body_parts():
            size += len(part)
            if size > cap:
                raise TooBig(size)
            parts.append(part)
        return b"".join(parts)


def passable(headers) -> list[tuple[bytes, bytes]]:
    """The engine's response headers that may go on to the sandbox (no hop-by-hop ones)."""
    return [(k, v) for k, v in headers if k.lower() not in HOP]
