"""Helpers for lesson ``05-dockerfiles`` and its exercise: builds from a real context folder
(so ``.dockerignore`` and ``--build-arg`` work as with ``docker build``), the size of the
context a build sends, a tiny offline Python wheel, the processes inside a container, how
long ``docker stop`` takes, and how a container's health status changes over time.

>>> from coursekit import dockerfiles
>>> name, data = dockerfiles.make_wheel("greet", "1.0", {"greet.py": "def hello(): return 'hi'\\n"})
>>> name
'greet-1.0-py3-none-any.whl'

Images built here are labelled as coursekit's throw-aways; :func:`remove` deletes them and
the intermediate images their build made (``coursekit clean --images`` catches the rest).
Containers go through :mod:`coursekit.docker.engine`, so they are labelled and removed too.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import tempfile
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..docker import engine, sdk
from ..errors import DockerError, LessonError
from ..docker.labels import SCRATCH_LABEL
from ..docker.layers import BuildFailed, Step, remove_ids, read_build_stream
from ..ui.progress import Progress

LESSON = "05-dockerfiles"

#: The web app of the exercise's first question: Python's standard library only, port 8000.
EXERCISE_APP = '''import http.server
import signal
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok\\n" if self.path == "/health" else b"hello from the exercise app\\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(body)


signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop at once on `docker stop`
print("listening on port 8000", flush=True)
http.server.HTTPServer(("", 8000), Handler).serve_forever()
'''


#: The exercise's "fix this Dockerfile" question: it builds and runs, and the linter finds six problems.
BROKEN_DOCKERFILE = """FROM coursekit/python:3.11
ENV API_TOKEN=tok-51c0ffee
COPY . /app
RUN pip install --no-index --find-links /app/wheels -r /app/requirements.txt
WORKDIR app
CMD python3 app.py
"""


def exercise_files() -> dict:
    """The context of :data:`BROKEN_DOCKERFILE`: ``app.py``, ``requirements.txt`` and the wheel it needs."""
    name, wheel = make_wheel("greet", "1.0", {"greet.py": "def hello(who):\n    return f'hello, {who}'\n"})
    return {"app.py": "import greet\n\nprint(greet.hello('world'))\n", "requirements.txt": "greet==1.0\n",
            f"wheels/{name}": wheel}


def scratch_tag(name: str) -> str:
    """A fresh throw-away tag such as ``coursekit-scratch/l05-name:1a2b3c4d``."""
    return f"coursekit-scratch/l05-{name}:{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------- contexts and builds


def write_context(folder: str | Path, files: dict) -> Path:
    """Write ``files`` (name -> text or bytes; names may have folders) into ``folder``."""
    root = Path(folder)
    for name, data in files.items():
        path = root / name
        if root.resolve() not in path.resolve().parents:
            raise LessonError(f"the file name {name!r} points outside the build context",
                              "use relative names such as 'app.py' or 'src/app.py'")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return root


@dataclass
class ContextSize:
    """What ``docker build`` sends to the engine: the files and the tar's size in bytes."""

    bytes: int
    files: list[str]
    ignored: list[str] = field(default_factory=list)  # files left out by .dockerignore

    def __str__(self) -> str:
        return f"{self.bytes / 1e6:8.2f} MB in {len(self.files)} files ({len(self.ignored)} left out)"


def context_size(folder: str | Path, *, use_dockerignore: bool = True) -> ContextSize:
    """Tar the folder as the docker SDK does for ``docker build`` and measure it.

    Teaches: the *client* packs the context and applies ``.dockerignore``; the engine only
    ever sees what is in the tar (the classic builder prints nothing about it; the CLI says
    "Sending build context to Docker daemon 31.46MB").
    """
    import tarfile

    utils = sdk.utils()

    folder, exclude = Path(folder), None
    if use_dockerignore and (folder / ".dockerignore").exists():  # read as the docker SDK reads it
        lines = [line.strip() for line in (folder / ".dockerignore").read_text().splitlines()]
        exclude = [p for p in lines if p and not p.startswith("#")]
    every = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    with utils.tar(str(folder), exclude=exclude) as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(0)
        with tarfile.open(fileobj=fh) as tar:
            sent = sorted(m.name for m in tar.getmembers() if m.isfile())
    return ContextSize(size, sent, [f for f in every if f not in set(sent)])


