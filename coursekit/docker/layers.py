"""Images are stacks of layers: look inside them.

An image is a list of read-only layers (each one a tar of files) plus a JSON config that
names them by content hash (``rootfs.diff_ids``). This module lets a learner see that for
real: the history behind each layer, the ``docker save`` archive with every layer's sha256
checked against the config, which files each layer adds, changes or deletes (whiteouts),
why deleting a file later does not shrink an image, and how the build cache behaves.

Lesson: introduced in ``03-images-and-layers`` (later also the layer explorer widget).
All engine access goes through :func:`coursekit.docker.engine.client`.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import re
import tarfile
import tempfile
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from . import engine
from ..errors import DockerError
from .labels import SCRATCH_LABEL
from ..ui.progress import Progress

LESSON = "03-images-and-layers"


class BuildFailed(DockerError):
    """A ``docker build`` step failed: ``step``, ``instruction`` and ``output`` say which and why."""

    def __init__(self, problem: str, fix: str, step: int = 0, instruction: str = "", output: str = ""):
        super().__init__(problem, fix)
        self.step, self.instruction, self.output = step, instruction, output


def _image(image):
    return engine.client().images.get(image) if isinstance(image, str) else image


def _short(digest: Optional[str]) -> str:
    return (digest or "").split(":")[-1][:12]


# --------------------------------------------------------------------------- history


@dataclass
class Layer:
    """One step of an image's history; ``diff_id`` is None for metadata-only steps (ENV, CMD, LABEL...)."""

    created_by: str
    size: int
    created: int
    diff_id: Optional[str] = None
    index: Optional[int] = None  # position in rootfs.diff_ids (None: no layer)

    def __str__(self) -> str:
        layer = f"layer {self.index} {_short(self.diff_id)}" if self.diff_id else "(no layer)"
        return f"{layer:22} {self.size / 1e6:8.2f} MB  {self.created_by[:70]}"


def clean_created_by(text: str) -> str:
    """``/bin/sh -c #(nop)  CMD ["sh"]`` -> ``CMD ["sh"]``; ``/bin/sh -c apt-get ...`` -> ``RUN apt-get ...``."""
    text = (text or "").strip()
    m = re.match(r"/bin/sh -c #\(nop\)\s*(.*)", text, re.S)
    if m:
        return m[1].strip()
    m = re.match(r"/bin/sh -c (.*)", text, re.S)
    return f"RUN {m[1].strip()}" if m else text


def _makes_layer(created_by: str, size: int) -> bool:
    """The classic builder's rule: ``#(nop)`` steps are metadata, except COPY and ADD."""
    return size > 0 or "#(nop)" not in created_by or bool(re.search(r"#\(nop\)\s*(COPY|ADD)\b", created_by))


def history(image, saved: "SavedImage | None" = None) -> list[Layer]:
    """``docker history`` joined with the config's diff_ids: which steps made a layer, and which one.

    Teaches: only filesystem-changing steps (RUN, COPY, ADD) make layers; ENV, CMD, LABEL...
    only edit the config. Oldest step first. The engine's history API does not say which steps
    are ``empty_layer``; the classic builder's ``#(nop)`` marker does, and if that guess does
    not add up, the config from ``docker save`` (``saved``, made on demand) decides.
    """
    img = _image(image)
    diff_ids = img.attrs["RootFS"].get("Layers", [])
    entries = list(reversed(img.history()))
    makes = [_makes_layer(e.get("CreatedBy", ""), e.get("Size", 0)) for e in entries]
    if sum(makes) != len(diff_ids):  # not the classic builder (BuildKit, import): ask the config itself
        with contextlib.ExitStack() as stack:
            if saved is None:
                saved = save(img, stack.enter_context(tempfile.TemporaryDirectory()))
            makes = [not h.get("empty_layer", False) for h in saved.config.get("history", [])]
    layers, n = [], 0
    for e, has_layer in zip(entries, makes):
        diff_id = diff_ids[n] if has_layer and n < len(diff_ids) else None
        layers.append(Layer(clean_created_by(e.get("CreatedBy", "")), e.get("Size", 0), e.get("Created", 0),
                            diff_id, n if diff_id else None))
        n += bool(diff_id)
    return layers


def shared_layers(img_a, img_b) -> list[str]:
    """The diff_ids two images share from the bottom up: stored once on disk, pulled/pushed once.

    Teaches: images built FROM the same base share its layers; a different layer ends the
    sharing (everything above it is new, even if identical in content, because a layer's
    place in the stack is part of what it is).
    """
    a, b = (_image(i).attrs["RootFS"].get("Layers", []) for i in (img_a, img_b))
    out = []
    for x, y in zip(a, b):
        if x != y:
            break
        out.append(x)
    return out


