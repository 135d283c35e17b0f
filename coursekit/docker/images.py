"""``coursekit images``: every image the course uses exists on this engine, online or offline.

Each course image has a course name (``coursekit/debian:bookworm``), the official image it
stands in for (``debian:bookworm-slim``) and a recipe, a commented Dockerfile in
``coursekit/docker/recipes/<folder>/``. :func:`ensure` makes each image exist:

1. already here (and built from the current recipe)? nothing to do: this takes milliseconds;
2. an image registry answers? pull the official image and tag it with the course name;
3. otherwise build the recipe locally, from OS packages (see :mod:`coursekit.docker.offline`).

Every image carries labels: ``org.coursekit.owner=coursekit``, ``org.coursekit.image``,
``org.coursekit.recipe`` (hash of the recipe folder and of the recipes it builds on) and
``org.coursekit.source`` (``recipe`` or ``upstream``). Course images are a cache:
``coursekit clean`` leaves them alone.

To add an image: write ``recipes/<folder>/Dockerfile`` (plus a ``requirements.txt`` if it
needs Python packages: they are downloaded on the host into ``wheels/``) and add one
:class:`Image` line to :data:`CATALOG`. A ``FROM coursekit/...`` line makes that image a
dependency, built first. Introduced in ``00-welcome``; used by every Docker lesson.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import re
import time
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator, Union

from . import engine, offline as imagebuild
from .labels import IMAGE_LABEL, RECIPE_LABEL, SCRATCH_LABEL, SOURCE_LABEL
from ..errors import CoursekitError, ImageProvisioningError
from ..ui.progress import Progress

RECIPES = Path(__file__).parent / "recipes"
BUILD_TIMEOUT = 1800  # seconds a single build request may stay silent



@dataclass(frozen=True)
class Image:
    """One image the course uses."""

    name: str                  # the course's name for it: what lessons `docker run`
    upstream: str              # the official image it stands in for (pulled when a registry answers)
    recipe: str                # folder under coursekit/docker/recipes/ (or an absolute path) with the Dockerfile
    purpose: str               # what the course uses it for
    prepare: tuple[str, ...] = ()  # host-side step filling the build context: see imagebuild.PREPARERS
    python: str = "3.11"       # the image's Python, for downloading wheels when the recipe has requirements.txt
    pull: bool = True          # False: always build the recipe (the upstream lacks what the course adds to it)

    @property
    def recipe_dir(self) -> Path:
        return RECIPES / self.recipe  # an absolute path stays as it is

    @property
    def requires(self) -> list[str]:
        """Course images named in the recipe's FROM lines: they must exist before this one is built."""
        text = (self.recipe_dir / "Dockerfile").read_text()
        froms = re.findall(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)", text, re.M | re.I)
        return [f for f in froms if f in _CATALOG]


CATALOG: tuple[Image, ...] = (
    Image("coursekit/busybox:v1", "busybox:1.36", "busybox",
          "a 2 MB image with a shell and the basic Unix tools: for starting containers fast",
          prepare=("busybox-static",)),
    Image("coursekit/debian:bookworm", "debian:bookworm-slim", "debian",
          "a small Debian: the base for images that need apt packages",
          prepare=("debootstrap", "bookworm")),
    Image("coursekit/python:3.11", "python:3.11-slim-bookworm", "python",
          "Python 3.11 (with pip) for the course's web apps and workers"),
    Image("coursekit/postgres:15", "postgres:15-bookworm", "postgres",
          "PostgreSQL 15 with the official image's POSTGRES_* settings: the database of lesson 04"),
    Image("coursekit/registry:2", "registry:2", "registry",
          "the open-source image registry (distribution 2.8) that lesson 06 pushes to and the pipeline deploys from"),
    Image("coursekit/build:1", "python:3.11-slim-bookworm", "build",
          "the CodeBuild-style build image of lesson 08: Python 3.11 with bash, git, zip, make, jq, pytest, the AWS CLI",
          pull=False),
    Image("coursekit/grader:1", "python:3.11-slim-bookworm", "grader",
          "the sandbox of `coursekit grade`: Python 3.11 with Jupyter's kernel, nbclient, boto3, moto; user grader",
          pull=False),
)
_CATALOG = {img.name: img for img in CATALOG}


