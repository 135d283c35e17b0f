"""One submission's place on the shared engine: its names, its labels, its objects.

Two students may both name a container ``web``, and neither may see the other's. So every name a
submission gives is stored under its own prefix (``ck<id>-web`` for containers, volumes and
networks, ``ck<id>/myapp:1`` for image tags) and shown back without it; every object it creates
carries :data:`TENANT` = its id, and is invisible to every other submission (404, as if it did
not exist).

Registries. A registry the submission runs (a container of the course's registry image) is
reached by the submission at ``127.0.0.1:P``, its own loopback, and by the engine (which pushes and
pulls) at ``127.0.0.1:H``, a port the gate listens on on the grading host. Image names carry the
registry's address, so the gate stores ``127.0.0.1:P/shop/web:1`` as ``127.0.0.1:H/shop/web:1``
(unique to this submission: no prefix is needed) and shows it back as the submission named it.

Labels. Whatever the submission sets, each object also carries the grading process's own
coursekit labels (owner, session, pid, host), so that the grader's clean-up and its reaper remove
it even if the grader is killed. The submission's own values of those four labels (coursekit in
the sandbox sets them too) are kept under ``org.coursekit.gate.<name>``, given back in every
answer, and label filters on them are turned into filters on the kept ones: the submission sees
exactly the labels it set.
"""
from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from urllib.parse import quote

from ...docker import engine
from ...docker.labels import GATE_SESSION_LABEL, HOST, OWNER, PID, SESSION, TENANT_LABEL
from .routes import refuse

TENANT = TENANT_LABEL
#: On an image a submission built: the grading process whose reaper removes it.
GRADER = GATE_SESSION_LABEL
#: The submission's own default network is shown (and may be named) as the engine's default, ``bridge``.
DEFAULT_NETWORK = "bridge"
#: The grader's labels every object carries, and where the submission's own values of them are kept.
SHADOWED = {key: f"org.coursekit.gate.{key.rsplit('.', 1)[-1]}" for key in (OWNER, SESSION, PID, HOST)}
_HEX = re.compile(r"[0-9a-f]{12,64}\Z")
_SWARM_ID = re.compile(r"[0-9a-z]{25}\Z")   # a swarm object's id (a service, a task, an overlay network)
LOOPBACK = ("127.0.0.1", "localhost")


def registry_host(first: str) -> bool:
    """Is ``first``, the first part of an image reference, a registry's address (as the engine reads it)?"""
    return "." in first or ":" in first or first == "localhost"


