"""A real orchestrator on the learner's own engine: Docker Swarm mode, one node, on 127.0.0.1.

``init()`` turns the engine into a single-node swarm (advertised and listening on 127.0.0.1
only) unless it already is one; a swarm coursekit created carries its labels and is left
again when the session's resources are removed (``engine.cleanup``, the reaper,
``coursekit clean``). A swarm the learner had before is used and never left.

Networking, detected rather than assumed (:func:`networking`): Swarm's usual service
networking (a virtual IP per service and the "routing mesh" that publishes a port on every
node) needs the kernel's IPVS load balancer. Where the kernel has no IPVS, services use DNS
round-robin (``endpoint_mode="dnsrr"``): the service name resolves to every task's address.
Either way coursekit publishes nothing on the host (a swarm port binds every address, and
nothing of ours listens beyond 127.0.0.1): the notebook reaches services through a small
*probe* container on the same overlay network (:class:`Probe`).

What the lesson does with it: :func:`service` (replicas, health check, update policy; images
from a registry pinned to their digest by :func:`pinned`), :func:`scale`, :func:`kill_a_task` and
:func:`watch` (self-healing, plotted), :func:`watch_task` (a health check turning a task
unhealthy), :func:`update` and :func:`watch_update` (a rolling update, and a rollback).

Lesson: ``07-orchestration`` (and its exercise); the pipeline's deploy stage (``08-ci-cd``) rolls services here.
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from typing import Any, Optional

from ..docker import engine, sdk
from ..errors import CoursekitError, OrchestrationError, RegistryError

ADDR = "127.0.0.1"
#: The small image of the containers this module starts to look at the network (IPVS, a probe).
HELPER_IMAGE = "coursekit/busybox:v1"


@dataclass(frozen=True)
class Networking:
    ipvs: bool
    endpoint_mode: str   # "vip" (IPVS load-balances a virtual IP) or "dnsrr" (DNS round-robin)
    reason: str


def state() -> str:
    """``inactive``, ``active``, ``pending``, ``error`` or ``locked``: this engine's swarm state."""
    return engine.client().info().get("Swarm", {}).get("LocalNodeState", "inactive")


def is_ours(session: Optional[str] = None) -> bool:
    """The engine's swarm was created by coursekit (by ``session``, if given)."""
    cl = engine.client()
    try:
        cl.swarm.reload()
    except Exception:
        return False
    labels = (cl.swarm.attrs.get("Spec") or {}).get("Labels") or {}
    return labels.get(engine.OWNER) == engine.OWNER_VALUE and (session is None or
                                                               labels.get(engine.SESSION) == session)


def init(lesson: Optional[str] = None) -> dict:
    """Make this engine a (single-node) swarm manager, unless it is one already; returns its info."""
    cl = engine.client()
    st = state()
    if st == "inactive":
        engine.track()  # the reaper leaves the swarm if this process dies
        try:
            cl.swarm.init(advertise_addr=ADDR, listen_addr=f"{ADDR}:2377", labels=engine.labels(lesson))
        except Exception as exc:
            raise engine.explain_docker_error(exc, what="turning on swarm mode") from exc
    elif st != "active":
        raise OrchestrationError(f"this engine's swarm is {st!r}, not usable",
                                 "leave it (`docker swarm leave --force`) and run the cell again")
    info = cl.info()["Swarm"]
    if not info.get("ControlAvailable"):
        if not info.get("NodeID"):  # seen after a `swarm leave` that timed out half-way
            raise OrchestrationError("this engine's swarm mode is half switched off (active, but no node and no "
                                     "manager): an earlier `docker swarm leave` did not finish",
                                     "finish it with `docker swarm leave --force`, then run the cell again")
        raise OrchestrationError("this engine is a swarm worker, not a manager: services cannot be created here",
                                 "run the lesson on a manager node, or leave that swarm (`docker swarm leave`)")
    cl.swarm.reload()
    return {"node": info.get("NodeID"), "managers": info.get("Managers"), "nodes": info.get("Nodes"),
            "ours": is_ours()}


def leave(session: Optional[str] = None) -> bool:
    """Leave the swarm if coursekit turned it on and no service still runs on it; True if it left."""
    rep = engine.CleanReport()
    engine.leave_our_swarm(engine.client(), session, rep)  # also removes the docker_gwbridge it made
    return bool(rep.services)