@dataclass
class ImageReport:
    """What :func:`ensure` did for one image."""

    name: str
    action: str         # "present", "pulled" or "built"
    source: str         # "recipe" or "upstream"
    seconds: float
    size: int = 0       # bytes
    id: str = ""
    detail: str = ""

    def __str__(self) -> str:
        return (f"{self.name:28} {self.action:8} {self.source:8} {self.size / 1e6:7.1f} MB "
                f"{self.seconds:7.2f} s  {self.detail}").rstrip()


def catalog() -> dict[str, Image]:
    """The course's images, by course name, in catalog order."""
    return dict(_CATALOG)


def _resolve(name: Union[str, Image]) -> Image:
    if isinstance(name, Image):
        return name
    if name in _CATALOG:
        return _CATALOG[name]
    for img in CATALOG:  # short names: "python", "coursekit/python"
        if name in (img.recipe, img.name.split(":")[0]):
            return img
    raise ImageProvisioningError(f"{name!r} is not one of the course's images",
                                 f"use one of: {', '.join(_CATALOG)} (or leave the names out for all of them)")


def recipe_path(name: Union[str, Image]) -> Path:
    """The Dockerfile of an image's recipe."""
    return _resolve(name).recipe_dir / "Dockerfile"


@lru_cache(maxsize=None)
def _recipe_hash_cached(img: Image, stamp: tuple) -> str:
    parts = [imagebuild.folder_hash(img.recipe_dir)] + [recipe_hash(dep) for dep in img.requires]
    return parts[0] if len(parts) == 1 else hashlib.sha256("+".join(parts).encode()).hexdigest()[:12]


def recipe_hash(name: Union[str, Image]) -> str:
    """Hash of the recipe folder (and of the recipes it builds FROM): a new hash means rebuild."""
    img = _resolve(name)
    stamp = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(img.recipe_dir.rglob("*")))
    return _recipe_hash_cached(img, stamp)


def _in_order(names: Iterable[Union[str, Image]]) -> list[Image]:
    """The images asked for, each preceded by the course images it is built FROM."""
    out: list[Image] = []

    def visit(img: Image, path: tuple[str, ...]) -> None:
        if img.name in path:
            raise ImageProvisioningError(f"the recipes of {' -> '.join(path + (img.name,))} build FROM each other",
                                         "fix the FROM lines so that no image depends on itself")
        for dep in img.requires:
            visit(_CATALOG[dep], path + (img.name,))
        if img not in out:
            out.append(img)

    for n in names:
        visit(_resolve(n), ())
    return out


def _inspect(cl, tag: str) -> dict | None:
    import docker.errors as de

    try:
        return cl.api.inspect_image(tag)
    except de.ImageNotFound:
        return None


def _labels(attrs: dict) -> dict:
    return (attrs.get("Config") or {}).get("Labels") or {}


def _is_current(img: Image, attrs: dict | None) -> bool:
    lab = _labels(attrs or {})
    if not attrs or lab.get(engine.OWNER) != engine.OWNER_VALUE:
        return False
    return lab.get(SOURCE_LABEL) == "upstream" or lab.get(RECIPE_LABEL) == recipe_hash(img)


def present() -> dict[str, dict]:
    """The course images on this engine: id, size, source and whether the recipe is current (for doctor)."""
    cl = engine.client()
    out = {}
    for img in CATALOG:
        attrs = _inspect(cl, img.name)
        if attrs:
            out[img.name] = {"id": attrs["Id"].split(":")[-1][:12], "size": attrs["Size"],
                             "size_mb": round(attrs["Size"] / 1e6, 1),
                             "source": _labels(attrs).get(SOURCE_LABEL, "unknown"),
                             "current": _is_current(img, attrs), "created": attrs.get("Created", "")}
    return out


