"""What a submission may ask of the engine, checked before anything reaches it.

Each request the sandbox sends is routed by its method and path (after the API version prefix is
taken off and the path decoded once; ``..``, ``//``, NUL and a second level of %-encoding are
refused) to one rule here. A rule refuses (Docker's own error JSON, ``{"message": ...}``, naming
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
* not served (yet): Swarm, services, registries, plugins, events, system-wide prune or df.
"""
from __future__ import annotations

import contextlib
import io
import json
import re
import secrets
import tarfile
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from ...docker import engine
from ...dockerfile.limits import ContainerLimits, size_bytes
from ...dockerfile.syntax import parse as parse_dockerfile
from .tenant import DEFAULT_NETWORK, GRADER, TENANT, Tenant

VERSION = re.compile(r"/v(\d+\.\d+)(/.*)\Z")
URL = re.compile(r"[a-z][a-z0-9+.-]*://", re.I)
#: HostConfig keys a submission may set (with the values it gives); anything else, set, is refused.
HOST_KEYS_FREE = {"AutoRemove", "RestartPolicy", "Init", "ReadonlyRootfs", "ExtraHosts", "Dns", "DnsSearch",
                  "DnsOptions", "GroupAdd", "OomScoreAdj", "ConsoleSize", "LogConfig", "Tmpfs", "StopSignal",
                  "PublishAllPorts", "Binds", "Mounts", "NetworkMode", "PortBindings", "Memory", "MemorySwap",
                  "PidsLimit", "NanoCpus", "ShmSize", "CapDrop", "Ulimits", "SecurityOpt", "CapAdd",
                  "Privileged", "IpcMode", "PidMode", "UTSMode", "UsernsMode", "CgroupnsMode", "MemoryReservation",
                  "CpuShares", "KernelMemory", "MemorySwappiness"}
NAMESPACES = ("IpcMode", "PidMode", "UTSMode", "UsernsMode", "CgroupnsMode")
#: The capabilities a container keeps (every other one is dropped): what an image's entrypoint needs to hand
#: its files to a service user and become it (PostgreSQL's does), on the container's own files only. Docker's
#: defaults minus the rest (NET_RAW, MKNOD, SETFCAP, SETPCAP, SYS_CHROOT, AUDIT_WRITE, NET_BIND_SERVICE).
CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID")


class Refused(Exception):
    """A request the policy does not let through: ``status`` and Docker's error message."""

    def __init__(self, status: int, message: str, quiet: bool = False):
        super().__init__(message)
        self.status, self.message = status, message
        self.quiet = quiet or status == 404  # "no such container" is an answer, not a refusal worth a note


def refuse(rule: str, allowed: str, status: int = 403):
    raise Refused(status, f"refused by the grading sandbox ({rule}): {allowed}")


def missing(kind: str, ref: str):
    raise Refused(404, f"No such {kind}: {ref}")


@dataclass
class Forward:
    """Send this to the engine; ``then`` rewrites a JSON answer; ``stream`` passes chunks on as they come."""

    method: str
    path: str                       # without the version prefix
    query: str = ""
    body: bytes = b""
    then: Callable[[Any], Any] | None = None
    lines: Callable[[dict], dict] | None = None   # a stream of JSON lines, rewritten line by line
    after: Callable[[int, Any], None] | None = None  # (status, JSON answer) once it is in


@dataclass
class Answer:
    """Answered by the gate itself (what is true for this submission, without asking the engine)."""

    status: int
    doc: Any


@dataclass
class Caps:
    """How much one submission may make."""

    containers: int = 30
    images: int = 30
    volumes: int = 20
    networks: int = 10
    body_bytes: int = 1 << 20           # a JSON request body
    context_bytes: int = 50 << 20       # a build context
    answer_bytes: int = 32 << 20        # a JSON answer the gate rewrites


@dataclass
class Route:
    method: str
    version: str
    parts: list[str]
    query: dict[str, list[str]]
    raw_query: str


def route(method: str, target: str) -> Route:
    """The request's path, checked and split; raises Refused for a path no client sends."""
    split = urlsplit(target)
    if "%" in unquote(split.path):
        refuse("path", "a path is %-encoded once at most", 400)
    path = unquote(split.path)
    version = ""
    if m := VERSION.fullmatch(path):
        version, path = m[1], m[2]
    parts = path.split("/")[1:]
    if not path.startswith("/") or "\x00" in path or any(p in ("", ".", "..") for p in parts[:-1]) \
            or parts[-1:] in (["."], [".."]):
        refuse("path", "no empty, '.' or '..' parts in an API path", 400)
    if parts and parts[-1] == "":
        parts = parts[:-1]
    return Route(method.upper(), version, parts, parse_qs(split.query, keep_blank_values=True), split.query)