def _stream(cl, folder: Path, tag: str, buildargs, progress: Progress, nocache: bool, limits: dict | None):
    labels = {engine.OWNER: engine.OWNER_VALUE, SCRATCH_LABEL: "1"}
    stream = cl.api.build(path=str(folder), tag=tag, buildargs=buildargs or None, labels=labels, rm=True,
                          forcerm=True, pull=False, nocache=nocache, decode=True, use_config_proxy=False,
                          container_limits=limits)
    return read_build_stream(stream, progress)


def build(dockerfile: str, tag: str, files: dict | None = None, *, buildargs: dict | None = None,
          progress: Progress = None, nocache: bool = False, memory: int | None = None):
    """``docker build --build-arg K=V -t TAG .`` with the Dockerfile and ``files`` as the context folder.

    Like :func:`coursekit.docker.layers.build_example` (``files``: name -> text or bytes), but the
    context is a real folder, so a ``.dockerignore`` among ``files`` works as with ``docker
    build``. The image carries ``build_steps`` (each with ``cached``), ``built_ids`` (images
    this build made) and ``context`` (a :class:`ContextSize`). A failing step raises
    :class:`~coursekit.docker.layers.BuildFailed`; ``memory`` caps each step's container (bytes).
    """
    if not isinstance(dockerfile, str) or not dockerfile.strip():
        raise LessonError("the Dockerfile is empty", "pass the Dockerfile's text, starting with a FROM line")
    cl = engine.client()
    with tempfile.TemporaryDirectory(prefix="coursekit-context-") as tmp:
        folder = write_context(tmp, {"Dockerfile": dockerfile, **(files or {})})
        sent = context_size(folder)
        try:
            steps, made = _stream(cl, folder, tag, buildargs, progress, nocache,
                                  {"memory": memory, "memswap": memory} if memory else None)
        except BuildFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - said in the learner's terms
            raise engine.explain_docker_error(exc, what=f"building {tag}") from None
    img = cl.images.get(tag)
    img.build_steps, img.built_ids, img.context = steps, made, sent
    return img


def remove(*images) -> None:
    """Remove example images (by tag or image object) and the intermediate images their builds made.

    The images of a multi-stage build's earlier stages are not parents of the result, so
    removing the tag alone would leave them behind: ``built_ids`` names them.
    """
    de = sdk.errors()

    cl = engine.client()
    for image in images:
        tag = image if isinstance(image, str) else (image.tags or [image.id])[0]
        with contextlib.suppress(de.ImageNotFound, de.NotFound):
            current = cl.images.get(tag)
            if (current.labels or {}).get(SCRATCH_LABEL) != "1":
                raise LessonError(f"{tag} is not a coursekit example image", "remove it yourself if you mean to")
            if isinstance(image, str) or current.id == image.id:  # a rebuild may have moved the tag on
                cl.api.remove_image(tag, noprune=False)
        remove_ids(getattr(image, "built_ids", []))


def steps_after_edit(dockerfile: str, files: dict, edit: str = "app.py", *, memory: int = 1 << 30) -> list[Step]:
    """Build, change the file ``edit`` (a new comment line), build again: the second build's steps.

    Teaches: which steps a code change runs again (``cached`` False) and which the cache
    keeps. Both images are removed before it returns; a failing build raises BuildFailed.
    """
    if edit not in files:
        raise LessonError(f"steps_after_edit would change {edit!r}, but the context has only {sorted(files)}",
                          "pass edit= naming one of the context's files")
    tag, made = scratch_tag("edit"), []
    try:
        made.append(build(dockerfile, tag, files, memory=memory))
        changed = files[edit] if isinstance(files[edit], bytes) else files[edit].encode()
        made.append(build(dockerfile, tag, {**files, edit: changed + f"\n# edited {uuid.uuid4().hex}\n".encode()},
                          memory=memory))
        return made[-1].build_steps
    finally:
        remove(*reversed(made))


# --------------------------------------------------------------------------- an offline Python package


def make_wheel(name: str, version: str, modules: dict[str, str]) -> tuple[str, bytes]:
    """A pure-Python wheel (file name, bytes) holding ``modules`` (file name -> source).

    Teaches nothing by itself: it gives the lesson a real dependency that ``pip install
    --no-index --find-links`` installs without a network (containers here cannot reach PyPI).
    """
    dist = f"{name}-{version}.dist-info"
    meta = {f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
            f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: coursekit\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    members = {**modules, **meta}
    record = []
    for path, text in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, text in {**members, f"{dist}/RECORD": "\n".join(record) + "\n"}.items():
            info = zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0))
            zf.writestr(info, text)
    return f"{name}-{version}-py3-none-any.whl", buf.getvalue()


