"""The gate's rules for volumes and networks: the submission's own, local and internal.

A volume uses the local driver without options (no host folder through it) and is made on first use,
as ``docker run -v name:/path`` does; a network is an internal bridge (no route out). Both live under
the submission's prefix and are invisible to others; its default network is shown as ``bridge``. Part of
:class:`~coursekit.grading.gate.policy.Policy`.
"""
from __future__ import annotations

import contextlib
import json
import secrets
from urllib.parse import quote

from .routes import Forward, Refused, Route, missing, one, refuse
from .tenant import DEFAULT_NETWORK, Tenant


class StorageRules:
    """Volumes and networks (mixed into :class:`~coursekit.grading.gate.policy.Policy`)."""

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
        for candidate in ([ref] if Tenant.looks_like_object_id(ref) else []) + [self.tenant.name(ref)]:
            with contextlib.suppress(Exception):
                doc = api.inspect_network(candidate)
                if self.tenant.owns(doc.get("Labels")):
                    return doc
        missing("network", ref)

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
            drivers = ("bridge", "overlay") if self.swarm else ("bridge",)
            if spec.get("Driver") not in (None, "", *drivers) or spec.get("Options") or spec.get("ConfigFrom") \
                    or (spec.get("IPAM") or {}).get("Config") or spec.get("Ingress") or spec.get("Scope") == "local" \
                    and spec.get("Driver") == "overlay":
                refuse("network", f"networks are {' or '.join(drivers)} networks of their own, with the engine's "
                                  "defaults")
            overlay = spec.get("Driver") == "overlay"
            spec = {"Name": t.name(str(spec.get("Name") or "")), "Driver": "overlay" if overlay else "bridge",
                    "Internal": True, "CheckDuplicate": True, "Labels": t.labels_in(spec.get("Labels"))}
            if overlay:
                spec["Attachable"] = True  # (its probe, a plain container, joins it)
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