_networking: Optional[Networking] = None
#: In a grading sandbox (whose gate runs no host-network helper), the endpoint mode the grader found.
ENDPOINT_MODE_ENV = "COURSEKIT_SWARM_ENDPOINT_MODE"


def networking(refresh: bool = False) -> Networking:
    """Does this engine's kernel have IPVS (service VIPs, routing mesh)? Asked of the kernel itself."""
    global _networking
    told = os.environ.get(ENDPOINT_MODE_ENV, "")
    if told in ("vip", "dnsrr") and _networking is None:  # the grading sandbox: the grader asked its kernel
        _networking = Networking(told == "vip", told, "as the grading host's kernel has it (asked by the grader)")
    if _networking is None or refresh:
        out = engine.run(HELPER_IMAGE, ["sh", "-c", "test -e /proc/net/ip_vs && echo yes || echo no"],
                         network_mode="host", lesson="swarm-networking").decode().strip()
        if out == "yes":
            _networking = Networking(True, "vip", "the kernel has IPVS: each service gets a virtual IP that "
                                                  "load-balances across its tasks")
        else:
            _networking = Networking(False, "dnsrr", "this kernel has no IPVS (no /proc/net/ip_vs), so service "
                                                     "virtual IPs and the routing mesh cannot work: services use "
                                                     "DNS round-robin instead (the name resolves to every task)")
    return _networking


def network(name: str, lesson: Optional[str] = None):
    """An attachable overlay network for services and the probe (labelled, reused); turns swarm mode on."""
    init(lesson)
    return engine.network(name, driver="overlay", attachable=True, lesson=lesson)


class Probe:
    """A tiny container on a service network: the notebook's window onto services."""

    def __init__(self, network_name: str, lesson: Optional[str] = None):
        self.container = engine.run(HELPER_IMAGE, ["sleep", "86400"], detach=True, network=network_name,
                                    lesson=lesson, init=True)

    def get(self, url: str, timeout: int = 3) -> Optional[str]:
        """``wget -qO- url`` from inside the network: the body, or None if nothing answered."""
        # (busybox's own -T timeout option crashes the Debian static build: `timeout` does the job)
        code, out = self.container.exec_run(["timeout", str(timeout), "wget", "-qO-", url])
        return out.decode(errors="replace") if code == 0 else None

    def resolve(self, name: str) -> list[str]:
        """The addresses DNS gives for ``name`` inside the network (``tasks.<service>``: every task)."""
        _, out = self.container.exec_run(["nslookup", name])
        lines = out.decode(errors="replace").split("Non-authoritative answer:", 1)[-1]
        return sorted({ln.split()[-1] for ln in lines.splitlines() if ln.startswith("Address:")})

    def remove(self) -> None:
        engine.remove_quietly(self.container)


def tasks(service: Any, state_: Optional[str] = "running") -> list[dict]:
    """The service's tasks whose current state is ``state_`` (``None``: all, history included).

    ``"running"`` counts only tasks the orchestrator *wants* running: a task that is being shut
    down (scaled away, replaced by an update) may still run for a moment, but it is not a replica.
    """
    out = service.tasks()
    if state_ is None:
        return out
    return [t for t in out if t["Status"]["State"] == state_ and
            (state_ != "running" or t.get("DesiredState") == "running")]


def replicas(service: Any) -> tuple[int, int]:
    """(running tasks, desired replicas)."""
    service.reload()
    desired = (service.attrs["Spec"].get("Mode", {}).get("Replicated") or {}).get("Replicas", 0)
    return len(tasks(service)), desired


def wait_replicas(service: Any, n: Optional[int] = None, *, timeout: float = 60.0) -> float:
    """Wait until ``n`` (default: the desired number of) tasks run; returns the seconds it took."""
    t0 = time.monotonic()

    def ok():
        running, desired = replicas(service)
        return running == (desired if n is None else n)
    try:
        engine.wait_until(ok, timeout=timeout, interval=0.25, what=f"{service.name} to reach its replicas")
    except CoursekitError:
        failed = [t for t in tasks(service, None) if t["Status"]["State"] in ("failed", "rejected")]
        why = failed[0]["Status"].get("Err", "") if failed else ""
        raise OrchestrationError(f"{service.name} has {replicas(service)[0]} running tasks, not {n or 'all'} "
                                 f"after {timeout:.0f} s" + (f"; a task failed: {why}" if why else ""),
                                 "look at service.tasks() and `docker service ps --no-trunc NAME`") from None
    return time.monotonic() - t0


