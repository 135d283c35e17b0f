"""The one place coursekit talks to the Docker engine.

Every container, network and volume coursekit creates goes through here, so that:

* it carries coursekit's labels (``org.coursekit.owner=coursekit`` plus the session that
  made it), which is how ``coursekit clean`` and the tests find what is ours;
* it is removed when the ``with`` block ends, when the Python process exits, or (if the
  process is killed, as a restarted Jupyter kernel is) by a small watchdog process,
  ``coursekit.docker.reaper``;
* a missing, stopped or too-old engine is reported as :class:`EngineUnavailable` with a
  sentence saying what to do, never as a connection traceback.

Lessons: introduced in ``00-welcome`` (the environment check) and used by every Docker
lesson. Set ``COURSEKIT_NO_ENGINE=1`` to make coursekit behave as on Binder.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import CoursekitError, DockerError, EngineUnavailable
from .waiting import ContainerExited, host_port, log_tail, port_free, wait_http, wait_running, wait_tcp, wait_until  # noqa: F401,E501 (re-exported)

# The label keys (every resource coursekit creates carries OWNER and SESSION), used here and by lessons.
from .labels import (CALL, GATE_SESSION_LABEL, HOST, LESSON, OWNER, OWNER_VALUE, PID, SCRATCH_LABEL,  # noqa: F401
                     SESSION)

#: The oldest engine API the course uses (Docker 20.10: swarm jobs, --init, cgroup limits).
MIN_API_VERSION = "1.41"
#: Seconds a plain API call may take before we call the engine unresponsive.
DEFAULT_TIMEOUT = 60

NO_ENGINE_ENV = "COURSEKIT_NO_ENGINE"

_lock = threading.RLock()
_client = None
_status: "EngineStatus | None" = None
_reaper: subprocess.Popen | None = None
_atexit_registered = False

SESSION_ID = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _host_id() -> str:
    """Identifies this machine so the reaper only judges processes it can see."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return socket.gethostname()


HOST_ID = _host_id()


def no_engine_forced() -> bool:
    """True when the learner (or a test) asked for no-engine mode, as on Binder."""
    return os.environ.get(NO_ENGINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split(".") if p.isdigit())


@dataclass
class EngineStatus:
    """What we know about the engine, for ``doctor`` and for error messages."""

    ok: bool
    reason: str
    fix: str = ""
    url: str = ""
    server_version: str = ""
    api_version: str = ""
    os: str = ""
    details: dict = field(default_factory=dict)


def engine_url() -> str:
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


def how_to_get_an_engine() -> str:
    if sys.platform == "darwin" or sys.platform.startswith("win"):
        return ("start Docker Desktop (install it from Docker's website if needed) and wait until it says "
                "'Engine running', then run this cell again; or carry on in no-engine mode: Docker steps "
                "will explain what they would do")
    return ("on Debian/Ubuntu as root, `./course.sh lab` installs and starts the engine for you; otherwise "
            "install Docker Engine (or Docker Desktop) and start it (`sudo systemctl start docker`); or carry on "
            "in no-engine mode: Docker steps will explain what they would do")


def _classify_connect_error(exc: Exception, url: str) -> EngineStatus:
    text = str(exc)
    if url.startswith("unix://"):
        path = url[len("unix://"):]
        if not os.path.exists(path):
            return EngineStatus(False, f"no Docker engine here: nothing at {path}", how_to_get_an_engine(), url)
        if "Permission denied" in text or "PermissionError" in text:
            return EngineStatus(False, f"not allowed to use the Docker engine at {path}",
                                "add your user to the 'docker' group (then log in again), or run as root", url)
        if "Connection refused" in text or "ConnectionRefused" in text:
            return EngineStatus(False, f"the Docker engine at {path} is not running (connection refused)",
                                how_to_get_an_engine(), url)
    if "timed out" in text.lower() or "timeout" in text.lower():
        return EngineStatus(False, f"the Docker engine at {url} did not answer in time",
                            "check that the engine is not stuck (restart Docker), then run this cell again", url)
    return EngineStatus(False, f"could not reach the Docker engine at {url}: {text.splitlines()[0][:200]}",
                        how_to_get_an_engine(), url)


