"""The gate's rules for Swarm services: the submission's own, held to the same rules as its containers.

Served only where the grading engine is a swarm manager (the class grader makes it one when a
question needs Swarm). The swarm itself is the grader's: a submission sees that it is active and may
read a sanitised description of it (never its join tokens), but cannot init, join, leave, update or
unlock it, nor touch nodes, secrets, configs or plugins.

A service's task template is checked as a container is (:mod:`.containers`): the course's images,
the submission's own builds or images in a registry it runs; the sandbox's limits forced on every
task (memory, processes, CPUs, open files, every capability dropped but the entrypoint's seven, a
capped log); no privileges, sysctls, secrets or host mounts (named volumes of its own or tmpfs);
its own overlay networks only (internal, like all its networks); no published ports: the routing
mesh would publish on every address of every node, so a service is reached over its network, as
lesson 07's probe does. Replicas and services are capped. Its name, labels and its tasks'
containers live in the submission's namespace (:class:`~coursekit.grading.gate.tenant.Tenant`).
Part of :class:`~coursekit.grading.gate.policy.Policy`.
"""
from __future__ import annotations

import contextlib
import json
from urllib.parse import quote, urlencode

from .containers import CAPABILITIES, beyond_allowed
from .routes import Answer, Forward, Route, missing, one, refuse
from .tenant import TENANT, Tenant

#: The keys of a service spec, its task template and its container spec that a submission may set.
SERVICE_KEYS = {"Name", "Labels", "TaskTemplate", "Mode", "UpdateConfig", "RollbackConfig", "EndpointSpec"}
TASK_KEYS = {"ContainerSpec", "Resources", "RestartPolicy", "Placement", "Networks", "LogDriver", "ForceUpdate",
             "Runtime"}
CONTAINER_KEYS = {"Image", "Labels", "Command", "Args", "Hostname", "Env", "Dir", "User", "Groups", "TTY",
                  "OpenStdin", "ReadOnly", "Mounts", "StopSignal", "StopGracePeriod", "Healthcheck", "Hosts",
                  "DNSConfig", "Init", "CapabilityAdd", "CapabilityDrop", "Ulimits", "Isolation"}
#: What of the engine's swarm description a submission sees.
SWARM_SHOWN = ("ID", "Version", "CreatedAt", "UpdatedAt")
INFO_SWARM = ("NodeID", "NodeAddr", "LocalNodeState", "ControlAvailable", "Nodes", "Managers")


def _set(value) -> bool:
    return value not in (None, "", 0, [], {}, False)


