"""The course registry: a real image registry in a container on 127.0.0.1, and its HTTP API.

``start()`` runs ``coursekit/registry:2`` (the official ``registry:2`` image where a registry
answers, else the same program built from Debian's package; see ``recipes/registry``) with
its storage on a volume, published on ``127.0.0.1:5000`` (or a free port if 5000 is taken),
and returns a :class:`Registry`. A second ``start()`` in the same session reuses it. Like
everything coursekit starts, it is labelled and removed at the end of the session, or by
``stop()``, which also forgets the local tags that point at it.

The :class:`Registry` methods are the registry's HTTP API (the "distribution" spec) in
Python: ``catalog``, ``tags``, ``manifest`` (with the ``Docker-Content-Digest``),
``delete`` by digest, ``garbage_collect``; and ``push``/``pull`` through the engine, with a
report of which layers were uploaded and which the registry already had.

Lessons: ``06-registries``; the pipeline of ``08-ci-cd`` deploys from it; orchestration pulls from it.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from . import engine
from ..errors import CoursekitError, RegistryError
from .labels import ROLE_LABEL, SOURCE_LABEL
from ..ui.palette import FAINT, HIGHLIGHT
from ..ui.progress import Progress

IMAGE = "coursekit/registry:2"
NAME = "coursekit-registry"
VOLUME = "coursekit-registry-data"
PORT = 5000
CONFIG = "/etc/docker/registry/config.yml"
#: What we accept when asking for a manifest: single-platform Docker and OCI manifests, and lists.
MANIFEST_TYPES = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
])



@dataclass
class PushReport:
    """What ``docker push`` did: the manifest digest, and each layer's fate.

    Layers are named as ``docker push`` prints them: the first 12 hex digits of the layer's
    ``diff_id``. ``sizes`` maps each to its compressed size in the registry (from the manifest).
    """

    reference: str
    digest: str = ""
    size: int = 0
    pushed: list[str] = field(default_factory=list)    # layers uploaded now
    existed: list[str] = field(default_factory=list)   # layers the registry already had: not sent
    seconds: float = 0.0
    sizes: dict[str, int] = field(default_factory=dict)  # layer -> bytes stored in the registry

    @property
    def pushed_bytes(self) -> int:
        """Bytes of the layers uploaded by this push (compressed, as the registry stores them)."""
        return sum(self.sizes.get(lid, 0) for lid in self.pushed)

    @property
    def existed_bytes(self) -> int:
        """Bytes of the layers the registry already had, so the push did not send them."""
        return sum(self.sizes.get(lid, 0) for lid in self.existed)

    def __str__(self) -> str:
        def kb(n: int) -> str:
            return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n:,} B"
        return (f"pushed {self.reference} in {self.seconds:.1f} s: {len(self.pushed)} layer(s) uploaded "
                f"({kb(self.pushed_bytes)}), {len(self.existed)} already there ({kb(self.existed_bytes)}); "
                f"digest {self.digest[:19]}...")




class Registry:
    """A running course registry. ``host`` (``127.0.0.1:5000``) is what image names start with."""

    def __init__(self, container: Any):
        self.container = container
        self.port = engine.host_port(container, "5000/tcp")
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"

    def __repr__(self) -> str:
        return f"<Registry {self.url} (container {self.container.name})>"

    # ------------------------------------------------------------------ the HTTP API
    def request(self, method: str, path: str, headers: Optional[dict] = None) -> tuple[int, dict, bytes]:
        """One HTTP request to the registry API: ``(status, headers, body)``."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        except OSError as exc:
            raise RegistryError(f"the registry at {self.host} does not answer ({exc.strerror or exc}): it is not "
                                "running (stopped, or removed by the clean-up cell)",
                                "start it again: reg = registry.start()") from None
        finally:
            conn.close()

    def _json(self, path: str) -> dict:
        status, _, body = self.request("GET", path)
        if status != 200:
            raise RegistryError(f"the registry answered {status} to GET {path}: {body[:200]!r}",
                                "check the repository name and tag (registry.catalog(), registry.tags(repo))")
        return json.loads(body)

    def catalog(self) -> list[str]:
        """``GET /v2/_catalog``: every repository in the registry."""
        return self._json("/v2/_catalog").get("repositories") or []

    def tags(self, repository: str) -> list[str]:
        """``GET /v2/<name>/tags/list``: the repository's tags (``[]`` once all are deleted)."""
        return self._json(f"/v2/{repository}/tags/list").get("tags") or []

    def manifest_raw(self, repository: str, reference: str = "latest") -> tuple[str, str, bytes]:
        """The manifest exactly as stored: ``(digest, media type, bytes)``; the digest is the bytes' sha256."""
        status, headers, body = self.request("GET", f"/v2/{repository}/manifests/{reference}",
                                             {"Accept": MANIFEST_TYPES})
        if status != 200:
            raise RegistryError(f"no manifest {repository}:{reference} in the registry (HTTP {status})",
                                f"push it first, or look at registry.tags({repository!r})")
        return headers.get("docker-content-digest", ""), headers.get("content-type", ""), body

    def manifest(self, repository: str, reference: str = "latest") -> tuple[str, dict]:
        """``GET /v2/<name>/manifests/<tag or digest>``: ``(Docker-Content-Digest, manifest as a dict)``."""
        digest, _, body = self.manifest_raw(repository, reference)
        return digest, json.loads(body)

    def retag(self, repository: str, tag: str, new_tag: str) -> str:
        """Give a pushed image a second tag inside the registry: GET its manifest, PUT the same bytes.

        No layer moves and nothing is pulled; the digest stays the same. Returns it.
        """
        digest, media_type, body = self.manifest_raw(repository, tag)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("PUT", f"/v2/{repository}/manifests/{new_tag}", body=body,
                         headers={"Content-Type": media_type})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 201:
                raise RegistryError(f"the registry refused the manifest for {repository}:{new_tag} "
                                    f"(HTTP {resp.status})", "check the tag names (letters, digits, . _ -)")
            return resp.getheader("Docker-Content-Digest", digest)
        finally:
            conn.close()

    def delete(self, repository: str, digest: str) -> None:
        """``DELETE /v2/<name>/manifests/<digest>``: untag every tag pointing at it (blobs stay until GC)."""
        if not digest.startswith("sha256:"):
            raise RegistryError(f"the registry deletes manifests by digest, not by tag ({digest!r})",
                                "get the digest first: digest, _ = registry.manifest(repo, tag)")
        status, _, body = self.request("DELETE", f"/v2/{repository}/manifests/{digest}")
        if status != 202:
            raise RegistryError(f"the registry did not delete {repository}@{digest[:19]}... (HTTP {status}: "
                                f"{body[:160]!r})", "check the digest with registry.manifest(repo, tag)")

    def garbage_collect(self) -> dict:
        """Run the registry's garbage collector; returns bytes stored before and after, and its output."""
        before = self.stored_bytes()
        code, out = self.container.exec_run(["registry", "garbage-collect", "--delete-untagged", CONFIG])
        text = out.decode(errors="replace")
        if code != 0:
            raise RegistryError(f"garbage-collect failed with exit code {code}: {text[-300:]}",
                                "read the output; a registry must allow deletes for this (ours does)")
        return {"before": before, "after": self.stored_bytes(), "output": text}

    def stored_bytes(self) -> int:
        """Bytes of the files under the registry's storage folder (``find`` + ``stat``: busybox has no ``du -b``)."""
        code, out = self.container.exec_run(["sh", "-c", "find /var/lib/registry -type f -exec stat -c %s {} +"])
        return sum(int(w) for w in out.split() if w.isdigit()) if code == 0 else 0

    @property
    def source(self) -> str:
        """Where the registry program came from, in words (the image's ``org.coursekit.source`` label)."""
        labels = self.container.image.labels or {}
        if labels.get(SOURCE_LABEL) == "recipe":
            return ("the open-source registry program (CNCF distribution, the one behind the official "
                    "registry:2 image) installed from Debian's docker-registry package, because no image "
                    "registry could be reached to pull the official image")
        return "the official registry:2 image (the open-source CNCF distribution registry)"

    # ------------------------------------------------------------------ through the engine
    def reference(self, repository: str, tag: str = "latest") -> str:
        return f"{self.host}/{repository}:{tag}"

    def tag(self, image: Any, repository: str, tag: str = "latest") -> str:
        """``docker tag IMAGE 127.0.0.1:PORT/repository:tag``; returns the new reference."""
        from .names import parse

        parse(f"{self.host}/{repository}:{tag}")  # a name the engine would refuse is explained first
        _image(image).tag(f"{self.host}/{repository}", tag)
        return self.reference(repository, tag)

    def push(self, image: Any, repository: str, tag: str = "latest", progress: Progress = None) -> PushReport:
        """Tag ``image`` for this registry and push it; report which layers went up, and their sizes."""
        img = _image(image)
        ref = self.tag(img, repository, tag)
        report, t0 = PushReport(ref), time.monotonic()
        layers: dict[str, str] = {}
        for chunk in engine.client().images.push(f"{self.host}/{repository}", tag=tag, stream=True, decode=True):
            if "error" in chunk:
                raise RegistryError(f"pushing {ref} failed: {chunk['error']}", "is the registry running? "
                                    "registry.catalog() should answer")
            status, lid = chunk.get("status", ""), chunk.get("id", "")
            if lid and (status in ("Pushed", "Layer already exists") or status.startswith("Mounted from")):
                layers[lid] = status
                if progress:
                    progress(f"{lid}: {status}")
            m = re.search(r"digest: (sha256:[0-9a-f]{64}) size: (\d+)", status)
            if m:
                report.digest, report.size = m[1], int(m[2])
        report.pushed = [lid for lid, s in layers.items() if s == "Pushed"]
        report.existed = [lid for lid, s in layers.items() if s != "Pushed"]
        report.seconds = time.monotonic() - t0
        report.sizes = self._layer_sizes(img, repository, report.digest or tag)
        return report

    def _layer_sizes(self, img: Any, repository: str, reference: str) -> dict[str, int]:
        """Layer (as ``docker push`` names it) -> compressed size; the manifest lists them in diff_id order."""
        diff_ids = [d.split(":")[-1][:12] for d in img.attrs.get("RootFS", {}).get("Layers", [])]
        with contextlib.suppress(CoursekitError, ValueError):
            _, manifest = self.manifest(repository, reference)
            sizes = [int(layer.get("size", 0)) for layer in manifest.get("layers", [])]
            if len(sizes) == len(diff_ids):
                return dict(zip(diff_ids, sizes))
        return {}

    def pull(self, repository: str, reference: str = "latest") -> Any:
        """``docker pull`` from this registry, by tag or by digest (``sha256:...``); returns the image."""
        sep = "@" if reference.startswith("sha256:") else ":"
        ref = f"{self.host}/{repository}{sep}{reference}"
        try:
            engine.client().api.pull(ref)
            return engine.client().images.get(ref)
        except Exception as exc:
            raise engine.explain_docker_error(exc, image=ref, what=f"pulling {ref}") from exc

    def untag_local(self) -> list[str]:
        """Forget every local name that points at this registry: tags, and the ``repo@sha256:...``
        names that pulls by digest leave (the images themselves stay if something else uses them)."""
        import docker.errors as de

        gone = []
        for summary in engine.client().api.images():  # not images.list(): it fails if another build removes one
            for t in (summary.get("RepoTags") or []) + (summary.get("RepoDigests") or []):
                if t.startswith(f"{self.host}/"):
                    with contextlib.suppress(de.NotFound):
                        engine.client().images.remove(t, noprune=False)
                        gone.append(t)
        return gone

    def stop(self) -> None:
        """Remove the registry's container and volume, and the local tags that point at it."""
        with contextlib.suppress(Exception):
            self.untag_local()
        mounts = [m["Name"] for m in self.container.attrs.get("Mounts", []) if m.get("Type") == "volume"]
        engine.remove_quietly(self.container)
        for name in mounts:
            with contextlib.suppress(Exception):
                engine.client().volumes.get(name).remove(force=True)

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _image(image: Any) -> Any:
    return engine.client().images.get(image) if isinstance(image, str) else image