def _connect(timeout: int) -> tuple[Any, EngineStatus]:
    url = engine_url()
    if no_engine_forced():
        return None, EngineStatus(False, f"this session runs in no-engine mode ({NO_ENGINE_ENV}=1, as on Binder)",
                                  "run the course where a Docker engine runs (on Debian or Ubuntu as root, "
                                  f"`./course.sh lab` installs one); if this machine has one, unset {NO_ENGINE_ENV} "
                                  "and restart the kernel", url)
    try:
        import docker  # heavy: imported only when an engine is wanted
    except ImportError:
        return None, EngineStatus(False, "the docker Python package is not installed",
                                  "run `pip install 'docker>=7.1'` (or `./course.sh lab`, which installs everything)",
                                  url)
    try:
        cl = docker.DockerClient(base_url=url, timeout=timeout, version="auto")
        ver = cl.version()
    except Exception as exc:  # docker raises DockerException wrapping requests errors
        return None, _classify_connect_error(exc, url)
    api = ver.get("ApiVersion", "")
    minimum = os.environ.get("COURSEKIT_MIN_API_VERSION", MIN_API_VERSION)
    st = EngineStatus(True, "the Docker engine answers", url=url, server_version=ver.get("Version", ""),
                      api_version=api, os=f"{ver.get('Os', '')}/{ver.get('Arch', '')}",
                      details={"kernel": ver.get("KernelVersion", "")})
    if _version_tuple(api) < _version_tuple(minimum):
        cl.close()
        st.ok = False
        st.reason = (f"the Docker engine is too old: it speaks API {api} (Docker {st.server_version}), "
                     f"the course needs API {minimum} or newer (Docker 20.10+)")
        st.fix = "upgrade Docker Engine / Docker Desktop, then restart the kernel"
        return None, st
    return cl, st


def status(refresh: bool = False, timeout: int = 10) -> EngineStatus:
    """Probe the engine once (cached) and say whether it can be used, and why not."""
    global _status, _client
    with _lock:
        if _status is None or refresh:
            if _client is not None:
                with contextlib.suppress(Exception):
                    _client.close()
            cl, st = _connect(timeout)
            if cl is not None:
                cl.api.timeout = DEFAULT_TIMEOUT
            _client, _status = cl, st
        return _status


def available() -> bool:
    """True when a usable engine answers (and no-engine mode is not forced)."""
    return status().ok


def answered_before() -> bool:
    """True when this process already found the engine answering; asks nothing (for exit handlers)."""
    return _status is not None and _status.ok


def client():
    """The shared ``docker.DockerClient``; raises :class:`EngineUnavailable` with a fix."""
    st = status()
    if not st.ok:
        raise EngineUnavailable(st.reason, st.fix)
    return _client


def reset() -> None:
    """Forget the cached connection (after starting the engine, or flipping no-engine mode)."""
    global _client, _status
    with _lock:
        if _client is not None:
            with contextlib.suppress(Exception):
                _client.close()
        _client, _status = None, None


# --------------------------------------------------------------------------- labels


def labels(lesson: str | None = None, **extra: str) -> dict[str, str]:
    """The labels every coursekit resource carries (ours, this session, this process)."""
    out = {OWNER: OWNER_VALUE, SESSION: SESSION_ID, PID: str(os.getpid()), HOST: HOST_ID}
    if lesson:
        out[LESSON] = lesson
    out.update({k: str(v) for k, v in extra.items()})
    return out


def _merge_labels(given: Any, lesson: str | None) -> dict[str, str]:
    base = labels(lesson)
    if isinstance(given, dict):
        base.update({k: str(v) for k, v in given.items()})
    elif isinstance(given, (list, tuple)):
        base.update({k: "" for k in given})
    return base