def one(query: dict, key: str, default: str = "") -> str:
    return (query.get(key) or [default])[0]


@dataclass
class Policy:
    """The rules for one submission: ``decide(route, body)`` -> Forward or Answer (or raises Refused)."""

    tenant: Tenant
    limits: ContainerLimits
    network: str                   # the submission's own internal network (stored name)
    course_images: dict[str, str]  # course image tag -> image id
    caps: Caps = field(default_factory=Caps)
    refusals: list[str] = field(default_factory=list)
    on_ports: Callable[[], None] = lambda: None   # a container with published ports has started

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
        if head in ("services", "tasks") and r.method == "GET" and len(p) == 1:
            return Answer(200, [])  # this submission has none (coursekit's clean-up asks)
        if head in ("swarm", "services", "nodes", "tasks", "secrets", "configs"):
            refuse("swarm", "Swarm mode and services are not served to a submission yet")
        if head == "distribution":  # "is a registry reachable?" (coursekit asks it to choose its mode): no
            raise Refused(404, "no image registry is reachable from the grading sandbox", quiet=True)
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
        candidates = [self.tenant.tag(ref)] if not Tenant.looks_like_id(ref) else []
        candidates.append(ref)
        for candidate in candidates:
            try:
                doc = api.inspect_image(candidate)
            except Exception:  # noqa: BLE001 - not there: try the next
                continue
            labels = (doc.get("Config") or {}).get("Labels") or {}
            if self.tenant.owns(labels) or doc["Id"] in self.course_images.values():
                return doc
        missing("image", ref)

    def _volume(self, name: str) -> dict:
        with contextlib.suppress(Exception):
            doc = self._admin().inspect_volume(self.tenant.name(name))
            if self.tenant.owns(doc.get("Labels")):
                return doc
        missing("volume", name)

    def _volume_made(self, name: str) -> dict:
        """The submission's volume ``name``, made now if it does not exist yet (as ``docker run -v name:/p`` does)."""
        with contextlib.suppress(Refused):
            return self._volume(name)
        self._cap("volumes")  # (a stored name under this submission's prefix is this submission's alone)
        return self._admin().create_volume(self.tenant.name(name), driver="local", labels=self.tenant.labels_in({}))

    def _network(self, ref: str) -> dict:
        api = self._admin()
        if ref == DEFAULT_NETWORK:
            ref = self.network
        for candidate in ([ref] if Tenant.looks_like_id(ref) else []) + [self.tenant.name(ref)]:
            with contextlib.suppress(Exception):
                doc = api.inspect_network(candidate)
                if self.tenant.owns(doc.get("Labels")):
                    return doc
        missing("network", ref)

    def _count(self, kind: str) -> int:
        api, flt = self._admin(), {"label": [f"{TENANT}={self.tenant.id}"]}
        if kind == "containers":
            return len(api.containers(all=True, filters=flt))
        if kind == "images":
            return len(api.images(filters=flt))
        if kind == "volumes":
            return len(api.volumes(filters=flt).get("Volumes") or [])
        return len(api.networks(filters=flt))

    def _cap(self, kind: str) -> None:
        cap = getattr(self.caps, kind)
        if self._count(kind) >= cap:
            refuse(f"{kind} cap", f"a submission makes at most {cap} {kind}; remove some first", 429)

    def _json(self, body: bytes) -> dict:
        if len(body) > self.caps.body_bytes:
            refuse("size", f"a request body is at most {self.caps.body_bytes:,} bytes", 413)
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            refuse("body", "the request body is not JSON", 400)
        if not isinstance(doc, dict):
            refuse("body", "the request body is a JSON object", 400)
        return doc

    # ------------------------------------------------------------------ answers as the submission sees them
    def net_shown(self, stored: str) -> str:
        return DEFAULT_NETWORK if stored == self.network else self.tenant.shown(stored)

    def shown_container(self, doc: dict, listing: bool) -> dict:
        t = self.tenant
        if listing:
            doc["Names"] = [t.shown(n) for n in doc.get("Names") or []]
            doc["Image"] = t.untag(doc.get("Image", ""))
            doc["Labels"] = t.labels_out(doc.get("Labels"))
            doc["Ports"] = [{"IP": "127.0.0.1", "PrivatePort": int(k.split("/")[0]), "PublicPort": v,
                             "Type": k.split("/")[1]} for k, v in t.ports.get(doc.get("Id", ""), {}).items()]
            nets = (doc.get("NetworkSettings") or {}).get("Networks")
            if isinstance(nets, dict):
                doc["NetworkSettings"]["Networks"] = {self.net_shown(k): v for k, v in nets.items()}
            for m in doc.get("Mounts") or []:
                if m.get("Name"):
                    m["Name"] = t.shown(m["Name"])
            hc = doc.get("HostConfig") or {}
            if hc.get("NetworkMode"):
                hc["NetworkMode"] = "default" if hc["NetworkMode"] == self.network else t.shown(hc["NetworkMode"])
            return doc
        doc["Name"] = t.shown(doc.get("Name", ""))
        cfg = doc.get("Config") or {}
        cfg["Labels"] = t.labels_out(cfg.get("Labels"))
        if cfg.get("Image"):
            cfg["Image"] = t.untag(cfg["Image"])
        hc = doc.get("HostConfig") or {}
        if hc.get("NetworkMode"):
            hc["NetworkMode"] = "default" if hc["NetworkMode"] == self.network else t.shown(hc["NetworkMode"])
        if hc.get("Binds"):
            hc["Binds"] = [t.shown(b) for b in hc["Binds"]]
        ports = t.ports.get(doc.get("Id", ""), {})
        hc["PortBindings"] = {k: [{"HostIp": "127.0.0.1", "HostPort": str(v)}] for k, v in ports.items()}
        ns = doc.get("NetworkSettings") or {}
        if ns:
            running = (doc.get("State") or {}).get("Running")
            ns["Ports"] = {k: ([{"HostIp": "127.0.0.1", "HostPort": str(v)}] if running else None)
                           for k, v in ports.items()}
            if isinstance(ns.get("Networks"), dict):
                ns["Networks"] = {self.net_shown(k): v for k, v in ns["Networks"].items()}
        for m in doc.get("Mounts") or []:
            if m.get("Name"):
                m["Name"] = t.shown(m["Name"])
        return doc

    def shown_image(self, doc: dict) -> dict:
        t = self.tenant
        if "RepoTags" in doc:
            ours = self.tenant.owns((doc.get("Config") or {}).get("Labels") or doc.get("Labels"))
            doc["RepoTags"] = [t.untag(x) for x in doc.get("RepoTags") or []
                               if x.startswith(t.repo) or (not ours and x in self.course_images)]
            doc["RepoDigests"] = [x for x in doc.get("RepoDigests") or [] if not ours or x.startswith(t.repo)]
        if isinstance(doc.get("Config"), dict):
            doc["Config"]["Labels"] = t.labels_out(doc["Config"].get("Labels"))
        if "Labels" in doc:
            doc["Labels"] = t.labels_out(doc.get("Labels"))
        doc.pop("ContainerConfig", None)  # the build's step container: another id, another name
        doc.pop("Container", None)
        return doc

    def _info(self, doc: dict) -> dict:
        keep = ("ServerVersion", "OperatingSystem", "OSType", "Architecture", "NCPU", "MemTotal", "KernelVersion",
                "Driver", "CgroupVersion", "DefaultRuntime", "SecurityOptions")
        out = {k: doc.get(k) for k in keep}
        n = len(self._admin().containers(all=True, filters={"label": [f"{TENANT}={self.tenant.id}"]}))
        out.update(Containers=n, Name="coursekit-grading-sandbox", Swarm={"LocalNodeState": "inactive"})
        return out

    # ------------------------------------------------------------------ containers
    def _containers(self, r: Route, body: bytes):
        p, q = r.parts, r.query
        if len(p) == 2 and p[1] == "json" and r.method == "GET":
            query = urlencode({k: v[0] for k, v in q.items() if k in ("all", "limit", "size", "since", "before")})
            query += ("&" if query else "") + "filters=" + self.tenant.filters(one(q, "filters"))
            return Forward("GET", "/containers/json", query,
                           then=lambda docs: [self.shown_container(d, True) for d in docs
                                              if self.tenant.owns(d.get("Labels"))])
        if len(p) == 2 and p[1] == "create" and r.method == "POST":
            return self._create(r, body)
        if len(p) == 2 and p[1] == "prune":
            refuse("prune", "remove your containers one by one (or let the grader remove them)")
        if len(p) < 2:
            refuse("endpoint", "not a container endpoint", 404)
        doc = self.container(p[1])
        cid, action = doc["Id"], p[2] if len(p) > 2 else ""
        path = f"/containers/{cid}" + (f"/{action}" if action else "")
        if r.method == "DELETE" and not action:
            return Forward("DELETE", path, r.raw_query, after=lambda status, _: self._forget(cid, status))
        if r.method == "GET" and action == "json":
            return Forward("GET", path, r.raw_query, then=lambda d: self.shown_container(d, False))
        if r.method == "POST" and action == "start":
            return Forward("POST", path, after=lambda status, _: status < 300 and self.tenant.ports.get(cid)
                           and self.on_ports())
        if r.method == "POST" and action in ("stop", "kill", "restart", "wait", "pause", "unpause", "resize", "attach"):
            return Forward("POST", path, r.raw_query)
        if r.method == "GET" and action in ("logs", "top", "stats", "changes", "export", "attach"):
            return Forward("GET", path + ("/ws" if len(p) > 3 and p[3] == "ws" else ""), r.raw_query)
        if action == "archive" and r.method in ("GET", "HEAD"):
            return Forward(r.method, path, r.raw_query)
        if action == "archive" and r.method == "PUT":
            if len(body) > self.caps.context_bytes:
                refuse("size", f"an archive is at most {self.caps.context_bytes:,} bytes", 413)
            return Forward("PUT", path, r.raw_query, body)
        if r.method == "POST" and action == "exec":
            spec = self._json(body)
            if spec.get("Privileged"):
                refuse("exec", "a command in a container is never privileged")
            return Forward("POST", path, body=json.dumps(spec).encode(),
                           after=lambda status, d: status < 300 and self.tenant.execs.add((d or {}).get("Id", "")))
        if r.method == "POST" and action == "rename":
            new = one(r.query, "name")
            return Forward("POST", path, "name=" + quote(self.tenant.name(new)))
        if r.method == "POST" and action == "update":
            refuse("limits", "a container's limits are the sandbox's and cannot be changed")
        refuse("endpoint", f"{r.method} /containers/<id>/{action} is not served to a submission", 404)

    def _forget(self, cid: str, status: int) -> None:
        if status < 300:
            self.tenant.containers.discard(cid)
            self.tenant.ports.pop(cid, None)

    def _exec(self, r: Route, body: bytes):
        p = r.parts
        if len(p) < 3 or p[1] not in self.tenant.execs:
            missing("exec instance", p[1] if len(p) > 1 else "")
        if r.method == "POST" and p[2] in ("start", "resize"):
            spec = self._json(body) if body.strip() else None
            if spec is not None and spec.get("Privileged"):
                refuse("exec", "a command in a container is never privileged")
            return Forward("POST", f"/exec/{p[1]}/{p[2]}", r.raw_query, json.dumps(spec).encode() if spec else b"")
        if r.method == "GET" and p[2] == "json":
            return Forward("GET", f"/exec/{p[1]}/json")
        refuse("endpoint", "not an exec endpoint", 404)

    def _create(self, r: Route, body: bytes):
        spec = self._json(body)
        self._cap("containers")
        t = self.tenant
        asked = str(spec.get("Image") or "")
        image = self.image(asked)
        # the name the student gave, as stored: a course image's own tag, the student's tag, or the id
        spec["Image"] = asked if asked in self.course_images else (
            t.tag(asked) if t.owns((image.get("Config") or {}).get("Labels")) and not Tenant.looks_like_id(asked)
            else image["Id"])
        spec["Labels"] = t.labels_in(spec.get("Labels") if isinstance(spec.get("Labels"), dict) else {})
        hc = spec.get("HostConfig") or {}
        if not isinstance(hc, dict):
            refuse("HostConfig", "HostConfig is a JSON object", 400)
        self._check_host_config(hc)
        spec["HostConfig"] = self._forced(hc)
        wanted_ports = hc.get("PortBindings") or {}
        if hc.get("PublishAllPorts"):
            for port in (image.get("Config") or {}).get("ExposedPorts") or {}:
                wanted_ports.setdefault(port, [{}])
        spec["HostConfig"].pop("PublishAllPorts", None)
        spec["HostConfig"].pop("PortBindings", None)
        nets = ((spec.get("NetworkingConfig") or {}).get("EndpointsConfig") or {})
        spec["NetworkingConfig"] = {"EndpointsConfig": {self._network(k)["Name"]: self._endpoint(v)
                                                        for k, v in nets.items()}}
        name = one(r.query, "name")
        query = "name=" + quote(t.name(name)) if name else ""

        def created(status: int, doc) -> None:
            if status < 300 and isinstance(doc, dict) and doc.get("Id"):
                t.containers.add(doc["Id"])
                taken = {v for ports in t.ports.values() for v in ports.values()}
                ports = t.publish(doc["Id"], wanted_ports)
                clash = taken & set(ports.values())
                if clash:
                    with contextlib.suppress(Exception):
                        self._admin().remove_container(doc["Id"], force=True)
                    t.ports.pop(doc["Id"], None)
                    raise Refused(500, f"driver failed programming external connectivity: Bind for "
                                       f"127.0.0.1:{clash.pop()} failed: port is already allocated")

        return Forward("POST", "/containers/create", query, json.dumps(spec).encode(), after=created)

    def _endpoint(self, cfg: Any) -> dict:
        cfg = dict(cfg or {}) if isinstance(cfg, dict) else {}
        for key in ("IPAMConfig", "Links", "MacAddress", "DriverOpts"):
            cfg.pop(key, None)
        return cfg

    def _check_host_config(self, hc: dict) -> None:
        for key, value in hc.items():
            if key not in HOST_KEYS_FREE and value not in (None, "", 0, [], {}, False):
                refuse(f"HostConfig.{key}", f"{key} cannot be set on a container in the grading sandbox")
        if hc.get("Privileged"):
            refuse("privileged", "containers are never privileged")
        extra = {str(c).upper().removeprefix("CAP_") for c in hc.get("CapAdd") or []} - set(CAPABILITIES)
        if extra:
            refuse("capabilities", f"{', '.join(sorted(extra))}: a container keeps only {', '.join(CAPABILITIES)} "
                                   "(a server on a port above 1023 needs none)")
        if [o for o in hc.get("SecurityOpt") or [] if o not in ("no-new-privileges", "no-new-privileges:true")]:
            refuse("security-opt", "the security options are the sandbox's (seccomp and AppArmor stay on)")
        for key in NAMESPACES:
            mode = str(hc.get(key) or "")
            if mode in ("host",) or mode.startswith("container:"):
                refuse(f"{key}", f"{key} {mode}: containers get their own namespaces, never the host's or another's")
        mode = str(hc.get("NetworkMode") or "")
        if mode == "host" or mode.startswith("container:"):
            refuse("network", f"network mode {mode}: a container gets its own network (the submission's, or none)")
        for bind in hc.get("Binds") or []:
            source = str(bind).split(":", 1)[0]
            if source.startswith(("/", ".", "~")) or "/" in source:
                refuse("bind mount", f"{bind}: no folder of the host is mounted; use a named volume")
            self._volume_made(source)
        for m in hc.get("Mounts") or []:
            kind = (m or {}).get("Type", "volume")
            if kind == "tmpfs":
                continue
            if kind != "volume":
                refuse("mount", f"a {kind} mount: only named volumes of this submission, or tmpfs")
            if (m.get("VolumeOptions") or {}).get("DriverConfig"):
                refuse("volume driver", "volumes use the local driver without options")
            if m.get("Source"):
                self._volume_made(str(m["Source"]))
        for port, bindings in (hc.get("PortBindings") or {}).items():
            for b in bindings or []:
                ip = str((b or {}).get("HostIp") or "")
                if ip not in ("", "127.0.0.1", "localhost"):
                    refuse("ports", f"{port} on {ip}: ports are published on 127.0.0.1 only")
                host = str((b or {}).get("HostPort") or "")
                if host and (not host.isdigit() or not 1024 <= int(host) < 65536):
                    refuse("ports", f"host port {host}: use one from 1024 to 65535 (or none: a free one)")

    def _forced(self, hc: dict) -> dict:
        """The HostConfig the engine gets: the submission's (checked), with the sandbox's limits on top."""
        t, lim = self.tenant, self.limits.create_options(network="x")
        out = {k: v for k, v in hc.items() if k in HOST_KEYS_FREE}
        cap_mem = size_bytes(lim["mem_limit"])
        asked = int(out.get("Memory") or 0)
        out["Memory"] = min(asked, cap_mem) if asked > 0 else cap_mem
        out["MemorySwap"] = out["Memory"]
        out.pop("MemorySwappiness", None)
        out.pop("KernelMemory", None)
        out["PidsLimit"] = min(int(out.get("PidsLimit") or lim["pids_limit"]), lim["pids_limit"]) \
            if int(out.get("PidsLimit") or 0) > 0 else lim["pids_limit"]
        out["NanoCpus"] = min(int(out.get("NanoCpus") or lim["nano_cpus"]), lim["nano_cpus"]) \
            if int(out.get("NanoCpus") or 0) > 0 else lim["nano_cpus"]
        out["CapDrop"], out["CapAdd"], out["Privileged"] = ["ALL"], list(CAPABILITIES), False
        out["SecurityOpt"] = ["no-new-privileges"]
        out["Ulimits"] = [u for u in out.get("Ulimits") or [] if u.get("Name") not in {x["Name"] for x in lim["ulimits"]}]
        out["Ulimits"] += lim["ulimits"]
        out["LogConfig"] = lim["log_config"]
        shm = size_bytes(str(out.get("ShmSize") or 0)) if out.get("ShmSize") else 0
        out["ShmSize"] = min(shm, 64 << 20) if shm else 64 << 20
        for key in NAMESPACES:
            out.pop(key, None)
        mode = str(hc.get("NetworkMode") or "")
        out["NetworkMode"] = "none" if mode == "none" else (self._network(mode)["Name"]
                                                           if mode not in ("", "default", "bridge") else self.network)
        out["Binds"] = [t.name(b) for b in hc.get("Binds") or []] or None
        mounts = []
        for m in hc.get("Mounts") or []:
            m = dict(m)
            if m.get("Type", "volume") == "volume" and m.get("Source"):
                m["Source"] = t.name(str(m["Source"]))
                m.setdefault("VolumeOptions", {})["Labels"] = t.labels_in((m.get("VolumeOptions") or {}).get("Labels"))
            mounts.append(m)
        out["Mounts"] = mounts or None
        return {k: v for k, v in out.items() if v is not None}

    # ------------------------------------------------------------------ images and builds
    def _images(self, r: Route):
        p, t = r.parts, self.tenant
        if len(p) == 2 and p[1] == "json" and r.method == "GET":
            ids = set(self.course_images.values())
            query = "filters=" + t.filters(one(r.query, "filters"), by_label=False)  # (the course's images too)
            if one(r.query, "all"):
                query += "&all=" + quote(one(r.query, "all"))
            return Forward("GET", "/images/json", query,
                           then=lambda docs: [self.shown_image(d) for d in docs
                                              if t.owns(d.get("Labels")) or d.get("Id") in ids])
        if len(p) == 2 and p[1] == "get" and r.method == "GET":
            names = [self.image(n)["Id"] for n in r.query.get("names", [])]
            return Forward("GET", "/images/get", urlencode([("names", n) for n in names]))
        if len(p) >= 2 and p[1] in ("create", "load", "prune", "search"):
            refuse("pull", "nothing is pulled, loaded or searched in the grading sandbox: use the course's images, "
                           "or build your own FROM them")
        if len(p) < 2:
            refuse("endpoint", "not an image endpoint", 404)
        action = p[-1] if r.method != "DELETE" else ""
        name = "/".join(p[1:-1] if action else p[1:])
        if action == "push":
            refuse("push", "pushing to a registry is not served to a submission yet")
        doc = self.image(name)
        if r.method == "GET" and action == "json":
            return Forward("GET", f"/images/{doc['Id']}/json", then=self.shown_image)
        if r.method == "GET" and action == "history":
            return Forward("GET", f"/images/{doc['Id']}/history", then=lambda rows: [
                {**row, "Tags": [t.untag(x) for x in row.get("Tags") or [] if x.startswith(t.repo)
                                 or x in self.course_images]} for row in rows
                if f"LABEL {TENANT}=" not in row.get("CreatedBy", "") and f"LABEL {GRADER}=" not in
                row.get("CreatedBy", "")])
        if r.method == "GET" and action == "get":
            return Forward("GET", f"/images/{doc['Id']}/get")
        if r.method == "POST" and action == "tag":
            repo = one(r.query, "repo")
            if not repo:
                refuse("tag", "give repo=", 400)
            new = f"{t.tag(repo)}:{one(r.query, 'tag', 'latest')}"
            return Forward("POST", f"/images/{doc['Id']}/tag",
                           urlencode({"repo": t.tag(repo), "tag": one(r.query, "tag", "latest")}),
                           after=lambda status, _: status < 300 and t.tags.add(new))
        if r.method == "DELETE":
            own_tag = not Tenant.looks_like_id(name) and self._has_tag(t.tag(name))
            if not own_tag and not t.owns((doc.get("Config") or {}).get("Labels")):
                refuse("course images", "the course's images stay (remove only the images you built or tagged)")
            target = t.tag(name) if own_tag else doc["Id"]
            return Forward("DELETE", f"/images/{quote(target, safe='/:')}", r.raw_query,
                           then=lambda rows: [{k: t.untag(v) for k, v in row.items()} for row in rows])
        refuse("endpoint", f"{r.method} /images/<name>/{action} is not served to a submission", 404)

    def _has_tag(self, tag: str) -> bool:
        ref = tag if ":" in tag.rsplit("/", 1)[-1] else tag + ":latest"
        with contextlib.suppress(Exception):
            return ref in (self._admin().inspect_image(ref).get("RepoTags") or [])
        return False

    def _build(self, r: Route, body: bytes):
        t, q = self.tenant, r.query
        if len(body) > self.caps.context_bytes:
            refuse("context", f"a build context is at most {self.caps.context_bytes / 1e6:.0f} MB", 413)
        if one(q, "remote"):
            refuse("remote", "the build context comes from the submission, never from a URL")
        self._cap("images")
        dockerfile = self._dockerfile(body, one(q, "dockerfile", "Dockerfile"))
        self._check_dockerfile(dockerfile)
        try:
            labels = json.loads(one(q, "labels", "{}") or "{}")
        except ValueError:
            labels = {}
        lim = self.limits.create_options(network="x")
        memory = size_bytes(lim["mem_limit"])
        query = [("t", t.tag(x)) for x in q.get("t", []) if x] + [
            ("dockerfile", one(q, "dockerfile", "Dockerfile")), ("labels", json.dumps(t.build_labels(labels))),
            ("networkmode", "none"), ("pull", "0"), ("rm", "1"), ("forcerm", "1"), ("memory", str(memory)),
            ("memswap", str(memory)), ("q", one(q, "q", "0")), ("nocache", one(q, "nocache", "0"))]
        for key in ("buildargs", "target", "shmsize"):
            if one(q, key):
                query.append((key, one(q, key)))
        return Forward("POST", "/build", urlencode(query), body, lines=self._build_line)

    def _build_line(self, doc: dict) -> dict | None:
        text = doc.get("stream")
        if isinstance(text, str):
            if f"LABEL {TENANT}=" in text or f"LABEL {GRADER}=" in text:
                return None  # the gate's own labels: not the submission's steps
            doc["stream"] = text.replace(self.tenant.repo, "")
        return doc

    def _dockerfile(self, context: bytes, name: str) -> str:
        try:
            with tarfile.open(fileobj=io.BytesIO(context)) as tar:
                for member in tar.getmembers():
                    path = member.name
                    if path.startswith("/") or ".." in path.split("/"):
                        refuse("context", f"{path}: a build context holds relative paths inside it only")
                    if (member.issym() or member.islnk()) and (member.linkname.startswith("/")
                                                              or ".." in member.linkname.split("/")):
                        refuse("context", f"{path} links to {member.linkname}, outside the build context")
                found = tar.extractfile(name.lstrip("./") or "Dockerfile")
                return found.read(1 << 20).decode("utf-8", "replace") if found else ""
        except (tarfile.TarError, KeyError):
            refuse("context", f"the build context is not a tar archive with a {name}", 400)

    def _check_dockerfile(self, text: str) -> None:
        df = parse_dockerfile(text)
        for inst in df.instructions:
            if inst.keyword == "ADD" and any(URL.match(w) for w in (inst.exec_form or inst.rest.split())[:-1]):
                refuse("ADD <url>", f"line {inst.line}: the engine would download it; put the file in the "
                                    "context and COPY it")
        for stage in df.stages:
            if stage.base_stage is not None or stage.image.lower() == "scratch":
                continue
            if "$" in stage.image:
                refuse("FROM", f"FROM {stage.image}: name the base image itself (no build variable), one of the "
                               f"course's images")
            if stage.image in self.course_images:
                continue
            with contextlib.suppress(Refused):
                self.image(stage.image)
                if not Tenant.looks_like_id(stage.image):
                    refuse("FROM", f"FROM {stage.image}: build FROM the course's images "
                                   f"({', '.join(sorted(self.course_images))})")
                continue
            refuse("FROM", f"FROM {stage.image}: that image is not here, and nothing is pulled; use one of the "
                           f"course's images: {', '.join(sorted(self.course_images))}")

    # ------------------------------------------------------------------ volumes and networks
    def _volumes(self, r: Route, body: bytes):
        p, t = r.parts, self.tenant
        if len(p) == 1 and r.method == "GET":
            return Forward("GET", "/volumes", "filters=" + t.filters(one(r.query, "filters")),
                           then=lambda d: {"Volumes": [self._shown_volume(v) for v in d.get("Volumes") or []
                                                       if t.owns(v.get("Labels"))], "Warnings": None})
        if len(p) == 2 and p[1] == "create" and r.method == "POST":
            spec = self._json(body)
            self._cap("volumes")
            if spec.get("Driver") not in (None, "", "local") or spec.get("DriverOpts"):
                refuse("volume driver", "volumes use the local driver, without driver options")
            spec = {"Name": t.name(spec.get("Name") or secrets.token_hex(8)), "Driver": "local",
                    "Labels": t.labels_in(spec.get("Labels"))}
            return Forward("POST", "/volumes/create", body=json.dumps(spec).encode(), then=self._shown_volume)
        if len(p) == 2 and p[1] == "prune":
            refuse("prune", "remove your volumes one by one (or let the grader remove them)")
        if len(p) == 2:
            doc = self._volume(p[1])
            if r.method == "GET":
                return Forward("GET", f"/volumes/{quote(doc['Name'])}", then=self._shown_volume)
            if r.method == "DELETE":
                return Forward("DELETE", f"/volumes/{quote(doc['Name'])}", r.raw_query)
        refuse("endpoint", "not a volume endpoint", 404)

    def _shown_volume(self, v: dict) -> dict:
        v["Name"] = self.tenant.shown(v.get("Name", ""))
        v["Labels"] = self.tenant.labels_out(v.get("Labels"))
        return v

    def _networks(self, r: Route, body: bytes):
        p, t = r.parts, self.tenant
        if len(p) == 1 and r.method == "GET":
            return Forward("GET", "/networks", "filters=" + t.filters(one(r.query, "filters")),
                           then=lambda docs: [self._shown_network(n) for n in docs if t.owns(n.get("Labels"))])
        if len(p) == 2 and p[1] == "create" and r.method == "POST":
            spec = self._json(body)
            self._cap("networks")
            if spec.get("Driver") not in (None, "", "bridge") or spec.get("Options") or spec.get("ConfigFrom") \
                    or (spec.get("IPAM") or {}).get("Config"):
                refuse("network", "networks are bridge networks of their own, with the engine's defaults")
            spec = {"Name": t.name(str(spec.get("Name") or "")), "Driver": "bridge", "Internal": True,
                    "CheckDuplicate": True, "Labels": t.labels_in(spec.get("Labels"))}
            return Forward("POST", "/networks/create", body=json.dumps(spec).encode())
        if len(p) == 2 and p[1] == "prune":
            refuse("prune", "remove your networks one by one (or let the grader remove them)")
        if len(p) >= 2:
            doc = self._network(p[1])
            action = p[2] if len(p) > 2 else ""
            if r.method == "GET" and not action:
                return Forward("GET", f"/networks/{doc['Id']}", then=self._shown_network)
            if r.method == "DELETE" and not action:
                if doc["Name"] == self.network:
                    refuse("network", "the submission's own network stays until the end")
                return Forward("DELETE", f"/networks/{doc['Id']}")
            if r.method == "POST" and action in ("connect", "disconnect"):
                spec = self._json(body)
                spec["Container"] = self.container(str(spec.get("Container") or ""))["Id"]
                if "EndpointConfig" in spec:
                    spec["EndpointConfig"] = self._endpoint(spec["EndpointConfig"])
                return Forward("POST", f"/networks/{doc['Id']}/{action}", body=json.dumps(spec).encode())
        refuse("endpoint", "not a network endpoint", 404)

    def _shown_network(self, n: dict) -> dict:
        t = self.tenant
        n["Name"] = self.net_shown(n.get("Name", ""))
        n["Labels"] = t.labels_out(n.get("Labels"))
        n["Containers"] = {k: {**v, "Name": t.shown(v.get("Name", ""))} for k, v in (n.get("Containers") or {}).items()
                           if k in t.containers}
        return n

    # ------------------------------------------------------------------ the end
    def remove_all(self) -> list[str]:
        """Remove everything this submission made (containers, networks, volumes, images); what was removed."""
        api, flt, gone = self._admin(), {"label": [f"{TENANT}={self.tenant.id}"]}, []
        for c in api.containers(all=True, filters=flt):
            with contextlib.suppress(Exception):
                api.remove_container(c["Id"], force=True, v=True)
                gone.append(f"container {c['Id'][:12]}")
        for n in api.networks(filters=flt):
            with contextlib.suppress(Exception):
                api.remove_network(n["Id"])
                gone.append(f"network {n['Name']}")
        for v in api.volumes(filters=flt).get("Volumes") or []:
            with contextlib.suppress(Exception):
                api.remove_volume(v["Name"], force=True)
                gone.append(f"volume {v['Name']}")
        for im in api.images(filters=flt):
            with contextlib.suppress(Exception):
                api.remove_image(im["Id"], force=True)
                gone.append(f"image {im['Id'][7:19]}")
        for tag in sorted(self.tenant.tags):  # its tags on the course's images
            with contextlib.suppress(Exception):
                api.remove_image(tag)
                gone.append(f"tag {tag}")
        return gone