# --------------------------------------------------------------------------- inside running containers


@dataclass
class Process:
    pid: int
    command: str

    def __str__(self) -> str:
        return f"{self.pid:>5}  {self.command}"


_PS = ('for d in /proc/[0-9]*; do c=$(tr "\\000" " " < $d/cmdline 2>/dev/null); '
       '[ -n "$c" ] && echo "${d#/proc/} $c"; done')


def processes(container) -> list[Process]:
    """The processes a container sees, PID 1 first (read from /proc, as ``ps`` does; the
    course's Python image has no ``ps``). The ``sh`` that reads them is left out."""
    code, out = container.exec_run(["sh", "-c", _PS])
    if code != 0:
        raise DockerError(f"could not list the processes of {container.name}: {out.decode(errors='replace')}",
                          "check that the container is running and has a /bin/sh")
    rows = [line.split(" ", 1) for line in out.decode(errors="replace").splitlines() if " " in line]
    procs = sorted((Process(int(p), c.strip()) for p, c in rows if p.isdigit()), key=lambda p: p.pid)
    return [p for p in procs if _PS[:20] not in p.command]


def wait_for_log(container, text: str, timeout: float = 15.0) -> None:
    """Wait until ``text`` appears in the container's output (the app says it is ready)."""
    def seen():
        container.reload()
        if container.status == "exited":
            tail = container.logs(tail=10).decode(errors="replace").strip()
            raise DockerError(f"{container.name} exited (code {container.attrs['State']['ExitCode']}) before "
                              f"printing {text!r}; its last output:\n{tail or '(none)'}",
                              "read its output above: the command or the app failed")
        return text.encode() in container.logs()

    engine.wait_until(seen, timeout=timeout, interval=0.1, what=f"{container.name} to print {text!r}")


@dataclass
class StopTiming:
    """How one container reacted to ``docker stop``; exit code 137 (128 + 9) means it was killed."""

    label: str
    seconds: float
    exit_code: int

    def __str__(self) -> str:
        how = "killed after the grace period (SIGKILL)" if self.exit_code == 137 else "exited by itself"
        return f"{self.label:38} {self.seconds:5.2f} s  exit code {self.exit_code:3}  {how}"


def time_stops(cases: dict[str, dict], *, ready: str = "", timeout: int = 3) -> list[StopTiming]:
    """For each case (label -> ``image=`` plus ``docker run`` options such as ``init=True``), start a
    container, wait until it prints ``ready``, and time ``docker stop -t TIMEOUT``. All cases run at
    once, to save time. Teaches: what PID 1 does with SIGTERM decides how long a stop takes.
    """
    results: dict[str, object] = {}

    def one(label: str, opts: dict) -> None:
        opts = dict(opts)
        try:
            with engine.container(opts.pop("image"), opts.pop("command", None), lesson=LESSON, **opts) as c:
                if ready:
                    wait_for_log(c, ready)
                t0 = time.monotonic()
                c.stop(timeout=timeout)
                seconds = time.monotonic() - t0
                c.reload()
                results[label] = StopTiming(label, seconds, c.attrs["State"]["ExitCode"])
        except Exception as exc:  # noqa: BLE001 - re-raised below, in the caller's thread
            results[label] = exc

    threads = [threading.Thread(target=one, args=item) for item in cases.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for value in results.values():
        if isinstance(value, Exception):
            raise value
    return [results[label] for label in cases]


def health_timeline(containers: dict, *, timeout: float = 15.0, interval: float = 0.25) -> list[tuple]:
    """Poll each container's health status until all are healthy/unhealthy (or ``timeout``).

    ``containers``: label -> container. Returns ``(seconds, label, status)`` for every change,
    starting with each container's first status ("starting").
    """
    t0, last, out = time.monotonic(), {}, []
    while True:
        for label, c in containers.items():
            c.reload()
            status = (c.attrs["State"].get("Health") or {}).get("Status", "no healthcheck")
            if last.get(label) != status:
                last[label] = status
                out.append((round(time.monotonic() - t0, 1), label, status))
        if all(s in ("healthy", "unhealthy", "no healthcheck") for s in last.values()) \
                or time.monotonic() - t0 > timeout:
            return out
        time.sleep(interval)