def track() -> None:
    """First resource of this process: make sure it is removed even if we are killed."""
    global _reaper, _atexit_registered
    with _lock:
        if not _atexit_registered:
            atexit.register(cleanup)
            _atexit_registered = True
        if _reaper is None or _reaper.poll() is not None:
            env = dict(os.environ)
            env["COURSEKIT_REAPER_URL"] = engine_url()
            try:
                _reaper = subprocess.Popen(
                    [sys.executable, "-m", "coursekit.docker.reaper", str(os.getpid()), SESSION_ID],
                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    start_new_session=True, env=env,
                )
            except OSError:  # pragma: no cover - cannot spawn; atexit still cleans up
                _reaper = None


# --------------------------------------------------------------------------- errors


def explain_docker_error(exc: Exception, *, image: str | None = None, what: str = "") -> DockerError:
    """Turn a docker SDK exception into a message in the learner's terms."""
    import docker.errors as de

    doing = f" while {what}" if what else ""
    if isinstance(exc, de.ImageNotFound) or (isinstance(exc, de.NotFound) and image and "image" in str(exc).lower()):
        return DockerError(f"the image {image or ''} is not on this engine{doing}".replace("  ", " "),
                           "check the name and tag (`docker images`), or run `coursekit images` to provision "
                           "the course's images")
    if isinstance(exc, de.ContainerError):
        log = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else str(exc.stderr or "")
        tail = "\n".join(log.strip().splitlines()[-10:])
        return DockerError(
            f"the container from {exc.image} exited with code {exc.exit_status}{doing}"
            + (f"; its last output:\n{tail}" if tail else ""),
            "read the output above; exit code 127 means the command was not found in the image, "
            "137 that it was killed (often out of memory)")
    if isinstance(exc, de.APIError):
        msg = exc.explanation or str(exc)
        pull_failed = any(w in msg for w in ("pull access denied", "manifest unknown", "dial tcp", "no such host",
                                             "repository does not exist", "i/o timeout"))
        if image and pull_failed:  # the SDK pulls a missing image before running it
            reason = msg.splitlines()[0].rsplit(": ", 1)[-1][:160]
            return DockerError(f"the image {image} is not on this engine, and pulling it failed ({reason})"
                               f"{doing}",
                               "check the name and tag (`docker images` lists what is here), or run "
                               "`coursekit images` to provision the course's images")
        if "port is already allocated" in msg or "address already in use" in msg:
            m = re.search(r"(?:[\d.]+|\[[\da-f:]*\]):(\d+)", msg)
            port = f"port {m[1]}" if m else "a port you asked to publish"
            return DockerError(f"{port} on this machine is already in use{doing}, so the container cannot "
                               f"publish on it (the engine said: {msg.strip()})",
                               "pick another host port (or None for any free one), or stop what is using it "
                               "(`docker ps`; `ss -ltnp` shows programs outside Docker)")
        if "Conflict" in msg and "already in use" in msg:
            return DockerError(f"that name is already taken{doing}: {msg}",
                               "remove the old container (`coursekit clean`) or pick another name")
        return DockerError(f"the Docker engine refused{doing}: {msg}", "read the engine's reason above")
    if isinstance(exc, de.DockerException):
        return DockerError(f"Docker problem{doing}: {exc}", "check `coursekit doctor`")
    return DockerError(f"unexpected problem{doing}: {exc!r}", "check `coursekit doctor`")


@contextlib.contextmanager
def explaining(image: str | None = None, what: str = "") -> Iterator[None]:
    import docker.errors as de
    import requests.exceptions as rq

    try:
        yield
    except CoursekitError:
        raise
    except (de.DockerException,) as exc:
        raise explain_docker_error(exc, image=image, what=what) from None
    except rq.RequestException as exc:
        raise DockerError(f"the Docker engine stopped answering{(' while ' + what) if what else ''}: {exc}",
                                "check that the engine is still running (`coursekit doctor`)") from None


