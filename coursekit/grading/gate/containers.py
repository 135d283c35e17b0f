"""The gate's rules for containers and exec: what a submission's container may be, and how it is shown back.

A container starts only from an image the submission may use; the sandbox's limits are forced on it
(:meth:`ContainerRules._forced`), what could reach the host or another container is refused
(:meth:`ContainerRules._check_host_config`), its names, labels, network and published ports are the
submission's own (:class:`~coursekit.grading.gate.tenant.Tenant`). Part of
:class:`~coursekit.grading.gate.policy.Policy`.
"""
from __future__ import annotations

import contextlib
import json
from typing import Any
from urllib.parse import quote, urlencode

from ...docker.registry import IMAGE as REGISTRY_IMAGE
from ...dockerfile.limits import size_bytes
from .routes import Forward, Refused, Route, missing, one, refuse
from .tenant import DEFAULT_NETWORK, Tenant

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


def beyond_allowed(capabilities) -> set[str]:
    """The capabilities asked for (``SYS_ADMIN`` or ``CAP_SYS_ADMIN``) that a container does not keep."""
    return {str(c).upper().removeprefix("CAP_") for c in capabilities or []} - set(CAPABILITIES)


class ContainerRules:
    """Containers and exec (mixed into :class:`~coursekit.grading.gate.policy.Policy`)."""

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
            # v=1 always: the anonymous volumes of its image's VOLUMEs carry no label, so nothing else could find
            # them afterwards (named volumes stay, as with docker rm -v)
            query = urlencode([(k, v) for k, vs in r.query.items() if k != "v" for v in vs] + [("v", "1")])
            return Forward("DELETE", path, query, after=lambda status, _: self._forget(cid, status))
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
            t.tag(asked) if not Tenant.looks_like_id(asked) and self._has_name(t.tag(asked)) else image["Id"])
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
                if image["Id"] == self.course_images.get(REGISTRY_IMAGE):  # its registry: the engine pushes to it
                    for port in ports.values():
                        if port not in t.registries:
                            t.registries[port] = self.on_registry(port)

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
        extra = beyond_allowed(hc.get("CapAdd"))
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
