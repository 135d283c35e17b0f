"""Waiting for containers: running, answering HTTP, accepting TCP, and what went wrong if not.

A container that "started" may exit a moment later, and a server inside it needs time
before it answers. These helpers wait for the thing a learner actually cares about and,
when it does not happen, say why in the learner's terms: the exit code, whether it was
killed for memory, and the container's last lines of output.

All of them are re-exported by :mod:`coursekit.docker.engine` (``engine.wait_running`` etc.).
Lessons: ``04-containers`` (ports, Postgres), ``05-dockerfiles``; the Dockerfile grader.
"""
from __future__ import annotations

import http.client
import socket
import time
from typing import Any

from ..errors import DockerError

#: Lines of a container's log quoted when it exits unexpectedly.
LOG_TAIL_LINES = 12
#: What exit codes usually mean, in a learner's words.
EXIT_MEANINGS = {
    1: "the program reported an error",
    2: "the program reported a usage error (a bad option, or a file it could not open)",
    125: "docker could not run the container at all",
    126: "the command was found but could not be executed (permissions?)",
    127: "the command was not found in the image",
    137: "it was killed (SIGKILL): often out of memory, or `docker kill`",
    139: "it crashed with a segmentation fault",
    143: "it was stopped with SIGTERM",
}


class ContainerExited(DockerError):
    """A container stopped while we waited for it to run or to answer."""

    def __init__(self, problem: str, fix: str, exit_code: int | None = None, log_tail: str = "",
                 oom_killed: bool = False):
        super().__init__(problem, fix)
        self.exit_code, self.log_tail, self.oom_killed = exit_code, log_tail, oom_killed


def port_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:``port`` (so a container may publish there)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def log_tail(container: Any, lines: int = LOG_TAIL_LINES) -> str:
    """The container's last ``lines`` lines of output (stdout and stderr), or ``""``."""
    try:
        raw = container.logs(tail=lines)
    except Exception:
        return ""
    return raw.decode(errors="replace").rstrip() if isinstance(raw, bytes) else str(raw).rstrip()


def host_port(container: Any, container_port: str | int) -> int:
    """The host port that ``container_port`` (``"8000/tcp"`` or ``8000``) was published on."""
    key = f"{container_port}/tcp" if isinstance(container_port, int) or "/" not in str(container_port) \
        else str(container_port)
    container.reload()
    bindings = (container.attrs.get("NetworkSettings", {}).get("Ports") or {}).get(key)
    if not bindings:
        raise DockerError(f"the container {container.name} does not publish {key}",
                          f"start it with ports={{{key!r}: None}} (docker run -p 127.0.0.1::{key.split('/')[0]})")
    return int(bindings[0]["HostPort"])


def exited(container: Any, doing: str) -> ContainerExited | None:
    """A ContainerExited describing the container if it is no longer running, else None."""
    try:
        container.reload()
    except Exception as exc:  # removed under us (e.g. --rm)
        return ContainerExited(f"the container disappeared {doing} ({exc})",
                               "it was probably started with remove=True and exited: start it without")
    state = container.attrs.get("State", {})
    if state.get("Running") or state.get("Restarting") or state.get("Status") == "created":
        return None
    code, oom = state.get("ExitCode"), bool(state.get("OOMKilled"))
    tail = log_tail(container)
    meaning = "it ran out of memory (OOMKilled)" if oom else EXIT_MEANINGS.get(code, "")
    problem = (f"the container {container.name} exited with code {code} {doing}"
               + (f": {meaning}" if meaning else "")
               + (f"\nits last lines of output:\n{tail}" if tail else "\nit printed nothing"))
    fix = ("give it more memory, or make the program use less" if oom else
           "read its output above; run the same command in the image interactively "
           "(docker run -it IMAGE sh) to see what goes wrong")
    return ContainerExited(problem, fix, code, tail, oom)


def wait_running(container: Any, timeout: float = 10.0, *, settle: float = 0.3) -> Any:
    """Return ``container`` once it is running (and still running ``settle`` s later).

    Raises :class:`ContainerExited` if it exits first (exit code, OOM, last log lines).
    """
    deadline = time.monotonic() + timeout
    seen_running = None
    while True:
        gone = exited(container, "right after it started")
        if gone is not None:
            raise gone
        if container.attrs.get("State", {}).get("Running"):
            seen_running = seen_running or time.monotonic()
            if time.monotonic() - seen_running >= settle:
                return container
        if time.monotonic() > deadline:
            status = container.attrs.get("State", {}).get("Status")
            raise DockerError(f"the container {container.name} is still {status!r} after {timeout:.0f} s",
                              "start it with .start(), or check `docker ps --all`")
        time.sleep(0.05)


def _poll(attempt, port: int, what: str, timeout: float, container: Any) -> Any:
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            return attempt()
        except (OSError, http.client.HTTPException) as exc:
            last = f"{type(exc).__name__}: {exc}"
        if container is not None:
            gone = exited(container, f"before anything answered on port {port}")
            if gone is not None:
                raise gone
        if time.monotonic() > deadline:
            raise DockerError(
                f"nothing answered {what} on 127.0.0.1:{port} within {timeout:.0f} s (last try: {last})",
                "check that the server listens on 0.0.0.0 inside the container (not 127.0.0.1) and on the "
                "port you published; its logs (container.logs()) tell what it is doing")
        time.sleep(0.1)


def wait_tcp(port: int, *, timeout: float = 20.0, container: Any = None) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:``port``."""
    def attempt():
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return None
    _poll(attempt, port, "TCP", timeout, container)


def wait_http(port: int, path: str = "/", *, timeout: float = 20.0, container: Any = None,
              max_body: int = 1 << 20) -> tuple[int, bytes]:
    """Wait until ``http://127.0.0.1:port/path`` answers; return ``(status, body)`` (body capped).

    Any HTTP answer counts, 404 and 500 included: the server is up and the status says the rest.
    """
    def attempt():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read(max_body)
        finally:
            conn.close()
    return _poll(attempt, port, "HTTP", timeout, container)


def wait_until(predicate, *, timeout: float, interval: float = 0.2, what: str = "the condition") -> Any:
    """Poll ``predicate`` until it returns something truthy, or raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DockerError(f"gave up waiting for {what} after {timeout:.0f} s",
                              "run the cell again; if it keeps happening, check `coursekit doctor`")
        time.sleep(interval)
