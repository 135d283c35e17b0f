"""The image every grading sandbox runs: the course's grading image with this coursekit on top.

:func:`grader_image` builds ``coursekit/grader-run:<hash>`` from ``coursekit/grader:1``
(:data:`~coursekit.grading.limits.GRADER_IMAGE`, made by ``coursekit images``) plus the coursekit
package the host runs, so the worker inside a sandbox is always the host's code. The build runs
with no network and removes every setuid and setgid bit from the image: a sandbox gains nothing
by running ``su`` or ``passwd``, even where the engine cannot set ``no-new-privileges`` (Swarm
services on API 1.41, see :mod:`coursekit.grading.swarm`).

On a cluster, every node must be able to run this image: push it to a registry the nodes pull
from (:mod:`coursekit.docker.registry` runs one) and pass its name as ``image=`` to
:func:`coursekit.grading.classroom.grade`.

Lesson: none (the instructor's side, ``coursekit grade``).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import tarfile
import threading
from pathlib import Path

from ..docker import engine, sdk
from ..docker.labels import SCRATCH_LABEL
from ..errors import GradingError
from .limits import GRADER_IMAGE
from .protocol import WORKER_MODULE
from ..ui.progress import Progress

RUN_IMAGE = "coursekit/grader-run"

_image_lock = threading.Lock()

#: The run image: the grading image with this coursekit on top (no setuid files left).
_RUN_DOCKERFILE = """FROM {base}
USER root
COPY coursekit /opt/coursekit/coursekit
RUN python3 -m compileall -q /opt/coursekit && chmod -R a+rX,go-w /opt/coursekit \
 && find / -xdev -perm /6000 -type f -exec chmod ug-s {{}} + \
 && test -z "$(find / -xdev -perm /6000 -type f)"
ENV PYTHONPATH=/opt/coursekit
USER grader
WORKDIR /tmp
CMD ["python3", "-m", "{worker}"]
"""


def _package_files() -> list[tuple[str, Path]]:
    root = Path(__file__).resolve().parents[1]  # the whole coursekit package
    return [(p.relative_to(root.parent).as_posix(), p) for p in sorted(root.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")]


def grader_image(base: str = GRADER_IMAGE, progress: Progress = None) -> str:
    """The grading image with this coursekit inside: ``coursekit/grader-run:<hash>`` (built if missing).

    The hash covers the base image's id, the recipe above and every file of the coursekit package,
    so the worker in the sandbox is always the code the host runs. Older ``grader-run`` tags are removed.
    """
    de = sdk.errors()

    from ..docker import images
    from ..docker.offline import cache_root

    cl = engine.client()
    say = progress or (lambda _m: None)
    with _image_lock:
        if base in images.catalog():
            images.ensure([base], progress=say)
        try:
            base_id = cl.api.inspect_image(base)["Id"]
        except de.ImageNotFound:
            raise GradingError(f"the grading image {base} is not on this engine",
                               "run `coursekit images coursekit/grader:1`, or pass image= a grading image") from None
        files = _package_files()
        h = hashlib.sha256(base_id.encode() + _RUN_DOCKERFILE.encode())
        for rel, p in files:
            h.update(rel.encode() + b"\0" + p.read_bytes() + b"\0")
        tag = f"{RUN_IMAGE}:{h.hexdigest()[:12]}"
        with contextlib.suppress(de.ImageNotFound):
            cl.api.inspect_image(tag)
            return tag
        root = cache_root()
        root.mkdir(parents=True, exist_ok=True)
        import fcntl

        with open(root / ".grader-run.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one build across processes
            with contextlib.suppress(de.ImageNotFound):
                cl.api.inspect_image(tag)
                return tag
            say(f"[{tag}] build: {base} + this coursekit ({len(files)} files)")
            _build_run_image(cl, base, tag, files)
            for im in cl.images.list(name=RUN_IMAGE):
                for old in im.tags:
                    if old != tag and old.startswith(RUN_IMAGE + ":"):
                        with contextlib.suppress(de.APIError):
                            cl.images.remove(old)
    return tag



def _build_run_image(cl, base: str, tag: str, files: list) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = _RUN_DOCKERFILE.format(base=base, worker=WORKER_MODULE).encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for rel, p in files:
            tar.add(str(p), arcname=rel, recursive=False)
    buf.seek(0)
    labels = {engine.OWNER: engine.OWNER_VALUE, SCRATCH_LABEL: "1"}
    error = ""
    for chunk in cl.api.build(fileobj=buf, custom_context=True, tag=tag, labels=labels, rm=True, forcerm=True,
                              pull=False, decode=True, network_mode="none"):
        error = chunk.get("error", error)
    if error:
        raise GradingError(f"building the grading image {tag} failed: {error.strip()}",
                           "check `coursekit doctor` and `coursekit images coursekit/grader:1`")