# --------------------------------------------------------------------------- resources


def _remove_named_container(name: str) -> None:
    """Re-running a notebook must not fail on the container the last run left: replace ours."""
    import docker.errors as de

    try:
        old = client().containers.get(name)
    except de.NotFound:
        return
    if not is_ours(old.labels):
        raise DockerError(f"a container named {name!r} already exists and coursekit did not create it",
                          f"pick another name, or remove it yourself: docker rm -f {name}")
    with contextlib.suppress(de.NotFound):
        old.remove(force=True)


LOOPBACK = "127.0.0.1"


def _loopback_binding(binding: Any, port: str) -> Any:
    """One port binding as the SDK accepts it, pinned to 127.0.0.1; a non-loopback host is refused."""
    if isinstance(binding, list):
        return [_loopback_binding(b, port) for b in binding]
    if isinstance(binding, dict):
        binding = (binding.get("HostIp") or LOOPBACK, binding.get("HostPort"))
    if isinstance(binding, tuple) and binding and isinstance(binding[0], str) and not binding[0].isdigit():
        host, hport = binding[0], (binding[1] if len(binding) > 1 else None)
    else:
        host, hport = LOOPBACK, (binding[0] if isinstance(binding, tuple) else binding)
    if host not in (LOOPBACK, "localhost"):
        raise DockerError(f"publishing {port} on {host} would let other machines reach this container",
                          f"coursekit publishes on 127.0.0.1 only: use ports={{{port!r}: None}} for a free "
                          "port, or an int for a fixed one")
    return (LOOPBACK, int(hport)) if hport not in (None, "") else (LOOPBACK,)


def _loopback_ports(kwargs: dict) -> None:
    """Published ports bind to 127.0.0.1 (``None`` = any free port); nothing listens beyond it."""
    if kwargs.get("publish_all_ports"):
        raise DockerError("publish_all_ports would publish every exposed port on all of this machine's "
                          "addresses", "publish the ports you need: ports={'8000/tcp': None}")
    if kwargs.get("ports"):
        kwargs["ports"] = {str(p): _loopback_binding(b, str(p)) for p, b in kwargs["ports"].items()}


def _prepare_container(kwargs: dict, lesson: str | None):
    """Labels in, ports on loopback, a leftover of ours with the same name out, the reaper watching."""
    kwargs["labels"] = _merge_labels(kwargs.get("labels"), lesson)
    _loopback_ports(kwargs)
    if kwargs.get("name"):
        _remove_named_container(kwargs["name"])
    cl = client()
    track()
    return cl



@contextlib.contextmanager
def _no_half_started(cl, kwargs: dict) -> Iterator[None]:
    """A container created but refused at start (a taken port, say) is removed, not left behind."""
    kwargs["labels"][CALL] = uuid.uuid4().hex[:12]
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            for c in cl.containers.list(all=True, filters={"label": f"{CALL}={kwargs['labels'][CALL]}"}):
                remove_quietly(c)
        raise


def run(image: str, command: Any = None, *, lesson: str | None = None, **kwargs: Any):
    """``docker run``, labelled: the same arguments as ``client.containers.run``.

    Without ``detach=True`` it returns the output (bytes) and, unless ``remove=False``,
    removes the container. A non-zero exit raises a :class:`DockerError` quoting the
    exit code and the container's last lines of output.
    """
    if not kwargs.get("detach"):
        kwargs.setdefault("remove", True)
    cl = _prepare_container(kwargs, lesson)
    with explaining(image, f"running {image}"), _no_half_started(cl, kwargs):
        return cl.containers.run(image, command, **kwargs)


def create(image: str, command: Any = None, *, lesson: str | None = None, **kwargs: Any):
    """``docker create``, labelled (then ``.start()`` it)."""
    cl = _prepare_container(kwargs, lesson)
    with explaining(image, f"creating a container from {image}"):
        return cl.containers.create(image, command, **kwargs)


