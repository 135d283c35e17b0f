"""What a submission may ask of the engine, checked before anything reaches it.

Each request the sandbox sends is routed by its method and path (after the API version prefix is
taken off and the path decoded once; ``..``, ``//``, NUL and a second level of %-encoding are
refused: :mod:`.routes`) to one rule: here, or in :mod:`.containers`, :mod:`.images` and
:mod:`.storage` (volumes and networks), which :class:`Policy` brings together. A rule refuses (Docker's own error JSON, ``{"message": ...}``, naming
the rule and what is allowed), answers itself, or forwards a rewritten request and, where the
answer lists or describes objects, rewrites the answer. Anything not listed is refused.

The rules, in short:

* **images**: a container starts only from one of the course's images or an image this
  submission built; nothing is pulled, loaded or pushed; tags live under the submission's
  namespace (:class:`~coursekit.grading.gate.tenant.Tenant`); the course's images cannot be removed;
* **containers**: the sandbox's limits are forced on every one (memory = swap, processes, CPUs,
  open files, no new privileges, every capability dropped, a capped log); never privileged, no
  devices, no security-opt, no sysctls, no host namespaces, no ``container:<other>`` modes, no
  host bind mounts (named volumes of this submission only); its network is the submission's own
  internal network (no route out) or none; published ports are the sandbox's ``127.0.0.1`` ports
  (:mod:`coursekit.grading.gate.server` tunnels them), never the host's;
* **volumes** (local driver, no driver options) and **networks** (internal, bridge driver) of this
  submission only;
* **builds**: no network, capped context and memory, ``FROM`` the course's images (or ``scratch``,
  or an earlier stage), no ``ADD`` of a URL, the tag under the submission's namespace;
* every object lookup (inspect, logs, exec, attach, stop, remove...) finds only this submission's
  objects; lists show only them (and the course's images);
* caps on how many containers, images, volumes and networks a submission makes; everything it
  made is removed when it ends (:meth:`Policy.remove_all`), and carries the grader's labels, so
  that the grader's reaper removes it if the grader is killed;
* **registries**: a container of the course's registry image is the submission's registry; images are
  pushed to and pulled from it (and nowhere else), the engine reaching it through a port the gate
  listens on on the grading host's loopback (:mod:`.tenant` says how names are kept);
* **Swarm services** where the engine is a swarm manager (:mod:`.services`): task templates held to
  the container rules, their own overlay networks, no published ports; the swarm itself is the grader's;
* every JSON body is read as the engine will read it (:mod:`.keys`: Go matches keys case-insensitively);
* not served: plugins, events, commit, load, system-wide prune or df.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Callable

from ...docker import engine
from ...dockerfile.limits import ContainerLimits
from . import keys
from .containers import ContainerRules
from .images import ImageRules
from .routes import Answer, Caps, Forward, Refused, Route, missing, refuse, route
from .services import ServiceRules
from .storage import StorageRules
from .tenant import TENANT, Tenant

__all__ = ["Answer", "Caps", "Forward", "Policy", "Refused", "Route", "route"]


@dataclass
class Policy(ContainerRules, ImageRules, StorageRules, ServiceRules):
    """The rules for one submission: ``decide(route, body)`` -> Forward or Answer (or raises Refused)."""

    tenant: Tenant
    limits: ContainerLimits
    network: str                   # the submission's own internal network (stored name)
    course_images: dict[str, str]  # course image tag -> image id
    caps: Caps = field(default_factory=Caps)
    swarm: bool = False            # the engine is a swarm manager, and services are served
    refusals: list[str] = field(default_factory=list)
    on_ports: Callable[[], None] = lambda: None   # a container with published ports has started
    on_registry: Callable[[int], int] = lambda port: refuse("registry", "no registry is served here")

    # ------------------------------------------------------------------ routing
    def decide(self, r: Route, body: bytes):
        p = r.parts
        if not p:
            refuse("endpoint", "this endpoint is not served", 404)
        head = p[0]
        if head == "_ping" and r.method in ("GET", "HEAD"):
            return Forward(r.method, "/_ping")
        if head == "version" and r.method == "GET" and len(p) == 1:
            return Forward("GET", "/version")
        if head == "info" and r.method == "GET" and len(p) == 1:
            return Forward("GET", "/info", then=self._info)
        if head == "containers":
            return self._containers(r, body)
        if head == "exec":
            return self._exec(r, body)
        if head == "images":
            return self._images(r)
        if head == "build" and len(p) == 1 and r.method == "POST":
            return self._build(r, body)
        if head == "volumes":
            return self._volumes(r, body)
        if head == "networks":
            return self._networks(r, body)
        if head in ("swarm", "services", "nodes", "tasks", "secrets", "configs"):
            return self._swarm_routes(r, body)
        if head == "distribution" and r.method == "GET" and len(p) >= 3 and p[-1] == "json":
            return self._distribution("/".join(p[1:-1]))
        if head in ("plugins", "system", "events", "session", "auth", "commit"):
            refuse(head, f"/{head} is not served to a submission")
        refuse("endpoint", f"{r.method} /{'/'.join(p)} is not served to a submission", 404)

    # ------------------------------------------------------------------ lookups (as the grader: real names)
    def _admin(self):
        return engine.client().api

    def container(self, ref: str) -> dict:
        """This submission's container named (or id'd) ``ref``, inspected; 404 for anything else."""
        api = self._admin()
        for candidate in ([ref] if Tenant.looks_like_id(ref) else []) + [self.tenant.name(ref)]:
            with contextlib.suppress(Exception):
                doc = api.inspect_container(candidate)
                if self.tenant.owns((doc.get("Config") or {}).get("Labels")):
                    return doc
        missing("container", ref)

    def image(self, ref: str) -> dict:
        """An image this submission may use: one it built (by its own tag or id), or a course image."""
        api = self._admin()
        candidates = [ref]
        if not Tenant.looks_like_id(ref):
            try:
                candidates.insert(0, self.tenant.tag(ref))
            except Refused:  # a registry it does not run: no such image
                candidates = []
        for candidate in candidates:
            try:
                doc = api.inspect_image(candidate)
            except Exception:  # noqa: BLE001 - not there: try the next
                continue
            labels = (doc.get("Config") or {}).get("Labels") or {}
            if self.tenant.owns(labels) or doc["Id"] in self.course_images.values():
                return doc
        missing("image", ref)

    def _distribution(self, name: str):
        """An image's digest in a registry (``docker service create`` pins to it): only a registry it runs."""
        try:
            stored = self.tenant.tag(name)
        except Refused:
            stored = ""
        if not stored or stored.startswith(self.tenant.repo):  # (coursekit asks to learn if a hub answers: no)
            raise Refused(404, "no image registry is reachable from the grading sandbox", quiet=True)
        return Forward("GET", f"/distribution/{stored}/json")

    def _count(self, kind: str) -> int:
        api, flt = self._admin(), {"label": [f"{TENANT}={self.tenant.id}"]}
        if kind == "containers":
            return len(api.containers(all=True, filters=flt))
        if kind == "images":
            return len(api.images(filters=flt))
        if kind == "volumes":
            return len(api.volumes(filters=flt).get("Volumes") or [])
        if kind == "services":
            return len(api.services(filters=flt))
        return len(api.networks(filters=flt))

    def _cap(self, kind: str) -> None:
        cap = getattr(self.caps, kind)
        if self._count(kind) >= cap:
            refuse(f"{kind} cap", f"a submission makes at most {cap} {kind}; remove some first", 429)

    def _json(self, body: bytes) -> dict:
        if len(body) > self.caps.body_bytes:
            refuse("size", f"a request body is at most {self.caps.body_bytes:,} bytes", 413)
        doc = keys.loads(body)  # in the API's own spelling: Go's JSON reads keys case-insensitively
        if not isinstance(doc, dict):
            refuse("body", "the request body is a JSON object", 400)
        return doc

    def _info(self, doc: dict) -> dict:
        keep = ("ServerVersion", "OperatingSystem", "OSType", "Architecture", "NCPU", "MemTotal", "KernelVersion",
                "Driver", "CgroupVersion", "DefaultRuntime", "SecurityOptions")
        out = {k: doc.get(k) for k in keep}
        n = len(self._admin().containers(all=True, filters={"label": [f"{TENANT}={self.tenant.id}"]}))
        out.update(Containers=n, Name="coursekit-grading-sandbox", Swarm=self.swarm_info(doc.get("Swarm") or {}))
        return out

    # ------------------------------------------------------------------ the end
    def remove_all(self) -> list[str]:
        """Remove everything this submission made (containers, networks, volumes, images); what was removed."""
        api, flt, gone = self._admin(), {"label": [f"{TENANT}={self.tenant.id}"]}, []
        if self.swarm:
            with contextlib.suppress(Exception):
                for svc in api.services(filters=flt):
                    with contextlib.suppress(Exception):
                        api.remove_service(svc["ID"])
                        gone.append(f"service {svc['Spec']['Name']}")
            tasks = {"label": flt["label"] + ["com.docker.swarm.task.id"]}
            deadline = time.monotonic() + 20  # the engine stops the tasks' containers itself, a moment later
            while time.monotonic() < deadline and api.containers(all=True, filters=tasks):
                time.sleep(0.2)
        for c in api.containers(all=True, filters=flt):
            with contextlib.suppress(Exception):
                api.remove_container(c["Id"], force=True, v=True)
                gone.append(f"container {c['Id'][:12]}")
        for n in api.networks(filters=flt):
            for _ in range(40 if n.get("Driver") == "overlay" else 1):  # a removed task leaves it a moment later
                try:
                    api.remove_network(n["Id"])
                    gone.append(f"network {n['Name']}")
                    break
                except Exception:  # noqa: BLE001 - still in use, or gone
                    time.sleep(0.25)
        for v in api.volumes(filters=flt).get("Volumes") or []:
            with contextlib.suppress(Exception):
                api.remove_volume(v["Name"], force=True)
                gone.append(f"volume {v['Name']}")
        for im in api.images(filters=flt):
            with contextlib.suppress(Exception):
                api.remove_image(im["Id"], force=True)
                gone.append(f"image {im['Id'][7:19]}")
        names = set(self.tenant.tags)  # its tags on the course's images, and names from its registries
        with contextlib.suppress(Exception):
            names |= {n for im in api.images() for n in (im.get("RepoTags") or []) + (im.get("RepoDigests") or [])
                      if self.tenant.mine(n)}
        for tag in sorted(names):
            with contextlib.suppress(Exception):
                api.remove_image(tag)
                gone.append(f"tag {tag}")
        return gone
