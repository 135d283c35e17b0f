"""The Docker engine's HTTP API, spoken by hand with Python's standard library.

The Docker CLI and the docker SDK are both *clients*: each turns what you ask for into an HTTP
request to the daemon. This module sends those requests itself, over the engine's Unix socket,
so a lesson can show that there is nothing else underneath::

    >>> from coursekit import engineapi
    >>> status, headers, data = engineapi.get("/version")        # doctest: +SKIP
    >>> status, data["ApiVersion"]                               # doctest: +SKIP
    (200, '1.41')
    >>> engineapi.versioned("/containers/json", "1.41")
    '/v1.41/containers/json'
    >>> engineapi.with_query("/containers/json", {"all": 1, "filters": {"label": ["a=b"]}})
    '/containers/json?all=1&filters=%7B%22label%22%3A+%5B%22a%3Db%22%5D%7D'

It talks to the same engine as :mod:`coursekit.docker.engine` (``DOCKER_HOST``, else
``/var/run/docker.sock``), honours no-engine mode (``COURSEKIT_NO_ENGINE=1``), never waits
longer than a timeout, and reports a missing or refused socket as an
:class:`~coursekit.errors.EngineUnavailable` that names the path and says what to do.
HTTP error statuses (404, 409...) are *not* exceptions: they come back as data, because the
lesson reads them.

Anything this module creates must carry :func:`coursekit.docker.engine.labels` and be removed by its
caller (``DELETE /containers/{id}?force=1`` in a ``finally``).

Lessons: introduced in ``02-docker-engine`` (daemon, API, client).
"""
from __future__ import annotations

import http.client
import json
import socket
import struct
from typing import Any, NamedTuple
from urllib.parse import urlencode

from . import engine
from ..errors import DockerError, EngineUnavailable

#: Seconds to wait for the engine to accept the connection and to send each part of an answer.
DEFAULT_TIMEOUT = 10.0


class Response(NamedTuple):
    """One answer from the engine; unpacks as ``status, headers, data``.

    ``headers`` is a plain dict (the engine's header names, e.g. ``Api-Version``); ``data`` is
    the decoded JSON when the engine sent JSON, the text for ``text/plain``, else the raw bytes
    (container logs arrive as a binary stream: see :func:`demux_logs`).
    """

    status: int
    headers: dict
    data: Any

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300


class _UnixHTTPConnection(http.client.HTTPConnection):
    """``http.client`` over an AF_UNIX socket instead of TCP: same HTTP, different pipe."""

    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)  # the Host header the engine ignores
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def socket_path() -> str:
    """The engine's Unix socket, from the same setting :mod:`coursekit.docker.engine` uses."""
    url = engine.engine_url()
    if url.startswith("unix://"):
        return url[len("unix://"):]
    raise DockerError(f"DOCKER_HOST is {url!r}: this helper speaks to the engine over a Unix socket only",
                            "unset DOCKER_HOST (or set it to unix:///var/run/docker.sock) and restart the kernel; "
                            "the docker SDK (engine.client()) handles tcp:// and ssh:// engines")


def _unreachable(exc: BaseException, path: str, timeout: float) -> EngineUnavailable:
    if isinstance(exc, FileNotFoundError):
        return EngineUnavailable(f"no Docker engine here: there is no socket at {path}", engine.how_to_get_an_engine())
    if isinstance(exc, ConnectionRefusedError):
        return EngineUnavailable(f"the Docker engine at {path} is not running (connection refused)",
                                 engine.how_to_get_an_engine())
    if isinstance(exc, PermissionError):
        return EngineUnavailable(f"not allowed to use the Docker engine's socket at {path}",
                                 "add your user to the 'docker' group (then log in again), or run as root")
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError since Python 3.10
        return EngineUnavailable(f"the Docker engine at {path} did not answer within {timeout:g} s",
                                 "check that the engine is not stuck (restart Docker), then run the cell again")
    return EngineUnavailable(f"could not talk to the Docker engine at {path}: {exc}", engine.how_to_get_an_engine())


def versioned(path: str, version: str) -> str:
    """``/version`` -> ``/v1.41/version``: pin the API version a request is written for."""
    return f"/v{version}{path}"


def with_query(path: str, params: dict | None) -> str:
    """Append query parameters; dict or list values (such as ``filters``) are sent as JSON, as the API wants."""
    if not params:
        return path
    flat = {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in params.items()}
    return f"{path}{'&' if '?' in path else '?'}{urlencode(flat)}"


def _decode(raw: bytes, content_type: str) -> Any:
    if "json" in content_type:
        text = raw.decode("utf-8", errors="replace")
        try:
            return json.loads(text) if text.strip() else None
        except json.JSONDecodeError:  # a stream of JSON objects, one per line (e.g. /events)
            return [json.loads(line) for line in text.splitlines() if line.strip()]
    if content_type.startswith("text/"):
        return raw.decode("utf-8", errors="replace")
    return raw


def request(method: str, path: str, body: Any = None, *, params: dict | None = None,
            timeout: float = DEFAULT_TIMEOUT) -> Response:
    """Send one HTTP request to the engine and return its :class:`Response`.

    ``path``: as in the API reference (``/containers/json``), optionally versioned
    (``/v1.41/...``) and with a query string; ``body``: sent as JSON when given;
    ``params``: extra query parameters (see :func:`with_query`); ``timeout``: seconds.
    """
    if engine.no_engine_forced():
        raise EngineUnavailable(f"this session runs in no-engine mode ({engine.NO_ENGINE_ENV}=1, as on Binder)",
                                "run the course where a Docker engine runs (on Debian or Ubuntu as root, "
                                "`./course.sh lab` installs one); if this machine has one, unset "
                                f"{engine.NO_ENGINE_ENV} and restart the kernel")
    where = socket_path()
    conn = _UnixHTTPConnection(where, timeout)
    headers = {}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method.upper(), with_query(path, params), body=payload, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        return Response(resp.status, dict(resp.getheaders()), _decode(raw, resp.getheader("Content-Type", "")))
    except OSError as exc:  # missing socket, refused, permission, timeout
        raise _unreachable(exc, where, timeout) from None
    finally:
        conn.close()


def get(path: str, *, params: dict | None = None, timeout: float = DEFAULT_TIMEOUT) -> Response:
    """``GET path``: unpacks as ``status, headers, data``."""
    return request("GET", path, params=params, timeout=timeout)


def demux_logs(raw: bytes) -> dict[str, str]:
    """Split a container's log stream into ``{"stdout": ..., "stderr": ...}``.

    Without a TTY the engine sends frames: 1 byte stream (1 stdout, 2 stderr), 3 zero bytes, a
    4-byte big-endian length, then that many bytes of output.
    """
    out = {"stdout": b"", "stderr": b""}
    i = 0
    while i + 8 <= len(raw):
        stream, size = raw[i], struct.unpack(">I", raw[i + 4:i + 8])[0]
        out["stderr" if stream == 2 else "stdout"] += raw[i + 8:i + 8 + size]
        i += 8 + size
    return {k: v.decode("utf-8", errors="replace") for k, v in out.items()}