def scale(service: Any, n: int, *, timeout: float = 60.0) -> float:
    """``docker service scale NAME=n``, then wait until ``n`` tasks run and no others are still stopping; seconds."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise OrchestrationError(f"a service scales to a whole number of replicas, 0 or more, not {n!r}",
                                 "e.g. swarm.scale(service, 3)")
    ServiceMode = sdk.types().ServiceMode

    t0 = time.monotonic()
    # Not service.scale(): the SDK re-sends the spec with the engine's defaults filled in, which the
    # orchestrator sees as a new task template, and the first scale would restart every task.
    api = engine.client().api
    current = api.inspect_service(service.id)
    spec = current["Spec"]
    if "Replicated" not in spec.get("Mode", {}):
        raise OrchestrationError(f"{service.name} is not a replicated service: it cannot be scaled",
                                 "scale services made with swarm.service(..., replicas=N)")
    api.update_service(service.id, current["Version"]["Index"], task_template=spec["TaskTemplate"],
                       name=spec["Name"], labels=spec.get("Labels"), mode=ServiceMode("replicated", replicas=n),
                       update_config=spec.get("UpdateConfig"), rollback_config=spec.get("RollbackConfig"),
                       endpoint_spec=spec.get("EndpointSpec"))

    def settled():
        running, desired = replicas(service)
        leaving = [t for t in service.tasks() if t["Status"]["State"] == "running" and t["DesiredState"] != "running"]
        return running == desired == n and not leaving
    engine.wait_until(settled, timeout=timeout, interval=0.2, what=f"{service.name} to run {n} replicas")
    return time.monotonic() - t0


def watch(service: Any, seconds: float, every: float = 0.25, *, show: bool = False) -> list[tuple[float, int, int]]:
    """Sample (time, running, desired) for ``seconds``: the data for a replicas-over-time plot.

    ``show=True`` also displays the tasks as a table redrawn in place while it watches
    (:mod:`coursekit.orchestrate.swarmview`).
    """
    live = None
    if show:
        from .swarmview import LiveTasks
        live = LiveTasks(service)
    t0, out = time.monotonic(), []
    while time.monotonic() - t0 < seconds:
        running, desired = replicas(service)
        out.append((round(time.monotonic() - t0, 2), running, desired))
        if live is not None:
            live.update()
        time.sleep(every)
    return out


def kill_a_task(service: Any) -> str:
    """Kill the container of one running task (as a crash would); returns its container id."""
    for t in tasks(service):
        cid = t["Status"].get("ContainerStatus", {}).get("ContainerID")
        if cid:
            with contextlib.suppress(Exception):
                engine.client().containers.get(cid).kill()
                return cid
    raise OrchestrationError(f"{service.name} has no running task to kill", "wait_replicas(service) first")


def running_containers(service: Any) -> set[str]:
    """Container ids of the service's running tasks."""
    return {t["Status"].get("ContainerStatus", {}).get("ContainerID") for t in tasks(service)}


def wait_healed(service: Any, killed: str, *, timeout: float = 60.0) -> float:
    """Wait until the orchestrator has noticed ``killed`` and the desired replicas run again; seconds."""
    t0 = time.monotonic()

    def healed():
        running, desired = replicas(service)
        return killed not in running_containers(service) and running == desired
    engine.wait_until(healed, timeout=timeout, interval=0.2, what=f"{service.name} to replace the killed task")
    return time.monotonic() - t0


def update_state(service: Any) -> str:
    """The rolling update's state: ``updating``, ``completed``, ``rollback_started``, ``rollback_completed``..."""
    service.reload()
    return (service.attrs.get("UpdateStatus") or {}).get("State", "none")


TERMINAL = ("completed", "rollback_completed", "paused", "rollback_paused")


