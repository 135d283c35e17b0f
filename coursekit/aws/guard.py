"""A network guard for botocore: nothing the course runs may reach real AWS.

moto only answers for ``*.amazonaws.com`` *while a mock is active*. Outside a mock, or
with an ``endpoint_url`` that is not an AWS host, botocore really connects: a learner
with real keys in ``~/.aws`` could create real (billed) resources from a lesson. This
module closes that gap at the last point before a connection is opened:
:meth:`botocore.httpsession.URLLib3Session.send`.

* :func:`install` wraps ``URLLib3Session.send`` once per process. The wrapper refuses
  every request whose host is not loopback (``127.0.0.0/8``, ``localhost``, ``::1``) by
  raising :class:`RealAWSBlocked` *before* any DNS lookup or connection. Requests to a
  loopback host that would be sent through a non-loopback proxy are refused as well.
* Requests answered by moto's in-process mock (``mock_aws``) never reach ``send``: moto
  answers them from botocore's ``before-send`` event. So the guard does not disturb the
  mock, and a loopback moto server (``coursekit.aws.sandbox(server=True)``) is let
  through. (A raising ``before-send`` handler would be the wrong tool: botocore calls
  every such handler, so it would break the mock too.)
* The instance-metadata service (``169.254.169.254``), which botocore asks for
  credentials when it finds none, is not loopback: it is refused too.
* :func:`set_mode` ``("record")`` also keeps a list of every request that reached
  ``send``, allowed (loopback) or refused, readable with :func:`recorded`. A test can
  assert that nothing left ``127.0.0.1``.
* :func:`record_to` (or the environment variable ``COURSEKIT_AWS_GUARD_LOG=<file>``, read
  by :func:`install`) is record mode for a whole process, e.g. a notebook's kernel: every
  botocore request is appended to the file as a JSON line, and so is every socket connect,
  UDP send or name lookup of a non-loopback host made by *any* library in the process
  (watched with a CPython audit hook, and refused like the botocore ones). The first line
  says recording started (so an empty log proves something). ``tests/
  test_aws_notebooks_stay_local.py`` runs every AWS notebook this way. Not covered: child
  processes (the AWS CLI ...) and containers, which have their own network.

The guard survives a kernel-style re-import (``importlib.reload`` or deleting
``coursekit*`` from ``sys.modules``): its state lives on the botocore class, not only in
this module's globals, so a re-import finds it, neither removes it nor wraps it twice.
The wrapper looks this module up in ``sys.modules`` at call time, so after a re-import
it raises the *current* :class:`RealAWSBlocked`; if the module is gone entirely it still
blocks, with the class it was installed with.

Lessons: every AWS lesson (through ``coursekit.aws.sandbox()``, which installs it).
"""
from __future__ import annotations

import ipaddress
import json
import os
import socket
import sys
import threading
import time
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from ..errors import AWSSandboxError

#: Attribute on ``URLLib3Session`` holding the guard's state (a dict), and the marker
#: attribute set on the wrapper function.
STATE_ATTR = "_coursekit_guard_state"
MARKER_ATTR = "_coursekit_guard"

MODES = ("block", "record")

#: A file path: :func:`install` switches the process to :func:`record_to` that file.
LOG_ENV = "COURSEKIT_AWS_GUARD_LOG"
_SOCKET_EVENTS = {"socket.connect", "socket.sendto", "socket.getaddrinfo", "socket.gethostbyname",
                  "socket.gethostbyname_ex", "socket.gethostbyaddr"}

_LOOPBACK_NAMES = {"localhost", "localhost.", "ip6-localhost", "ip6-loopback"}
_METADATA_HOSTS = {"169.254.169.254", "fd00:ec2::254", "169.254.170.2", "169.254.170.23"}


try:  # keep the same class across importlib.reload(), so `except RealAWSBlocked` keeps working
    RealAWSBlocked  # type: ignore[used-before-def]  # noqa: B018
except NameError:

    class RealAWSBlocked(AWSSandboxError):
        """A request to a non-loopback host was refused before any connection was made."""

        def __init__(self, host: str, method: str = "", url: str = "", reason: str = ""):
            self.host = host
            self.method = method
            self.url = url
            self.reason = reason
            what = f"{method} {url}".strip() or host
            if reason:
                problem = f"refused a request to {host!r} ({what}): {reason}"
            elif host in _METADATA_HOSTS:
                problem = (
                    f"refused a request to {host!r} ({what}): botocore found no credentials "
                    "and tried the instance-metadata service, which is real AWS"
                )
            else:
                problem = (
                    f"refused a request to {host!r} ({what}): it is not this machine "
                    "(127.0.0.1), so it could be real AWS"
                )
            super().__init__(
                problem,
                fix="use `coursekit.aws.sandbox()` (moto); never real AWS in this course",
            )

        def __reduce__(self):  # picklable, e.g. across nbclient / multiprocessing
            return (type(self), (self.host, self.method, self.url, self.reason))


class Attempt(NamedTuple):
    """One request that reached ``URLLib3Session.send`` while recording."""

    method: str
    url: str
    host: str
    blocked: bool