@contextlib.contextmanager
def container(image: str, command: Any = None, *, lesson: str | None = None, **kwargs: Any):
    """A detached container that is removed (with its anonymous volumes) when the block ends."""
    kwargs["detach"] = True
    c = run(image, command, lesson=lesson, **kwargs)
    try:
        yield c
    finally:
        remove_quietly(c)


def network(name: str, *, lesson: str | None = None, **kwargs: Any):
    """Create (or reuse our existing) network of that name, labelled."""
    cl = client()
    for net in cl.networks.list(names=[name]):
        if net.name == name:
            if is_ours(net.attrs.get("Labels")):
                return net
            raise DockerError(f"a network named {name!r} exists and coursekit did not create it",
                              f"pick another name, or remove it: docker network rm {name}")
    track()
    kwargs["labels"] = _merge_labels(kwargs.get("labels"), lesson)
    with explaining(what=f"creating network {name}"):
        return cl.networks.create(name, **kwargs)


def volume(name: str | None = None, *, lesson: str | None = None, **kwargs: Any):
    """Create (or reuse our existing) volume, labelled."""
    import docker.errors as de

    cl = client()
    if name:
        try:
            v = cl.volumes.get(name)
            if is_ours(v.attrs.get("Labels")):
                return v
            raise DockerError(f"a volume named {name!r} exists and coursekit did not create it",
                              f"pick another name, or remove it: docker volume rm {name}")
        except de.NotFound:
            pass
    track()
    kwargs["labels"] = _merge_labels(kwargs.get("labels"), lesson)
    with explaining(what="creating a volume"):
        return cl.volumes.create(name=name, **kwargs)


def remove_quietly(container: Any) -> None:
    """Remove a container and its anonymous volumes; never raise (runs in ``finally``)."""
    with contextlib.suppress(Exception):
        container.remove(force=True, v=True)


# --------------------------------------------------------------------------- cleanup


@dataclass
class CleanReport:
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(len(x) for x in (self.containers, self.networks, self.volumes, self.services, self.images))

    def __str__(self) -> str:
        if not self.total:
            return "nothing of coursekit's to remove"
        parts = [f"{len(v)} {k}" for k, v in vars(self).items() if v]
        return "removed " + ", ".join(parts)


def is_ours(resource_labels: dict | None) -> bool:
    """Created through this module: the owner label *and* a session label.

    Containers inherit their image's labels, and the course's images carry the owner label
    too; only the session label tells a container coursekit started from one that someone
    else started from a course image.
    """
    lab = resource_labels or {}
    return lab.get(OWNER) == OWNER_VALUE and bool(lab.get(SESSION))


def ours_filter(session: str | None = None) -> dict:
    """Engine-side filter for resources coursekit started (of one session, or of all)."""
    return {"label": [f"{OWNER}={OWNER_VALUE}", f"{SESSION}={session}" if session else SESSION]}




def leave_our_swarm(cl, session: str | None, rep: CleanReport) -> None:
    """Swarm mode that coursekit turned on is turned off again once no service runs on it; the learner's stays."""
    with contextlib.suppress(Exception):
        if cl.info().get("Swarm", {}).get("LocalNodeState") != "active":
            return
        cl.swarm.reload()
        lab = (cl.swarm.attrs.get("Spec") or {}).get("Labels") or {}
        if lab.get(OWNER) == OWNER_VALUE:  # turned on by coursekit (by whichever notebook)
            if cl.services.list():
                return  # another notebook still runs services on it: the last one out turns it off
            cl.swarm.leave(force=True)
            rep.services.append("(swarm mode)")
            for net in cl.networks.list(names=["docker_gwbridge"]):  # swarm init made it; unused now
                net.reload()
                if not net.attrs.get("Containers"):
                    net.remove()
                    rep.networks.append(net.name)