@dataclass
class Tenant:
    """A submission's namespace on the engine, and what it has made there."""

    id: str = field(default_factory=lambda: secrets.token_hex(5))
    containers: set[str] = field(default_factory=set)   # full ids
    execs: set[str] = field(default_factory=set)
    tags: set[str] = field(default_factory=set)         # its tags (on images it did not build)
    ports: dict[str, dict[str, int]] = field(default_factory=dict)  # container id -> {"8000/tcp": sandbox port}
    registries: dict[int, int] = field(default_factory=dict)  # a registry's sandbox port -> the engine's
    next_port: int = 32768

    @property
    def prefix(self) -> str:
        return f"ck{self.id}-"

    @property
    def repo(self) -> str:
        return f"ck{self.id}/"

    # -- names
    def name(self, given: str) -> str:
        """A container, volume or network name as stored: under the submission's prefix."""
        given = given.lstrip("/")
        return given if given.startswith(self.prefix) else self.prefix + given

    def shown(self, stored: str) -> str:
        """A stored name as the submission sees it (a leading ``/`` kept)."""
        slash = "/" if stored.startswith("/") else ""
        bare = stored.lstrip("/")
        return slash + (bare[len(self.prefix):] if bare.startswith(self.prefix) else bare)

    def tag(self, given: str) -> str:
        """An image reference the submission names, as stored (``myapp:1`` -> ``ck<id>/myapp:1``,
        ``127.0.0.1:P/web:1`` -> ``127.0.0.1:H/web:1`` for a registry of its own; another registry: refused)."""
        host, slash, rest = given.partition("/")
        if slash and registry_host(host):
            name, _, port = host.rpartition(":")
            if name in LOOPBACK and port.isdigit() and int(port) in self.registries:
                return f"{name}:{self.registries[int(port)]}/{rest}"
            if self.mine(given):
                return given
            ports = ", ".join(f"127.0.0.1:{p}" for p in sorted(self.registries)) or "none yet"
            refuse("registry", f"{host}: the registries served to a submission are the ones it runs from the "
                               f"course's registry image, on 127.0.0.1 (yours: {ports})")
        return given if given.startswith(self.repo) else self.repo + given

    def untag(self, stored: str) -> str:
        """A stored image reference as the submission named it."""
        if stored.startswith(self.repo):
            return stored[len(self.repo):]
        host, slash, rest = stored.partition("/")
        name, _, port = host.rpartition(":")
        if slash and name in LOOPBACK:
            for shown, real in self.registries.items():
                if port == str(real):
                    return f"{name}:{shown}/{rest}"
        return stored

    def mine(self, stored: str) -> bool:
        """Is this stored image reference one of the submission's names (its prefix, or a registry of its own)?"""
        if stored.startswith(self.repo):
            return True
        host, slash, _ = stored.partition("/")
        name, _, port = host.rpartition(":")
        return bool(slash) and name in LOOPBACK and port in {str(h) for h in self.registries.values()}

    def shown_text(self, text: str) -> str:
        """A message or progress line of the engine's, with the submission's stored names as it gave them."""
        text = text.replace(self.repo, "").replace(self.prefix, "")
        for shown, real in self.registries.items():
            for name in LOOPBACK:
                text = text.replace(f"{name}:{real}/", f"{name}:{shown}/").replace(f"[{name}:{real}]",
                                                                                  f"[{name}:{shown}]")
        return text

    @staticmethod
    def looks_like_id(ref: str) -> bool:
        return bool(_HEX.fullmatch(ref.removeprefix("sha256:")))

    @staticmethod
    def looks_like_object_id(ref: str) -> bool:
        """An id of a container, network, service or task (hex, or a swarm object's 25 characters)."""
        return bool(_HEX.fullmatch(ref) or _SWARM_ID.fullmatch(ref))

    # -- labels
    def labels_in(self, given: dict | None) -> dict[str, str]:
        """The labels to store: the submission's own, with the grader's four kept aside, and the tenant."""
        out = {str(k): str(v) for k, v in (given or {}).items() if not str(k).startswith(("org.coursekit.gate.",
                                                                                         TENANT))}
        for key, kept in SHADOWED.items():
            if key in out:
                out[kept] = out.pop(key)
        out.update(engine.labels())
        out[TENANT] = self.id
        return out

    def build_labels(self, given: dict | None) -> dict[str, str]:
        """The labels of an image it builds: its own, as given, plus whose it is (each label is a build step,
        so the four are not doubled here: the grader finds its images by :data:`GRADER`)."""
        out = {str(k): str(v) for k, v in (given or {}).items() if not str(k).startswith(("org.coursekit.gate.",
                                                                                         TENANT))}
        out.update({TENANT: self.id, GRADER: engine.SESSION_ID})
        return out

    def labels_out(self, stored: dict | None) -> dict[str, str] | None:
        """The labels as the submission set them."""
        if stored is None:
            return None
        out = {k: v for k, v in stored.items() if k not in SHADOWED and k != TENANT
               and not k.startswith("org.coursekit.gate.")}
        for key, kept in SHADOWED.items():
            if kept in stored:
                out[key] = stored[kept]
        return out

    def label_filter(self, wanted: str) -> str:
        """``key`` or ``key=value`` of a label filter, on the kept label when it is one of the four."""
        key, eq, value = wanted.partition("=")
        return SHADOWED.get(key, key) + eq + value

    def filters(self, raw: str | None, *, by_label: bool = True) -> str:
        """A ``filters`` query (JSON) with label filters translated and this tenant's label required."""
        try:
            doc = json.loads(raw) if raw else {}
        except ValueError:
            doc = {}
        if not isinstance(doc, dict):
            doc = {}
        labels = doc.get("label") or []
        if isinstance(labels, dict):  # the old form: {"k=v": true}
            labels = [k for k, on in labels.items() if on]
        doc["label"] = [self.label_filter(str(x)) for x in labels]
        if by_label:
            doc["label"].append(f"{TENANT}={self.id}")
        if "name" in doc:  # a name filter matches the stored (prefixed) names
            names = doc["name"] if isinstance(doc["name"], list) else list(doc["name"])
            doc["name"] = [self.prefix + str(n).lstrip("/^") for n in names]
        return quote(json.dumps(doc))

    def owns(self, labels: dict | None) -> bool:
        return (labels or {}).get(TENANT) == self.id

    # -- published ports, as the sandbox sees them
    def publish(self, container_id: str, wanted: dict) -> dict[str, int]:
        """Sandbox ports for a container's port bindings ``{"8000/tcp": [{"HostPort": "..."}]}``."""
        out = {}
        for port, bindings in (wanted or {}).items():
            for b in bindings or [{}]:
                host = str((b or {}).get("HostPort") or "")
                if host.isdigit() and 1024 <= int(host) < 65536:
                    out[port] = int(host)
                else:
                    out[port], self.next_port = self.next_port, self.next_port + 1
                break
        self.ports[container_id] = out
        return out