# --------------------------------------------------------------------------- helpers
def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost``, ``::1`` and any ``127.0.0.0/8`` address (never for a name
    that merely resolves to one: we decide without DNS)."""
    if not host:
        return False
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _host_of(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def _session_cls():
    from botocore.httpsession import URLLib3Session

    return URLLib3Session


def _state(create: bool = False) -> dict[str, Any] | None:
    cls = _session_cls()
    state = cls.__dict__.get(STATE_ATTR)
    if state is None and create:
        state = {
            "original": None,
            "wrapper": None,
            "mode": "block",
            "recorded": [],
            "lock": threading.RLock(),
            "blocked_count": 0,
            # shared with coursekit.aws: which sandbox is active, across re-imports
            "sandbox": None,
        }
        setattr(cls, STATE_ATTR, state)
    return state


def _is_ours(func: Any) -> bool:
    """True if ``func`` is our wrapper or wraps it (someone patched on top of us)."""
    seen = 0
    while func is not None and seen < 20:
        if getattr(func, MARKER_ATTR, False):
            return True
        func = getattr(func, "__wrapped__", None)
        seen += 1
    return False


def _check(state: dict[str, Any], session: Any, request: Any, exc_cls: type) -> None:
    """Record (in record mode) and refuse what must not leave the machine."""
    url = str(getattr(request, "url", "") or "")
    method = str(getattr(request, "method", "") or "")
    host = _host_of(url)
    reason = ""
    blocked = not is_loopback_host(host)
    if not blocked:
        # A loopback URL sent through a proxy would still leave the machine.
        proxy_url = None
        try:
            proxy_url = session._proxy_config.proxy_url_for(url)
        except Exception:  # pragma: no cover - botocore internals changed
            proxy_url = None
        if proxy_url and not is_loopback_host(_host_of(proxy_url if "://" in proxy_url else f"http://{proxy_url}")):
            blocked = True
            reason = (
                f"it would go through the proxy {_host_of(proxy_url)!r}; "
                "add 127.0.0.1,localhost to NO_PROXY"
            )
    if blocked and not reason and host.endswith((".amazonaws.com", ".amazonaws.com.cn")):
        stubber = getattr(sys.modules.get("moto.core.models"), "botocore_stubber", None)
        if stubber is not None and getattr(stubber, "enabled", False):
            reason = (
                "a moto mock is running, but this client was made before moto was "
                "loaded, so moto cannot answer it; make clients after `sandbox()` "
                "started, e.g. with `sb.client(...)`"
            )
    if state.get("mode") == "record":
        with state["lock"]:
            state["recorded"].append(_attempt_cls()(method, url, host, blocked))
        _log(state, layer="botocore", method=method, url=url, host=host, blocked=blocked)
    if blocked:
        with state["lock"]:
            state["blocked_count"] = state.get("blocked_count", 0) + 1
        raise exc_cls(host or url, method, url, reason)


def _attempt_cls() -> type:
    mod = sys.modules.get(__name__)
    return getattr(mod, "Attempt", Attempt)


def _make_wrapper(original: Any, state: dict[str, Any]) -> Any:
    import functools

    fallback_exc = RealAWSBlocked
    fallback_check = _check
    modname = __name__

    @functools.wraps(original)
    def send(self, request):
        # Look the module up at call time: after a re-import, raise the current class.
        mod = sys.modules.get(modname)
        check = getattr(mod, "_check", None) or fallback_check
        exc_cls = getattr(mod, "RealAWSBlocked", None) or fallback_exc
        check(state, self, request, exc_cls)
        return state["original"](self, request)

    setattr(send, MARKER_ATTR, True)
    return send


# --------------------------------------------------------------------------- public API
def install() -> bool:
    """Wrap ``URLLib3Session.send`` so that non-loopback requests are refused.

    Idempotent, and safe after a re-import of coursekit: never wraps twice. Returns True
    if this call installed the guard, False if it was already in place.
    """
    cls = _session_cls()
    state = _state(create=True)
    with state["lock"]:
        current = cls.__dict__.get("send")
        if current is not None and _is_ours(current):
            _record_from_env(state)
            return False
        if state["original"] is None:
            state["original"] = current
        elif current is not state["original"]:
            # Someone replaced send after us and dropped our wrapper: guard what is
            # there now (it is what botocore would call).
            state["original"] = current
        state["wrapper"] = _make_wrapper(state["original"], state)
        cls.send = state["wrapper"]
    _record_from_env(state)
    return True


def installed() -> bool:
    """True when ``URLLib3Session.send`` currently goes through the guard."""
    if "botocore.httpsession" not in sys.modules:
        return False  # botocore never imported: nothing could have installed it
    cls = _session_cls()
    return _is_ours(cls.__dict__.get("send")) and _state() is not None


def set_mode(mode: str) -> None:
    """``"block"`` (default): refuse non-loopback requests. ``"record"``: refuse them too,
    and record every request (loopback ones included) for :func:`recorded`.

    Installs the guard if needed.
    """
    if mode not in MODES:
        raise AWSSandboxError(
            f"unknown AWS guard mode {mode!r}",
            fix=f"use one of: {', '.join(MODES)}",
        )
    install()
    state = _state(create=True)
    with state["lock"]:
        state["mode"] = mode


def mode() -> str:
    """The current mode, ``"block"`` or ``"record"``."""
    state = _state() if "botocore.httpsession" in sys.modules else None
    return state["mode"] if state else "block"


def recorded() -> list[Attempt]:
    """A copy of the requests recorded so far (oldest first)."""
    if "botocore.httpsession" not in sys.modules:
        return []
    state = _state()
    if not state:
        return []
    with state["lock"]:
        return list(state["recorded"])


def clear_recorded() -> None:
    """Forget the recorded requests."""
    if "botocore.httpsession" not in sys.modules:
        return
    state = _state()
    if state:
        with state["lock"]:
            state["recorded"].clear()


def blocked_count() -> int:
    """How many requests the guard has refused in this process (any mode)."""
    if "botocore.httpsession" not in sys.modules:
        return 0
    state = _state()
    return int(state.get("blocked_count", 0)) if state else 0


# --------------------------------------------------------------------------- record to a file
def _log(state: dict[str, Any], **entry: Any) -> None:
    """Append one JSON line to the record file, if one is set."""
    path = state.get("log_path")
    if not path:
        return
    entry = {**entry, "pid": os.getpid(), "time": round(time.time(), 3)}
    with state["lock"], open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, default=str) + "\n")


def _record_from_env(state: dict[str, Any]) -> None:
    path = os.environ.get(LOG_ENV)
    if path and not state.get("log_path"):
        record_to(path)


def _watch_sockets(state: dict[str, Any]) -> None:
    """Once per process: an audit hook that logs and refuses non-loopback network use while a
    record file is set (audit hooks cannot be removed; it does nothing otherwise)."""
    if state.get("audit_hook"):
        return
    own_name = socket.gethostname().lower()

    def hook(event: str, args: tuple) -> None:
        if event not in _SOCKET_EVENTS or not state.get("log_path"):
            return
        if event in ("socket.connect", "socket.sendto"):
            sock, address = args[0], args[1]
            if getattr(sock, "family", None) not in (socket.AF_INET, socket.AF_INET6):
                return  # a Unix socket (the Docker engine, say) never leaves the machine
            host, port = str(address[0]), address[1]
        else:
            host, port = args[0], (args[1] if event == "socket.getaddrinfo" else None)
            host = host.decode() if isinstance(host, bytes) else str(host or "")
            if not host or host.lower() == own_name:
                return  # "" / None is this machine; its own name resolves locally
        if is_loopback_host(host):
            return
        _log(state, layer="socket", event=event, host=host, port=port, blocked=True)
        with state["lock"]:
            state["blocked_count"] = state.get("blocked_count", 0) + 1
        exc_cls = getattr(sys.modules.get(__name__), "RealAWSBlocked", RealAWSBlocked)
        raise exc_cls(host, event, f"{host}:{port}" if port is not None else host,
                      "recording for a test: this process may reach nothing but 127.0.0.1")

    sys.addaudithook(hook)
    state["audit_hook"] = True


def record_to(path: str | os.PathLike | None) -> None:
    """Record mode for the whole process, logged to ``path`` (one JSON object per line).

    Logged: every botocore request (``layer: "botocore"``, with ``blocked`` true for a
    non-loopback host) and every socket connect, UDP send or name lookup of a non-loopback
    host by any code in this process (``layer: "socket"``); both kinds are refused. The
    first line is ``{"event": "recording", ...}``. ``record_to(None)`` stops logging and
    goes back to ``"block"`` mode. This is what ``COURSEKIT_AWS_GUARD_LOG`` does.
    """
    state = _state(create=True)
    with state["lock"]:
        if path is None:
            state["log_path"] = None
            state["mode"] = "block"
            return
        state["log_path"] = os.fspath(path)
        state["mode"] = "record"
    install()
    _watch_sockets(state)
    _log(state, event="recording", argv=sys.argv[:3], guard_installed=installed())


def record_file() -> str | None:
    """The file this process records to, or None."""
    if "botocore.httpsession" not in sys.modules:
        return None
    state = _state()
    return state.get("log_path") if state else None


def read_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The entries of a record file (skipping a torn last line)."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def left_the_machine(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The logged attempts that went (or tried to go) anywhere but loopback."""
    return [e for e in entries if "layer" in e and (e.get("blocked") or not is_loopback_host(e.get("host")))]


def shared_state() -> dict[str, Any]:
    """The guard's state dict (installs nothing). ``coursekit.aws`` keeps the active
    sandbox there, so that it too survives a re-import of coursekit."""
    return _state(create=True)  # type: ignore[return-value]


__all__ = [
    "RealAWSBlocked",
    "Attempt",
    "install",
    "installed",
    "set_mode",
    "mode",
    "recorded",
    "clear_recorded",
    "blocked_count",
    "is_loopback_host",
    "shared_state",
    "record_to",
    "record_file",
    "read_log",
    "left_the_machine",
    "LOG_ENV",
]