class ServiceRules:
    """Swarm, services and tasks (mixed into :class:`~coursekit.grading.gate.policy.Policy`)."""

    # ------------------------------------------------------------------ the swarm (the grader's)
    def _swarm_routes(self, r: Route, body: bytes):
        p = r.parts
        if not self.swarm:
            if p[0] in ("services", "tasks") and r.method == "GET" and len(p) == 1:
                return Answer(200, [])  # this submission has none (coursekit's clean-up asks)
            refuse("swarm", "Swarm is not served by this grader (the grading engine is not a swarm manager)")
        if p[0] == "swarm":
            if r.method == "GET" and len(p) == 1:
                return Forward("GET", "/swarm", then=lambda d: {
                    **{k: d.get(k) for k in SWARM_SHOWN}, "Spec": {"Name": "default", "Labels": {}}})
            refuse("swarm", "the swarm is the grader's: no init, join, leave, update or unlock from a submission")
        if p[0] == "services":
            return self._services(r, body)
        if p[0] == "tasks":
            return self._tasks(r)
        refuse("swarm", f"/{p[0]} (nodes, secrets, configs) are the grader's, not served to a submission")

    def swarm_info(self, swarm: dict) -> dict:
        if not self.swarm:
            return {"LocalNodeState": "inactive"}
        return {k: swarm.get(k) for k in INFO_SWARM}

    # ------------------------------------------------------------------ services
    def service(self, ref: str) -> dict:
        """This submission's service named (or id'd) ``ref``, inspected; 404 for anything else."""
        api = self._admin()
        for candidate in ([ref] if Tenant.looks_like_object_id(ref) else []) + [self.tenant.name(ref)]:
            with contextlib.suppress(Exception):
                doc = api.inspect_service(candidate)
                if self.tenant.owns((doc.get("Spec") or {}).get("Labels")):
                    return doc
        missing("service", ref)

    def _services(self, r: Route, body: bytes):
        p, t = r.parts, self.tenant
        if len(p) == 1 and r.method == "GET":
            query = "filters=" + t.filters(one(r.query, "filters"))
            if one(r.query, "status"):
                query += "&status=" + quote(one(r.query, "status"))
            return Forward("GET", "/services", query, then=lambda docs: [
                self.scrubbed(d) for d in docs if t.owns((d.get("Spec") or {}).get("Labels"))])
        if len(p) == 2 and p[1] == "create" and r.method == "POST":
            self._cap("services")
            spec = self._service_spec(self._json(body))
            return Forward("POST", "/services/create", body=json.dumps(spec).encode())
        if len(p) < 2:
            refuse("endpoint", "not a service endpoint", 404)
        doc = self.service(p[1])
        action = p[2] if len(p) > 2 else ""
        if r.method == "GET" and not action:
            return Forward("GET", f"/services/{doc['ID']}", then=self.scrubbed)
        if r.method == "DELETE" and not action:
            return Forward("DELETE", f"/services/{doc['ID']}")
        if r.method == "POST" and action == "update":
            spec = self._service_spec(self._json(body))
            query = urlencode({k: one(r.query, k) for k in ("version", "rollback") if one(r.query, k)})
            return Forward("POST", f"/services/{doc['ID']}/update", query, json.dumps(spec).encode())
        if r.method == "GET" and action == "logs":
            return Forward("GET", f"/services/{doc['ID']}/logs", r.raw_query)
        refuse("endpoint", f"{r.method} /services/<id>/{action} is not served to a submission", 404)

    def _service_spec(self, spec: dict) -> dict:
        """A service spec as the engine gets it: checked, in the submission's namespace, the limits forced."""
        t = self.tenant
        self._only(spec, SERVICE_KEYS, "a service")
        task = spec.get("TaskTemplate") or {}
        if not isinstance(task, dict) or not isinstance(task.get("ContainerSpec"), dict):
            refuse("service", "a service's TaskTemplate has a ContainerSpec (a container service)", 400)
        self._only(task, TASK_KEYS, "a service's task template")
        if task.get("Runtime") not in (None, "", "container"):
            refuse("Runtime", "a service's tasks are containers")
        cs = dict(task["ContainerSpec"])
        self._only(cs, CONTAINER_KEYS, "a service's container spec")
        if cs.get("Isolation") not in (None, "", "default"):
            refuse("isolation", "a task's isolation is the engine's default")
        extra = beyond_allowed(cs.get("CapabilityAdd"))
        if extra:
            refuse("capabilities", f"{', '.join(sorted(extra))}: a task keeps only {', '.join(CAPABILITIES)}")
        cs["Image"] = self._service_image(str(cs.get("Image") or ""))
        cs["Labels"] = t.labels_in(cs.get("Labels") if isinstance(cs.get("Labels"), dict) else {})
        mounts = []
        for m in cs.get("Mounts") or []:
            m = dict(m or {})
            kind = m.get("Type", "volume")
            if kind == "volume":
                if (m.get("VolumeOptions") or {}).get("DriverConfig"):
                    refuse("volume driver", "volumes use the local driver without options")
                if not m.get("Source"):
                    refuse("mount", "a task's volume is a named volume (give it a Source)", 400)
                m["Source"] = t.name(str(m["Source"]))
                m["VolumeOptions"] = {"Labels": t.labels_in((m.get("VolumeOptions") or {}).get("Labels"))}
            elif kind != "tmpfs":
                refuse("mount", f"a {kind} mount: only named volumes of this submission, or tmpfs")
            mounts.append(m)
        forced = self.limits.service_spec()
        forced_cs = forced.get("ContainerSpec") or {}
        mounts += [m for m in forced_cs.get("Mounts") or [] if m["Target"] not in {x.get("Target") for x in mounts}]
        cs.update({k: v for k, v in forced_cs.items() if k != "Mounts"})
        cs["CapabilityDrop"], cs["CapabilityAdd"] = ["ALL"], list(CAPABILITIES)
        cs["Mounts"] = mounts or None
        networks = []
        for n in task.get("Networks") or spec.get("Networks") or []:
            doc = self._network(str((n or {}).get("Target") or ""))
            if doc.get("Driver") != "overlay":
                refuse("network", f"{self.net_shown(doc['Name'])}: a service's network is an overlay network of "
                                  "yours (swarm.network(name), or driver='overlay', attachable=True)")
            # the name it gave resolves on its network, as on its own engine (the engine's name has the prefix)
            shown = t.shown(str(spec.get("Name") or ""))
            aliases = list(dict.fromkeys([*((n or {}).get("Aliases") or []), *([shown] if shown else [])]))
            networks.append({"Target": doc["Id"], "Aliases": aliases})
        endpoint = spec.get("EndpointSpec") or {}
        if endpoint.get("Ports"):
            refuse("ports", "a service publishes no ports (the routing mesh would open them on every address of "
                            "every node): reach it over its network, as lesson 07's probe does")
        mode = spec.get("Mode") or {"Replicated": {"Replicas": 1}}
        for kind, cfg in mode.items():
            cfg = cfg or {}
            n = cfg.get("Replicas", 1) if kind == "Replicated" else cfg.get("MaxConcurrent", 1) \
                if kind == "ReplicatedJob" else 1
            if int(n or 0) > self.caps.replicas or int(cfg.get("TotalCompletions") or 0) > self.caps.replicas * 4:
                refuse("replicas", f"a service runs at most {self.caps.replicas} replicas in the grading sandbox")
        task_out = {k: v for k, v in task.items() if k in ("RestartPolicy", "Placement", "ForceUpdate")}
        task_out.update(ContainerSpec={k: v for k, v in cs.items() if v is not None}, Networks=networks,
                        Resources={"Limits": (forced.get("Resources") or {}).get("Limits") or {}})
        if "LogDriver" in forced:
            task_out["LogDriver"] = forced["LogDriver"]
        out = {k: v for k, v in spec.items() if k in ("UpdateConfig", "RollbackConfig")}
        out.update(Name=t.name(str(spec.get("Name") or "")) if spec.get("Name") else None,
                   Labels=t.labels_in(spec.get("Labels") if isinstance(spec.get("Labels"), dict) else {}),
                   TaskTemplate=task_out, Mode=mode,
                   EndpointSpec={"Mode": endpoint.get("Mode") or "vip"})
        return {k: v for k, v in out.items() if v is not None}

    def _only(self, doc: dict, allowed: set[str], what: str) -> None:
        for key, value in doc.items():
            if key not in allowed and _set(value):
                refuse(key, f"{key} cannot be set on {what} in the grading sandbox")

    def _service_image(self, asked: str) -> str:
        """The image a task runs, as stored: a course image, one the submission built, or one in its registry."""
        if asked in self.course_images:
            return asked
        if Tenant.looks_like_id(asked):
            return self.image(asked)["Id"]
        stored = self.tenant.tag(asked)  # (a registry it does not run is refused here)
        if stored.startswith(self.tenant.repo):
            self.image(asked)  # one it built: it must be here (404 otherwise)
        return stored  # ... or one in a registry it runs: the engine pulls it from there

    # ------------------------------------------------------------------ tasks
    def _own_service_ids(self) -> list[str]:
        api = self._admin()
        return [s["ID"] for s in api.services(filters={"label": f"{TENANT}={self.tenant.id}"})]

    def _tasks(self, r: Route):
        p = r.parts
        ids = self._own_service_ids()
        if len(p) == 1 and r.method == "GET":
            try:
                wanted = json.loads(one(r.query, "filters") or "{}")
            except ValueError:
                wanted = {}
            wanted = wanted if isinstance(wanted, dict) else {}
            asked = wanted.pop("service", None)
            if isinstance(asked, dict):
                asked = [k for k, on in asked.items() if on]
            services = [self.service(str(s))["ID"] for s in asked or []] if asked else ids
            if not services:
                return Answer(200, [])
            filters = {k: v for k, v in wanted.items() if k in ("desired-state", "id", "node")}
            filters["service"] = services
            return Forward("GET", "/tasks", "filters=" + quote(json.dumps(filters)),
                           then=lambda docs: [self.scrubbed(d) for d in docs if d.get("ServiceID") in ids])
        if len(p) == 2 and r.method == "GET":
            with contextlib.suppress(Exception):
                doc = self._admin().inspect_task(p[1])
                if doc.get("ServiceID") in ids:
                    return Answer(200, self.scrubbed(doc))
            missing("task", p[1])
        refuse("endpoint", "not a task endpoint", 404)

    # ------------------------------------------------------------------ answers
    def scrubbed(self, doc):
        """A service or task as the submission sees it: its names as given, its labels as it set them."""
        t = self.tenant
        if isinstance(doc, dict):
            return {k: (t.labels_out(v) if k == "Labels" and isinstance(v, dict) else self.scrubbed(v))
                    for k, v in doc.items()}
        if isinstance(doc, list):
            return [self.scrubbed(v) for v in doc]
        if isinstance(doc, str):
            return t.shown_text(doc)
        return doc