def version_of(image: str) -> str:
    """The tag of an image reference: ``127.0.0.1:5000/web:v2@sha256:...`` -> ``v2``."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else "latest"


def versions(service: Any) -> dict[str, int]:
    """How many running replicas run each version (image tag): ``{"v1": 2, "v2": 1}``."""
    out: dict[str, int] = {}
    for t in tasks(service):
        v = version_of(t["Spec"]["ContainerSpec"]["Image"])
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


def watch_task(service: Any, container_id: str, *, timeout: float = 60.0,
               every: float = 0.25) -> list[tuple[float, str, int, int]]:
    """Follow one task's container until the service runs its desired replicas without it.

    Returns the moments something changed: ``(seconds, the container's health or state, running,
    desired)``, e.g. ``healthy`` -> ``unhealthy`` -> ``exited`` -> ``removed``.
    """
    de = sdk.errors()

    t0, out, last = time.monotonic(), [], None
    while time.monotonic() - t0 < timeout:
        try:
            c = engine.client().containers.get(container_id)
            st = c.attrs["State"]
            what = (st.get("Health") or {}).get("Status", st["Status"]) if st["Status"] == "running" \
                else st["Status"]
        except de.NotFound:
            what = "removed"
        running, desired = replicas(service)
        if (what, running, desired) != last:
            out.append((round(time.monotonic() - t0, 1), what, running, desired))
            last = (what, running, desired)
        if what != "healthy" and what != "starting" and what != "running" and running == desired and \
                container_id not in running_containers(service):
            return out
        time.sleep(every)
    raise OrchestrationError(f"{service.name} did not replace container {container_id[:12]} within {timeout:.0f} s",
                             "look at service.tasks() and `docker service ps --no-trunc NAME`")


def update(service: Any, image: Optional[str] = None, *, pin: bool = True, **kwargs: Any):
    """``docker service update``: a new image (pinned to its digest, as the CLI does) and/or other settings.

    Returns at once; the orchestrator rolls the change out following the service's update policy
    (follow it with :func:`watch_update`).
    """
    service.reload()  # the update must name the service's current version
    if image is not None:
        kwargs["image"] = pinned(image) if pin else image
    try:
        service.update(**kwargs)
    except Exception as exc:
        raise engine.explain_docker_error(exc, image=image, what=f"updating service {service.name}") from exc
    return service


def watch_update(service: Any, probe: Optional["Probe"] = None, url: Optional[str] = None, *,
                 timeout: float = 120.0, every: float = 0.3, asks: int = 3) -> list[dict]:
    """Sample a rolling update until it ends (completed, rolled back or paused).

    Each sample: ``t`` (seconds), ``state`` (:func:`update_state`), ``versions`` (running replicas per
    image tag) and, with a ``probe``, ``answers``: the first word of ``asks`` replies from ``url``.
    """
    t0, out, started = time.monotonic(), [], False
    while True:
        now = round(time.monotonic() - t0, 2)
        st = update_state(service)
        started = started or st in ("updating", "rollback_started")
        answers = [((probe.get(url, timeout=2) or "-").split() or ["-"])[0] for _ in range(asks)] if probe else []
        out.append({"t": now, "state": st, "versions": versions(service), "answers": answers})
        if (started and st in TERMINAL) or (not started and now > 10):
            return out  # (an update that changes nothing never starts)
        if now > timeout:
            raise OrchestrationError(f"the update of {service.name} had not ended after {timeout:.0f} s (state {st})",
                                     "look at `docker service ps NAME` and service.attrs['UpdateStatus']")
        time.sleep(every)


def registry_of(image: str) -> Optional[str]:
    first = image.split("/", 1)[0]
    return first if "/" in image and ("." in first or ":" in first or first == "localhost") else None


def pinned(image: str) -> str:
    """``name:tag@sha256:...``: the digest the registry gives for the tag now, as ``docker service create`` records it.

    Every task (on every node) then runs exactly that image, even if the tag is moved later;
    an update is a new digest. Images that name no registry host (local-only course images)
    are returned as they are: there is no registry to ask.
    """
    if "@" in image or registry_of(image) is None:
        return image
    try:
        digest = engine.client().images.get_registry_data(image).id
    except Exception as exc:
        raise RegistryError(f"the registry {registry_of(image)} has no {image}, or does not answer ({exc})",
                            "push the image there first (registry.push(image, repo, tag)), and check the "
                            "name and tag") from None
    return f"{image}@{digest}"


def _ns(seconds: float, what: str = "a duration") -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise OrchestrationError(f"{what} is a number of seconds, not {seconds!r}", "e.g. 3 or 0.5 (not '3s')")
    return int(seconds * 1e9)


def healthcheck(test: list[str], *, interval: float = 1.0, timeout: float = 1.0, retries: int = 2,
                start_period: float = 1.0):
    """A HEALTHCHECK for a service, in seconds (the API wants nanoseconds). ``test``: ``["CMD", ...]``."""
    Healthcheck = sdk.types().Healthcheck

    if not isinstance(test, (list, tuple)) or not test or test[0] not in ("CMD", "CMD-SHELL", "NONE"):
        raise OrchestrationError(f"a health check's test is a list that starts with 'CMD' (or 'CMD-SHELL'), not {test!r}",
                                 "e.g. ['CMD', 'wget', '-qO-', 'http://127.0.0.1:8000/']")
    return Healthcheck(test=list(test), interval=_ns(interval, "interval"), timeout=_ns(timeout, "timeout"),
                       retries=retries, start_period=_ns(start_period, "start_period"))


def service(name: str, image: str, command: Any = None, *, network: str, replicas: int = 1,
            health: Any = None, parallelism: int = 1, delay: float = 1.0, monitor: float = 3.0,
            order: str = "start-first", failure_action: str = "rollback", job: bool = False,
            pin: bool = True, restart_delay: Optional[float] = None, lesson: Optional[str] = None,
            **kwargs: Any):
    """``docker service create``, labelled, on ``network``, with the update policy the lesson teaches.

    ``parallelism`` tasks are replaced at a time, ``delay`` s apart; each new task is watched for
    ``monitor`` s, and if it fails (or its health check does) the update ``failure_action``s:
    ``rollback`` puts the previous version back by itself. ``order="start-first"`` starts the new
    task before stopping the old one. ``job=True`` makes a replicated job: ``replicas`` tasks that
    run to completion (``kwargs`` may set ``concurrency``). Tasks run with ``init`` so stops are quick.
    ``pin``: an image from a registry is pinned to its digest (:func:`pinned`). ``restart_delay``:
    seconds before a failed task is replaced (the engine's default is 5).
    """
    de = sdk.errors()
    t = sdk.types()
    EndpointSpec, RestartPolicy, ServiceMode, UpdateConfig = t.EndpointSpec, t.RestartPolicy, t.ServiceMode, t.UpdateConfig

    policy = dict(parallelism=parallelism, delay=_ns(delay, "delay"), monitor=_ns(monitor, "monitor"), order=order)
    if job:
        mode = ServiceMode("replicated-job", replicas=replicas, concurrency=kwargs.pop("concurrency", 1))
        extra = dict(restart_policy=RestartPolicy(condition="on-failure", max_attempts=1))
    else:
        mode = ServiceMode("replicated", replicas=replicas)
        try:
            extra = dict(update_config=UpdateConfig(failure_action=failure_action, **policy),
                         rollback_config=UpdateConfig(failure_action="pause", **policy))
        except de.InvalidArgument as exc:
            raise OrchestrationError(f"not a valid update policy: {exc}", "order is 'start-first' or 'stop-first'; "
                                     "failure_action is 'rollback', 'pause' or 'continue'") from None
        if restart_delay is not None:
            extra["restart_policy"] = RestartPolicy(condition="any", delay=_ns(restart_delay, "restart_delay"))
    init(lesson)
    cl = engine.client()
    for old in cl.services.list(filters={"name": name}):
        if old.name == name:
            if not engine.is_ours(old.attrs["Spec"].get("Labels")):
                raise OrchestrationError(f"a service named {name!r} exists and coursekit did not create it",
                                         f"pick another name, or remove it: docker service rm {name}")
            old.remove()
    labels = engine.labels(lesson)
    kwargs.setdefault("init", True)
    if pin:
        image = pinned(image)
    engine.track()
    try:
        return cl.services.create(image, command, name=name, networks=[network], mode=mode, labels=labels,
                                  container_labels=labels, healthcheck=health,
                                  endpoint_spec=None if job else EndpointSpec(mode=networking().endpoint_mode),
                                  **extra, **kwargs)
    except Exception as exc:
        raise engine.explain_docker_error(exc, image=image, what=f"creating service {name}") from exc