@contextlib.contextmanager
def _lock(img: Image, progress: Progress) -> Iterator[None]:
    """One builder per image at a time, across processes (tests and notebooks share the engine)."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; one process at a time is the learner's job
        yield
        return
    root = imagebuild.cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{_slug(img)}.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"[{img.name}] waiting: another coursekit process is making this image")
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _slug(img: Image) -> str:
    return img.name.replace("/", "_").replace(":", "_")


def _report(cl, tag: str, action: str, t0: float, detail: str = "", attrs: dict | None = None) -> ImageReport:
    attrs = attrs or _inspect(cl, tag) or {}
    return ImageReport(tag, action, _labels(attrs).get(SOURCE_LABEL, "unknown"), time.monotonic() - t0,
                       attrs.get("Size", 0), attrs.get("Id", "").split(":")[-1][:12], detail)


def _docker_build(cl, tag: str, labels: dict, progress: Progress, t0: float, **kwargs) -> None:
    """``docker build`` through the SDK, one progress line per step; a failure quotes the step and its log."""
    step, tail = "(before the first step)", deque(maxlen=15)
    try:
        for chunk in cl.api.build(tag=tag, labels=labels, rm=True, forcerm=True, pull=False, decode=True,
                                  timeout=BUILD_TIMEOUT, **kwargs):
            for line in chunk.get("stream", "").splitlines():
                m = re.match(r"Step (\d+)/(\d+) : (.*)", line)
                if m:
                    step = m[3]
                    tail.clear()
                    progress(f"[{tag}] build step {m[1]}/{m[2]}: {m[3][:80]} ({time.monotonic() - t0:.1f} s)")
                elif line.strip() and not line.startswith((" ---> ", "Removing intermediate container")):
                    tail.append(re.sub(r"\x1b\[[0-9;]*m", "", line).rstrip())  # without the terminal colours
            if "error" in chunk:
                log = "\n".join(tail) or "(no output)"
                raise ImageProvisioningError(
                    f"building {tag} failed at step `{step}`: {chunk['error'].strip()}\nits last lines:\n{log}",
                    "read the step's output above; fix the recipe (or what it needs, e.g. the network for "
                    "apt-get), then run `coursekit images` again")
    except CoursekitError:
        raise
    except Exception as exc:
        raise ImageProvisioningError(f"building {tag} failed at step `{step}`: {exc}",
                                     "check `coursekit doctor`, then run `coursekit images` again") from None


def _build_unlocked(cl, img: Image, tag: str, progress: Progress, t0: float, nocache: bool) -> ImageReport:
    key = recipe_hash(img)
    ctx = imagebuild.build_context(img.recipe_dir, key, img.prepare, img.python, slug=_slug(img), what=tag,
                                   progress=progress, fresh=nocache)
    old = _inspect(cl, tag)
    labels = {engine.OWNER: engine.OWNER_VALUE, IMAGE_LABEL: tag, RECIPE_LABEL: key, SOURCE_LABEL: "recipe"}
    if tag != img.name:
        labels[SCRATCH_LABEL] = "1"
    _docker_build(cl, tag, labels, progress, t0, path=str(ctx), nocache=nocache)
    _drop_if_orphaned(cl, old, tag)
    return _report(cl, tag, "built", t0)


_replaced: set[str] = set()  # ids of our images a rebuild replaced, removed once nothing uses them


def _drop_if_orphaned(cl, old: dict | None, tag: str) -> None:
    """The image a rebuild replaced: remove it if it was ours and nothing else uses it."""
    new = _inspect(cl, tag)
    if old and new and old["Id"] != new["Id"] and _labels(old).get(engine.OWNER) == engine.OWNER_VALUE:
        _replaced.add(old["Id"])
    for image_id in list(_replaced):
        with contextlib.suppress(Exception):  # still used by a container, a tag, or a child image: keep it
            cl.api.remove_image(image_id, noprune=False)
            _replaced.discard(image_id)


def _pull(cl, img: Image, progress: Progress, t0: float) -> ImageReport:
    """Pull the official image and give it the course name (plus our labels, via a one-line build)."""
    repo, sep, tag = img.upstream.rpartition(":")
    if not sep or "/" in tag:  # no tag, or the colon was a registry's port
        repo, tag = img.upstream, "latest"
    progress(f"[{img.name}] pull {img.upstream} ({time.monotonic() - t0:.1f} s)")
    try:
        for chunk in cl.api.pull(repo, tag, stream=True, decode=True):
            if "error" in chunk:
                raise RuntimeError(chunk["error"])
    except Exception as exc:
        raise ImageProvisioningError(f"pulling {img.upstream} for {img.name} failed: {exc}",
                                     "check the engine's registry access (`coursekit doctor`)") from None
    labels = {engine.OWNER: engine.OWNER_VALUE, IMAGE_LABEL: img.name, RECIPE_LABEL: recipe_hash(img),
              SOURCE_LABEL: "upstream"}
    old = _inspect(cl, img.name)
    _docker_build(cl, img.name, labels, progress, t0, fileobj=io.BytesIO(f"FROM {img.upstream}\n".encode()))
    _drop_if_orphaned(cl, old, img.name)
    return _report(cl, img.name, "pulled", t0, f"from {img.upstream}")


def build(name: Union[str, Image], *, tag: str | None = None, progress: Progress = print,
          nocache: bool = False) -> ImageReport:
    """Build an image from its recipe, offline (dependencies are ensured first).

    ``tag`` builds under another name (such images are labelled as throw-away, so
    ``coursekit clean --images`` removes them); ``nocache`` starts from scratch: the build
    context is prepared again (debootstrap, downloads) and the engine's build cache is ignored.
    """
    img = _resolve(name)
    cl = engine.client()
    t0 = time.monotonic()
    if img.requires:
        ensure(img.requires, progress=progress)
    with _lock(img, progress):
        return _build_unlocked(cl, img, tag or img.name, progress, t0, nocache)


def ensure(names: Iterable[Union[str, Image]] | None = None, *, force: bool = False, progress: Progress = print,
           pull: bool | None = None) -> list[ImageReport]:
    """Make every named course image (default: all) exist; dependencies first.

    ``pull=None`` pulls the official image when the engine's registry answers (asked only
    if something is missing) and builds the recipe otherwise; ``pull=False`` always
    builds; ``pull=True`` tries pulling without asking first (and builds if that fails).
    ``force`` remakes the named images even if present, from scratch (fresh build context,
    no build cache). Raises ImageProvisioningError.
    """
    from . import hub

    if isinstance(names, (str, Image)):
        names = [names]
    asked = list(names) if names is not None else list(CATALOG)
    forced = {_resolve(n).name for n in asked} if force else set()
    cl = engine.client()
    online = pull
    reports = []
    for img in _in_order(asked):
        t0 = time.monotonic()
        attrs = _inspect(cl, img.name)
        if img.name not in forced and _is_current(img, attrs):
            reports.append(_report(cl, img.name, "present", t0, attrs=attrs))
            continue
        with _lock(img, progress):
            attrs = _inspect(cl, img.name)
            if img.name not in forced and _is_current(img, attrs):  # made by another process while we waited
                reports.append(_report(cl, img.name, "present", t0, attrs=attrs))
                continue
            if online is None:
                online, why = hub.registry_reachable()
                progress(f"registry: {'reachable' if online else 'not reachable'} ({why}); "
                         f"{'pulling official images' if online else 'building recipes offline'}")
            report = None
            if online and img.pull:
                try:
                    report = _pull(cl, img, progress, t0)
                except ImageProvisioningError as exc:
                    progress(f"[{img.name}] {exc.problem.splitlines()[0]}; building the recipe instead")
            if report is None:
                progress(f"[{img.name}] build from {img.recipe_dir} ({time.monotonic() - t0:.1f} s)")
                report = _build_unlocked(cl, img, img.name, progress, t0, nocache=img.name in forced)
            reports.append(report)
        progress(f"[{img.name}] {reports[-1].action} in {reports[-1].seconds:.1f} s "
                 f"({reports[-1].size / 1e6:.0f} MB)")
    return reports


def main(*, names: list[str] | None = None, force: bool = False, progress: Progress = print) -> int:
    """``coursekit images [NAMES] [--force]``: ensure the images, then print one line per image."""
    t0 = time.monotonic()
    reports = ensure(names, force=force, progress=progress)
    progress(f"{'image':28} {'action':8} {'source':8} {'size':>10} {'time':>9}")
    for r in reports:
        progress(str(r))
    progress(f"all {len(reports)} images ready in {time.monotonic() - t0:.1f} s")
    return 0