def remove_resources(cl, session: str | None = None, images: bool = False) -> CleanReport:
    """Remove coursekit's services, containers, networks, volumes (of one session, or all)."""
    import docker.errors as de

    rep = CleanReport()
    flt = ours_filter(session)
    with contextlib.suppress(de.APIError):  # not a swarm manager: no services
        for svc in cl.services.list(filters=flt):
            with contextlib.suppress(de.NotFound, de.APIError):
                svc.remove()
                rep.services.append(svc.name)
    # sparse: no inspect per container, so one that disappears meanwhile cannot fail the whole listing
    for c in cl.containers.list(all=True, filters=flt, sparse=True):
        with contextlib.suppress(de.NotFound, de.APIError):
            c.remove(force=True, v=True)
            rep.containers.append((c.attrs.get("Names") or [c.id[:12]])[0].lstrip("/"))
    leave_our_swarm(cl, session, rep)
    for n in cl.networks.list(filters=flt):
        with contextlib.suppress(de.NotFound, de.APIError):
            n.remove()
            rep.networks.append(n.name)
    for v in cl.volumes.list(filters=flt):
        with contextlib.suppress(de.NotFound, de.APIError):
            v.remove(force=True)
            rep.volumes.append(v.name)
    if session:  # the images graded submissions built through this session's gates
        for im in cl.images.list(filters={"label": f"{GATE_SESSION_LABEL}={session}"}):
            with contextlib.suppress(de.NotFound, de.APIError):
                cl.images.remove(im.id, force=True)
                rep.images.append((im.tags or [im.short_id])[0])
    if images:
        # Images carry no session: throw-away ones are marked as scratch when built.
        img_flt = {"label": [f"{OWNER}={OWNER_VALUE}", f"{SCRATCH_LABEL}=1"]}
        for im in cl.images.list(filters=img_flt):
            with contextlib.suppress(de.NotFound, de.APIError):
                cl.images.remove(im.id, force=True)
                rep.images.append((im.tags or [im.short_id])[0])
    return rep


def scratch_path(session: str = SESSION_ID) -> Path:
    """Where a session keeps its temporary files (saved images, build contexts...)."""
    return Path(tempfile.gettempdir(), f"coursekit-{session}")


def scratch_dir() -> Path:
    """This session's temporary folder, created on demand; removed at exit or by the reaper."""
    path = scratch_path()
    path.mkdir(mode=0o700, exist_ok=True)
    track()
    return path


def cleanup() -> CleanReport:
    """Remove everything this Python process created. Safe to call any time, any number of times."""
    shutil.rmtree(scratch_path(), ignore_errors=True)
    if _status is None or not _status.ok or _client is None:
        return CleanReport()
    try:
        return remove_resources(_client, SESSION_ID)
    except Exception:
        return CleanReport()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_dead_sessions() -> CleanReport:
    """Remove resources left by coursekit processes on this machine that have died."""
    cl = client()
    rep = CleanReport()
    seen: dict[str, bool] = {}
    for c in cl.api.containers(all=True, filters=ours_filter()):  # the plain list: no inspect race
        lab = c.get("Labels") or {}
        sess = lab.get(SESSION, "")
        if sess in seen or lab.get(HOST) != HOST_ID:
            continue
        pid = int(lab.get(PID, "0") or 0)
        seen[sess] = pid_alive(pid)
        if not seen[sess] and sess:
            r = remove_resources(cl, sess)
            for k in vars(rep):
                getattr(rep, k).extend(getattr(r, k))
    _reap_dead_scratch()
    return rep


def _reap_dead_scratch() -> None:
    """Temporary folders of this machine's coursekit processes that died without their reaper."""
    for path in scratch_path("").parent.glob(f"coursekit-{socket.gethostname()}-*-*"):
        pid = path.name.rsplit("-", 2)[-2]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def clean(images: bool = False) -> CleanReport:
    """``coursekit clean``: remove every coursekit-labelled resource on the engine.

    Course images (``coursekit/...``) stay: they are a cache, not a leftover. With
    ``images=True``, images that lessons built as throw-away examples go too.
    """
    return remove_resources(client(), None, images=images)