def _local_images(cl) -> list:
    """Every tagged image, skipping any that another build removes while we look (a shared engine)."""
    import docker.errors as de

    out = []
    for summary in cl.api.images():
        if summary.get("RepoTags") and summary["RepoTags"] != ["<none>:<none>"]:
            with contextlib.suppress(de.NotFound):
                out.append(cl.images.get(summary["Id"]))
    return out


def base_image(image, candidates=None) -> Optional[str]:
    """Which local image (course images first) this one was built FROM: the longest diff_id prefix.

    Teaches: a ``FROM`` line means "start with all of that image's layers", so the base is
    visible in the child's layer list. Returns a tag, or None (built FROM scratch / unknown).
    """
    from . import images as course_images

    img = _image(image)
    mine = img.attrs["RootFS"].get("Layers", [])
    cl = engine.client()
    pool = [cl.images.get(c) if isinstance(c, str) else c for c in candidates] if candidates else _local_images(cl)
    course = set(course_images.catalog())
    best, best_key = None, (0, False)
    for other in pool:
        theirs = other.attrs["RootFS"].get("Layers", [])
        if other.id == img.id or not other.tags or not theirs or mine[:len(theirs)] != theirs:
            continue
        tag = next((t for t in other.tags if t in course), other.tags[0])
        key = (len(theirs), tag in course)
        if key > best_key:
            best, best_key = tag, key
    return best


# --------------------------------------------------------------------------- docker save


@dataclass
class SavedLayer:
    """One layer tarball of a saved image, checked against the config's diff_id."""

    index: int
    path: Path
    size: int          # bytes of the file in the archive
    sha256: str        # of the uncompressed tar: what the config's diff_id must be
    diff_id: str       # what the config says
    verified: bool
    note: str = ""

    def __str__(self) -> str:
        mark = "OK " if self.verified else "BAD"
        return f"[{mark}] layer {self.index}: {self.size / 1e6:8.2f} MB  sha256:{self.sha256[:12]}  {self.note}".rstrip()


@dataclass
class SavedImage:
    """An extracted ``docker save`` archive: manifest, config and verified layers."""

    folder: Path
    layout: str                    # "docker-archive" or "oci"
    manifest: dict
    config: dict
    layers: list[SavedLayer] = field(default_factory=list)
    _paths: dict = field(default_factory=dict, repr=False)  # cache for layer_files

    @property
    def verified(self) -> bool:
        return all(layer.verified for layer in self.layers)

    @property
    def summary(self) -> dict:
        c = self.config.get("config") or {}
        return {"architecture": self.config.get("architecture"), "os": self.config.get("os"),
                "env": c.get("Env") or [], "cmd": c.get("Cmd"), "entrypoint": c.get("Entrypoint"),
                "history": len(self.config.get("history", [])), "layers": len(self.layers)}

    def __str__(self) -> str:
        s = self.summary
        head = [f"{self.folder} ({self.layout}): {s['os']}/{s['architecture']}, {s['history']} history steps, "
                f"{s['layers']} layers", f"  cmd={s['cmd']} entrypoint={s['entrypoint']}", f"  env={s['env']}"]
        return "\n".join(head + [f"  {layer}" for layer in self.layers])