def plot_pushes(reports: dict[str, PushReport], *, title: str = "What each push sent", save: Optional[str] = None):
    """Stacked bars, one per push: bytes uploaded and bytes the registry already had (not sent)."""
    from ..ui.plots import finish, human_size, pyplot

    plt = pyplot()
    labels = list(reports)
    sent = [reports[k].pushed_bytes / 1e6 for k in labels]
    had = [reports[k].existed_bytes / 1e6 for k in labels]
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.7 * len(labels)))
    ax.barh(labels, sent, color=HIGHLIGHT, label="uploaded by this push")
    ax.barh(labels, had, left=sent, color=FAINT, label="already in the registry: not sent")
    for i, k in enumerate(labels):
        r = reports[k]
        ax.annotate(f"sent {human_size(r.pushed_bytes)} ({len(r.pushed)} layer{'s' * (len(r.pushed) != 1)}), "
                    f"skipped {human_size(r.existed_bytes)} ({len(r.existed)})", (sent[i] + had[i], i),
                    xytext=(4, -3), textcoords="offset points", fontsize=9)
    ax.set_xlim(0, max(s + h for s, h in zip(sent, had)) * 2.1 or 1)
    ax.set_xlabel("MB (compressed layers, as the registry stores them)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2, fontsize=8, frameon=False)
    return finish(plt, fig, ax, title, save)


def running() -> Optional[Registry]:
    """This session's registry, if one is running."""
    for c in engine.client().containers.list(filters={"label": [f"{engine.SESSION}={engine.SESSION_ID}",
                                                                f"{ROLE_LABEL}=registry"]}):
        return Registry(c)
    return None


def _names() -> tuple[str, str]:
    """``coursekit-registry`` and its volume, unless another live notebook has them: then our own."""
    import docker.errors as de

    try:
        other = engine.client().containers.get(NAME)
    except de.NotFound:
        return NAME, VOLUME
    pid = int(other.labels.get(engine.PID, "0") or 0)
    if engine.is_ours(other.labels) and other.labels.get(engine.HOST) == engine.HOST_ID and \
            not engine.pid_alive(pid):
        return NAME, VOLUME  # left by a dead kernel: engine.run replaces it
    suffix = engine.SESSION_ID.rsplit("-", 1)[-1]
    return f"{NAME}-{suffix}", f"{VOLUME}-{suffix}"


def start(port: int = PORT, *, lesson: Optional[str] = None, timeout: float = 30.0) -> Registry:
    """Start the course registry (or reuse this session's) on ``127.0.0.1:port``.

    If ``port`` is taken by something else, a free port is used instead: read ``registry.host``.
    """
    reg = running()
    if reg is not None:
        return reg
    name, volume = _names()
    vol = engine.volume(volume, lesson=lesson)
    host_port = port if engine.port_free(port) else None
    c = engine.run(IMAGE, detach=True, name=name, lesson=lesson, ports={"5000/tcp": host_port},
                   labels={ROLE_LABEL: "registry"},
                   volumes={vol.name: {"bind": "/var/lib/registry", "mode": "rw"}},
                   environment={"REGISTRY_STORAGE_DELETE_ENABLED": "true"})
    reg = Registry(c)
    status, _ = engine.wait_http(reg.port, "/v2/", timeout=timeout, container=c)
    if status != 200:
        raise RegistryError(f"the registry answered HTTP {status} to GET /v2/ instead of 200",
                            "look at its log: registry.container.logs()")
    return reg