def _sha256_uncompressed(path: Path) -> str:
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    h = hashlib.sha256()
    with (gzip.open if gz else open)(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_saved(folder: Union[str, Path]) -> SavedImage:
    """Read an extracted ``docker save`` folder (legacy docker-archive or OCI layout) and verify every layer.

    Teaches: a layer's identity is the sha256 of its tar; change one byte and it no longer
    matches the config, which is how engines and registries detect corruption.
    """
    folder = Path(folder)
    if (folder / "manifest.json").exists():  # legacy layout (newer engines write it next to the OCI one)
        manifest = json.loads((folder / "manifest.json").read_text())[0]
        layout = "oci" if (folder / "index.json").exists() else "docker-archive"
        config_path, layer_paths = manifest["Config"], manifest["Layers"]
    elif (folder / "index.json").exists():
        def blob(digest):
            return Path("blobs", *digest.split(":", 1))
        index = json.loads((folder / "index.json").read_text())
        manifest = json.loads((folder / blob(index["manifests"][0]["digest"])).read_text())
        if "manifests" in manifest:  # an index of platforms: take the first
            manifest = json.loads((folder / blob(manifest["manifests"][0]["digest"])).read_text())
        layout, config_path = "oci", blob(manifest["config"]["digest"])
        layer_paths = [blob(layer["digest"]) for layer in manifest["layers"]]
    else:
        raise DockerError(f"{folder} is not a docker save archive (no manifest.json, no index.json)",
                          "save the image with coursekit.docker.layers.save(image, folder) first")
    config = json.loads((folder / config_path).read_text())
    diff_ids = config.get("rootfs", {}).get("diff_ids", [])
    saved = SavedImage(folder, layout, manifest, config)
    for i, rel in enumerate(layer_paths):
        path = folder / rel
        sha = _sha256_uncompressed(path)
        want = diff_ids[i] if i < len(diff_ids) else ""
        ok = want == f"sha256:{sha}"
        note = "" if ok else (f"MISMATCH: the file hashes to sha256:{sha[:12]} but the config expects "
                              f"{want[:19] or 'nothing (more layers than diff_ids)'}: this layer was changed or corrupted")
        saved.layers.append(SavedLayer(i, path, path.stat().st_size, sha, want, ok, note))
    return saved


def save(image, dest_dir: Union[str, Path]) -> SavedImage:
    """``docker save`` through the SDK, extracted into ``dest_dir``, parsed and verified.

    Teaches: an image is just files: a manifest, a JSON config, and one tar per layer.
    """
    img = _image(image)
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile() as tmp:
        for chunk in img.save(named=True):
            tmp.write(chunk)
        tmp.seek(0)
        with tarfile.open(fileobj=tmp) as tar:
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: refuse paths outside dest
                tar.extractall(dest, filter="data")
            else:
                tar.extractall(dest)
    return load_saved(dest)


# --------------------------------------------------------------------------- what a layer contains


@dataclass
class FileChange:
    """One path in a layer: ``kind`` is added, changed or deleted; ``size`` the bytes it costs here."""

    path: str
    kind: str
    size: int = 0
    type: str = "file"  # file, dir, symlink, hardlink, other; "opaque" for a whole directory hidden

    def __str__(self) -> str:
        return f"{self.kind:8} {self.size:>10} B  /{self.path}{'/' if self.type == 'dir' else ''}"


def _members(saved: SavedImage, i: int) -> list[tarfile.TarInfo]:
    with tarfile.open(saved.layers[i].path) as tar:  # mode "r:*" detects gzip (OCI) by itself
        return tar.getmembers()


def _paths_below(saved: SavedImage, i: int) -> set[str]:
    """Every path visible in the union of layers 0..i-1 (whiteouts applied), cached."""
    if i in saved._paths:
        return saved._paths[i]
    paths = set(_paths_below(saved, i - 1)) if i > 0 else set()
    if i > 0:
        for ch in layer_files(saved, i - 1):
            if ch.kind == "deleted":
                paths = {p for p in paths if p != ch.path and not p.startswith(ch.path + "/")}
                if ch.type == "opaque":
                    paths.add(ch.path)  # the directory itself stays
            else:
                paths.add(ch.path)
    saved._paths[i] = paths
    return paths


def layer_files(saved: SavedImage, i: int) -> list[FileChange]:
    """What layer ``i`` adds, changes or deletes.

    Teaches: a layer is a diff. A deleted file is a *whiteout* entry (``.wh.<name>``) that
    hides the lower copy; ``.wh..wh..opq`` hides a whole directory's lower content. Nothing
    is removed from lower layers: they are read-only and shared.
    """
    below = _paths_below(saved, i) if i > 0 else set()
    out = []
    for m in _members(saved, i):
        path = m.name.removeprefix("./").strip("/")
        parent, _, name = path.rpartition("/")
        if name == ".wh..wh..opq":
            out.append(FileChange(parent, "deleted", 0, "opaque"))
        elif name.startswith(".wh."):
            out.append(FileChange(f"{parent}/{name[4:]}".lstrip("/"), "deleted", 0, "whiteout"))
        elif path:
            kind = "file" if m.isreg() else "dir" if m.isdir() else "symlink" if m.issym() else \
                "hardlink" if m.islnk() else "other"
            out.append(FileChange(path, "changed" if path in below else "added", m.size if m.isreg() else 0, kind))
    return out


def layer_summary(saved: SavedImage) -> list[dict]:
    """Per layer: how many files (not directories) it adds, changes, deletes, and their bytes."""
    rows = []
    for layer in saved.layers:
        changes = [c for c in layer_files(saved, layer.index) if c.type != "dir"]
        rows.append({"layer": layer.index, "sha256": layer.sha256[:12], "tar_bytes": layer.size,
                     **{k: sum(c.kind == k for c in changes) for k in ("added", "changed", "deleted")},
                     "bytes": sum(c.size for c in changes)})
    return rows


# --------------------------------------------------------------------------- building examples


@dataclass
class Step:
    """One build step as the stream reported it."""

    number: int
    instruction: str
    cached: bool = False
    image_id: str = ""


def context_tar(dockerfile_text: str, files: Optional[dict]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in {"Dockerfile": dockerfile_text, **(files or {})}.items():
            raw = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(raw), 0o644, 0
            tar.addfile(info, io.BytesIO(raw))
    buf.seek(0)
    return buf


def remove_ids(ids) -> None:
    """Remove images a build made (newest first); anything still used by something else stays."""
    cl = engine.client()
    for image_id in reversed(list(ids)):
        with contextlib.suppress(Exception):
            cl.api.remove_image(image_id, noprune=False)


def read_build_stream(stream, progress: Progress = None) -> tuple[list[Step], list[str]]:
    """Follow a classic build's JSON stream: its steps (with ``cached``) and the image ids it made.

    On an error, removes the images this build made (not cache hits) and raises
    :class:`BuildFailed` naming the step, its instruction and the last lines of output.
    """
    steps: list[Step] = []
    tail: deque[str] = deque(maxlen=12)
    made: list[str] = []  # image ids this build created (not cache hits): removed if it fails
    for chunk in stream:
        for line in chunk.get("stream", "").splitlines():
            line = re.sub(r"\x1b\[[0-9;]*m", "", line).rstrip()
            if progress and line.strip():
                progress(line)
            m = re.match(r"Step (\d+)/\d+ : (.*)", line)
            if m:
                steps.append(Step(int(m[1]), m[2]))
                tail.clear()
            elif line.strip() == "---> Using cache" and steps:
                steps[-1].cached = True
            elif (m := re.match(r" ---> ([0-9a-f]{12})$", line)) and steps:
                steps[-1].image_id = m[1]
                if not steps[-1].cached and not steps[-1].instruction.upper().startswith("FROM"):
                    made.append(m[1])  # (a FROM step's id is its base image's: never ours to remove)
            elif line.strip() and not line.startswith((" ---> ", "Removing intermediate container")):
                tail.append(line)
        if "error" in chunk:
            remove_ids(made)
            step = steps[-1] if steps else Step(0, "(before the first step)")
            out = "\n".join(tail) or "(no output)"
            raise BuildFailed(f"the build failed at step {step.number}: `{step.instruction}`\n"
                              f"{chunk['error'].strip()}\nits last lines of output:\n{out}",
                              "fix that line of the Dockerfile (or what it needs), then build again",
                              step.number, step.instruction, out)
    return steps, made


def _build(dockerfile_text: str, tag: str, files=None, progress: Progress = None, nocache: bool = False):
    """Run a classic build; return (image, steps, ids it made). On failure remove those, raise BuildFailed."""
    cl = engine.client()
    labels = {engine.OWNER: engine.OWNER_VALUE, SCRATCH_LABEL: "1"}
    stream = cl.api.build(fileobj=context_tar(dockerfile_text, files), custom_context=True, tag=tag, labels=labels,
                          rm=True, forcerm=True, pull=False, nocache=nocache, decode=True)
    steps, made = read_build_stream(stream, progress)
    return cl.images.get(tag), steps, made


def build_example(dockerfile_text: str, tag: str, files: Optional[dict] = None, *, progress: Progress = None,
                  nocache: bool = False):
    """Build a lesson's example image from an in-memory context; returns the image.

    Teaches: ``docker build`` sends a *context* (a tar: the Dockerfile plus ``files``, a dict
    name -> text/bytes) to the engine, which runs one step per instruction. The image is
    labelled as coursekit's throw-away (``coursekit clean --images`` removes it); remove it
    with :func:`remove_example`. A failing step raises :class:`BuildFailed` naming the step.
    The image also carries ``build_steps`` (each with ``cached``) and ``built_ids`` (images
    this build created rather than took from the cache).
    """
    img, steps, made = _build(dockerfile_text, tag, files, progress, nocache)
    img.build_steps, img.built_ids = steps, made
    return img


def remove_example(tag: str) -> None:
    """Remove an example image by its tag, and the untagged layers only it used.

    By tag, not id: if another image has the same id (a fully cached build), only our tag goes.
    """
    import docker.errors as de

    cl = engine.client()
    with contextlib.suppress(de.ImageNotFound, de.NotFound):
        if (cl.images.get(tag).labels or {}).get(SCRATCH_LABEL) != "1":
            raise DockerError(f"{tag} is not a coursekit example image", "remove it yourself if you mean to")
        cl.api.remove_image(tag, noprune=False)


DELETE_DOCKERFILE = """FROM coursekit/busybox:v1
RUN dd if=/dev/zero of=/big.bin bs=1M count=5
RUN rm /big.bin
"""


def delete_demo(tag: Optional[str] = None, progress: Progress = None) -> dict:
    """Deleting a file in a later layer does not shrink the image: build it, measure, find the whiteout.

    Teaches: ``RUN rm`` adds a layer holding a whiteout; the 5 MB stay in the layer below.
    Clean up in the same ``RUN`` that makes the mess. The example image is removed afterwards.
    """
    tag = tag or f"coursekit-scratch/delete-demo:{uuid.uuid4().hex[:8]}"
    base = engine.client().images.get("coursekit/busybox:v1")
    img = build_example(DELETE_DOCKERFILE, tag, progress=progress)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            saved = save(img, tmp)
            last = layer_files(saved, len(saved.layers) - 1)
            return {"base_size": base.attrs["Size"], "image_size": img.attrs["Size"],
                    "grown_by": img.attrs["Size"] - base.attrs["Size"], "verified": saved.verified,
                    "whiteouts": [c.path for c in last if c.type == "whiteout"], "layers": layer_summary(saved)}
    finally:
        remove_example(tag)


# --------------------------------------------------------------------------- the build cache


CACHE_DOCKERFILE = """FROM coursekit/busybox:v1
COPY requirements.txt /app/
RUN sleep 1 && cp /app/requirements.txt /app/installed.txt
COPY app.py /app/
RUN sleep 1 && wc -c /app/app.py > /app/size.txt
CMD ["cat", "/app/app.py"]
"""
CACHE_FILES = {"requirements.txt": "flask==3.0\n", "app.py": "print('hello')\n"}


@dataclass
class BuildTiming:
    """One scenario of :func:`time_builds`."""

    scenario: str
    seconds: float
    steps: list[Step]

    @property
    def cached(self) -> list[int]:
        return [s.number for s in self.steps if s.cached]

    @property
    def rebuilt(self) -> list[int]:
        return [s.number for s in self.steps if not s.cached and s.number > 1]

    def __str__(self) -> str:
        return f"{self.scenario:12} {self.seconds:6.2f} s  cached steps {self.cached}  rebuilt {self.rebuilt}"


def time_builds(dockerfile_text: str = CACHE_DOCKERFILE, files: Optional[dict] = None, *,
                early_file: str = "requirements.txt", late_file: str = "app.py", tag: Optional[str] = None,
                progress: Progress = None) -> list[BuildTiming]:
    """Build one context four times: cold, cached, after changing a late file, after changing an early one.

    Teaches: each step's cache key is its instruction plus (for COPY/ADD) the files' content;
    the first miss rebuilds every later step. So copy what changes often (your code) late,
    and what changes rarely (dependency lists) early. Every image made is removed at the end.
    """
    files = dict(CACHE_FILES if files is None else files)
    missing = [f for f in (early_file, late_file) if f not in files]
    if missing:
        raise DockerError(f"time_builds changes {missing} but the context has only {sorted(files)}",
                          "pass early_file= and late_file= naming files of the context")
    tag = tag or f"coursekit-scratch/cache-demo:{uuid.uuid4().hex[:8]}"
    nonce = uuid.uuid4().hex[:8]  # changed contents nobody has built before: no stale cache hits
    plan = [("cold", {}, True), ("cached", {}, False),
            ("late file", {late_file: f"# changed {nonce}\n"}, False),
            ("early file", {early_file: f"# changed {nonce}\n"}, False)]
    results, made = [], []
    try:
        for scenario, change, nocache in plan:
            for name, extra in change.items():
                files[name] = (files[name].encode() if isinstance(files[name], str) else files[name]) + extra.encode()
            t0 = time.monotonic()
            _, steps, ids = _build(dockerfile_text, tag, files, progress, nocache)
            results.append(BuildTiming(scenario, time.monotonic() - t0, steps))
            made += ids
    finally:
        remove_example(tag)
        remove_ids(made)  # the versions it replaced, and their own layers (cache hits are not ours: kept)
    return results
