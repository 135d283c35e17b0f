"""Build and run a learner's Dockerfile in a sandbox, and say what happened in their terms.

>>> from coursekit import dockerfile_answers as da
>>> res = da.try_dockerfile("FROM coursekit/busybox:v1\\nRUNN echo hi\\n")  # no engine needed
>>> res.verdict, res.line
('syntax error', 2)

:func:`try_dockerfile` parses the Dockerfile (a syntax error is reported with its line number
before the engine is even contacted), builds it with a wall-clock limit, runs it under
:class:`~coursekit.dockerfile.limits.Limits`, probes it, and returns a :class:`Tryout` whose
``verdict`` is one of :data:`VERDICTS`:

================  ==========================================================================
ok                it built, and the server answered (status < 400) / the script exited 0 /
                  the HEALTHCHECK reported healthy (with ``wait_healthy``)
syntax error      the parser (or the builder) refused a line: ``line`` says which
does not build    a step failed (``step``, ``instruction``, ``line``), or ``FROM`` names an image
                  that is not on this engine (nothing can be pulled here)
build timed out   the build ran past ``build_timeout``: it was stopped, its step container killed
exits at once     a server's main process ended before it answered (``exit_code``, ``log_tail``;
                  137 with ``oom_killed``: out of memory)
crashed           a script exited with a non-zero code
hangs             a script was still running after ``run_seconds``
never answers     a server kept running but nothing answered HTTP on ``port`` within
                  ``start_timeout``; ``listening`` says which ports it does listen on
http error        the server answered with a status of 400 or more
unhealthy         the HEALTHCHECK failed (``health_log`` has its last results)
no healthcheck    ``wait_healthy`` was asked but the image has no HEALTHCHECK
================  ==========================================================================

Grading pace: a HEALTHCHECK written with ``--interval=30s`` would make grading slow, so the
container is created with the *same* test, retries and start period but checked every
``Limits.health_interval`` seconds (0.25 s); its timeout and start period are capped at
``start_timeout``.

Network: the run gets the default bridge only when a ``port`` is probed (published on
127.0.0.1, a free host port unless ``host_port`` is given), and no network at all otherwise.
The build's ``RUN`` steps: on the learner's own machine (the lesson's tryout) they keep the
default bridge, so that ``apt-get install`` reaches the OS archive as it does for a plain
``docker build``; under the class grader (:func:`graded`, which the grader's scoring uses) they
have no network at all, and a step that fetches something fails at once with a verdict that
says so.

Nothing is left behind: the image, the intermediate images the build made, the step
container of a stopped build and the container that ran are removed before
:func:`try_dockerfile` returns, also on a timeout or ``KeyboardInterrupt``. Images carry
``org.coursekit.owner`` and the scratch label, containers all of :func:`engine.labels`.

Lesson: ``05-dockerfiles`` (the exercise's Dockerfile questions) and the class grader.
"""
from __future__ import annotations

import contextlib
import html
import re
import time
import uuid
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import Optional

from ..docker import engine, sdk, waiting
from .linter import lint
from .syntax import parse
from ..errors import CoursekitError, DockerError, DockerfileError
from ..docker.layers import context_tar
from .build import BuildRun, missing_base, refused_url
from .limits import Limits
from ..ui.palette import BAD, GOOD
from ..ui.progress import Progress

#: The limits of a tryout that names none: Limits() on a learner's machine (its build may use the bridge, to
#: apt-get from the OS archive), the grader's within :func:`graded` (no build network).
_DEFAULT: ContextVar[Limits | None] = ContextVar("coursekit_tryout_limits", default=None)


@contextlib.contextmanager
def graded():
    """Within the block, tryouts that name no limits build without a network: a learner's Dockerfile graded by
    the class grader never reaches the host's network (or a cloud's metadata service) from a ``RUN`` step."""
    token = _DEFAULT.set(Limits(build_network="none"))
    try:
        yield
    finally:
        _DEFAULT.reset(token)

VERDICTS = ("ok", "syntax error", "does not build", "build timed out", "exits at once", "crashed", "hangs",
            "never answers", "http error", "unhealthy", "no healthcheck")
ROOT_USERS = {"", "root", "0", "0:0", "root:root"}
TAIL_INTRO = "\nits last lines of output:\n"


@dataclass
class Tryout:
    """What happened to one Dockerfile: a verdict, and the facts behind it."""

    verdict: str = "ok"
    message: str = ""                # the problem (or the success) in the learner's terms
    hint: str = ""                   # what to do next
    line: Optional[int] = None       # Dockerfile line of a syntax error or failing step
    step: Optional[int] = None       # build step number (as `docker build` prints it)
    instruction: str = ""            # that step's instruction
    exit_code: Optional[int] = None
    oom_killed: bool = False         # the engine recorded an out-of-memory kill
    log_tail: str = ""               # the last lines of build or container output (capped)
    image_size: Optional[int] = None  # bytes
    user: Optional[str] = None       # the image's Config.User ("" = root)
    healthcheck: Optional[dict] = None  # the image's Healthcheck config
    health: Optional[str] = None     # "healthy" / "unhealthy" / "starting"
    health_log: list = field(default_factory=list)  # last health results: (exit code, output)
    http_status: Optional[int] = None
    http_body: Optional[bytes] = None  # capped at Limits.body_bytes
    listening: list = field(default_factory=list)  # "address:port" the process listens on
    build_seconds: Optional[float] = None
    run_seconds: Optional[float] = None
    steps: list = field(default_factory=list)  # (number, instruction, cached)
    lint: list = field(default_factory=list)   # dockerlint findings

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"

    @property
    def runs_as_root(self) -> Optional[bool]:
        return None if self.user is None else self.user.strip() in ROOT_USERS

    def explain(self) -> str:
        """Verdict, message and hint in one string: an assertion message for a check."""
        text = f"{self.verdict}: {self.message}"
        return f"{text}\nWhat to do: {self.hint}" if self.hint else text

    __str__ = explain

    def to_dict(self) -> dict:
        """Plain JSON-ready values (the body as text), for the grader's size-capped results."""
        out = asdict(self)
        out["ok"] = self.ok
        out["http_body"] = self.http_body.decode(errors="replace") if self.http_body is not None else None
        out["lint"] = [f"line {f.line} {f.rule}: {f.reason}" for f in self.lint]
        return out

    def _repr_html_(self) -> str:
        e = html.escape
        color = GOOD if self.ok else BAD
        facts = [("image size", f"{self.image_size / 1e6:.1f} MB" if self.image_size else None),
                 ("user", (self.user or "root (no USER)") if self.user is not None else None),
                 ("health", self.health), ("HTTP status", self.http_status), ("exit code", self.exit_code),
                 ("build", f"{self.build_seconds:.1f} s" if self.build_seconds is not None else None),
                 ("run", f"{self.run_seconds:.1f} s" if self.run_seconds is not None else None)]
        rows = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{e(str(v))}</td></tr>"
                       for k, v in facts if v is not None)
        message = self.message.split(TAIL_INTRO)[0]
        said = "its output" if self.ok else "its last lines of output"
        tail = f"<p>{said}:</p><pre style='max-height:12em;overflow:auto'>{e(self.log_tail)}</pre>" \
            if self.log_tail else ""
        hint = f"<p><b>What to do:</b> {e(self.hint)}</p>" if self.hint else ""
        return (f"<div style='border-left:4px solid {color};padding:4px 10px'>"
                f"<b style='color:{color}'>{e(self.verdict)}</b>: <span style='white-space:pre-wrap'>{e(message)}</span>"
                f"{tail}{hint}<table>{rows}</table></div>")


# --------------------------------------------------------------------------- running


def _listening(container) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket listening inside the container, read from /proc/net/tcp*."""
    text = ""
    try:
        res = container.exec_run(["cat", "/proc/net/tcp", "/proc/net/tcp6"], demux=False)
        if res.exit_code == 0:
            text = res.output.decode(errors="replace")
    except Exception:
        text = ""
    if not text:  # no `cat` in the image: read the container's network namespace from the host
        pid = container.attrs.get("State", {}).get("Pid")
        try:
            with open(f"/proc/{pid}/cgroup") as fh:
                if container.id not in fh.read():  # another machine's pid (Docker Desktop's VM)
                    return []
            text = "".join(open(f"/proc/{pid}/net/{n}").read() for n in ("tcp", "tcp6"))
        except (OSError, TypeError):
            return []
    found = set()
    for row in text.splitlines():
        cols = row.split()
        if len(cols) > 3 and cols[3] == "0A" and ":" in cols[1]:  # state 0A: LISTEN
            addr, port = cols[1].split(":")
            if set(addr) == {"0"}:
                name = "0.0.0.0" if len(addr) == 8 else "::"
            elif addr in ("0100007F", "00000000000000000000000001000000"):
                name = "127.0.0.1" if len(addr) == 8 else "::1"
            else:
                name = "127.x" if len(addr) == 8 and addr.endswith("7F") else addr
            found.add((name, int(port, 16)))
    return sorted(found, key=lambda a: (a[1], a[0]))


def _not_answering(res: Tryout, container, port: int, start_timeout: float) -> None:
    heard = _listening(container)
    res.listening = [f"{a}:{p}" for a, p in heard]
    on_port = [a for a, p in heard if p == port]
    if on_port and all(a in ("127.0.0.1", "::1", "127.x") for a in on_port):
        res.message = (f"the server listens on {on_port[0]}:{port} inside the container: only the container itself "
                       f"can reach that address, so nothing from outside got an answer in {start_timeout:g} s")
        res.hint = "make the server listen on 0.0.0.0 (all addresses), e.g. `--bind 0.0.0.0` or host=\"0.0.0.0\""
    elif on_port:
        res.message = f"port {port} accepts connections but nothing answered HTTP in {start_timeout:g} s"
        res.hint = "is it an HTTP server, and does it answer the path you asked for? its output may say"
    elif heard:
        ports = ", ".join(sorted({str(p) for _, p in heard}))
        res.message = f"nothing answered on port {port} in {start_timeout:g} s: the server listens on port {ports}"
        res.hint = f"make the server listen on port {port} (or probe the port it uses)"
    else:
        res.message = (f"nothing answered on port {port} in {start_timeout:g} s, and nothing in the container "
                       f"listens on any TCP port")
        res.hint = "does CMD start the server, in the foreground? its output (if it printed any) says what it did instead"


def _exit_message(res: Tryout, state: dict, limits: Limits, server: bool) -> None:
    code, res.oom_killed = state.get("ExitCode"), bool(state.get("OOMKilled"))
    res.exit_code = code
    if res.oom_killed or code == 137:  # the engine's OOM flag is occasionally lost: nobody else sends SIGKILL here
        sure = "it ran out of memory: the kernel killed it" if res.oom_killed else \
            "it was killed with SIGKILL, which in the sandbox means it almost certainly ran out of memory"
        res.message = f"{sure} (exit code {code}); the limit is {limits.memory}"
        res.hint = "make it use less memory (smaller data, fewer workers); the sandbox gives it " + limits.memory
        return
    meaning = waiting.EXIT_MEANINGS.get(code, "")
    res.message = (f"{'the server' if server else 'it'} exited with code {code}" + (f": {meaning}" if meaning else "")
                   + ("" if res.log_tail else "; it printed nothing"))
    if server and code == 0:
        res.hint = ("a server must stay in the foreground: its main process ended normally, so the container "
                    "stopped (e.g. busybox httpd needs -f; do not start servers with `&`)")
    elif code == 127:
        res.hint = "the command in CMD/ENTRYPOINT is not in the image: check its spelling and that you installed it"
    elif code == 126:
        res.hint = "the command exists but cannot run: is it executable (chmod +x) and readable by the USER?"
    else:
        res.hint = "read its last lines of output; run the image by hand to try it (docker run --rm -it IMAGE)"


def _settled_state(container) -> dict:
    """The container's state; after a SIGKILL, give the engine a moment to record an OOM kill (it comes later)."""
    deadline = time.monotonic() + 1.0
    while True:
        container.reload()
        state = container.attrs.get("State", {})
        if state.get("Running") or state.get("ExitCode") != 137 or state.get("OOMKilled") \
                or time.monotonic() > deadline:
            return state
        time.sleep(0.1)


def _published(container, port: int) -> int:
    """The host port of ``port``; a container that already exited has none: say that instead."""
    try:
        return waiting.host_port(container, port)
    except CoursekitError:
        gone = waiting.exited(container, f"before anything answered on port {port}")
        raise gone or DockerError(f"the container does not publish port {port}", "report this to the course")


def _start_failed(res: Tryout, container, exc: Exception, host_port, server: bool) -> None:
    """The engine could not start the container: a port clash is ours to raise, the rest is the Dockerfile's."""
    de = sdk.errors()

    text = (exc.explanation if isinstance(exc, de.APIError) else None) or str(exc)
    if host_port and ("already allocated" in text or "address already in use" in text):
        raise DockerfileError(f"port {host_port} is already in use on this machine",
                              "pick another host_port, or leave it out to get a free one") from None
    if not isinstance(exc, de.APIError):
        raise engine.explain_docker_error(exc, what="starting the container") from None
    with contextlib.suppress(Exception):
        container.reload()
        res.exit_code = container.attrs["State"].get("ExitCode")
    res.verdict = "exits at once" if server else "crashed"
    reason = text.split("starting container process caused: ")[-1].strip()
    res.message = f"the container could not even start: {reason}"
    if "unable to find user" in text:
        res.hint = "create that user in the image (RUN adduser -D NAME, or useradd) before USER, or use a numeric UID"
    elif "not found" in text or "no such file" in text:
        res.hint = ("the program named in CMD/ENTRYPOINT is not in the image: check its spelling and path, and "
                    "that you installed or copied it")
    elif "permission denied" in text:
        res.hint = "the program in CMD/ENTRYPOINT is not executable: RUN chmod +x it (or run it through its interpreter)"
    else:
        res.hint = "read the engine's reason above; check CMD, ENTRYPOINT, USER and WORKDIR"


def _wait_health(res: Tryout, container, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        container.reload()
        state = container.attrs.get("State", {})
        health = state.get("Health") or {}
        res.health = health.get("Status")
        res.health_log = [(h.get("ExitCode"), (h.get("Output") or "").strip()[-300:])
                          for h in (health.get("Log") or [])[-3:]]
        if res.health in ("healthy", "unhealthy") or not state.get("Running") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if res.health == "healthy":
        return
    if not state.get("Running") and res.health != "unhealthy":
        res.verdict = "exits at once"
        return
    res.verdict = "unhealthy"
    last = "\n".join(f"exit {c}: {out}" if out else f"exit {c}" for c, out in res.health_log) or "(no result yet)"
    still = f"was still 'starting' after {timeout:g} s" if res.health == "starting" else "reports unhealthy"
    res.message = f"the HEALTHCHECK {still}; its last results:\n{last}"
    res.hint = ("run the HEALTHCHECK command by hand in the running container (docker exec NAME <command>): it must "
                "exit 0 when all is well; check the port and path it asks for, and that the tool it uses (wget, "
                "curl, python) exists in the image")


def _run(res: Tryout, tag: str, *, command, port, path, host_port, wait_healthy, run_seconds, start_timeout,
         limits: Limits, lesson, holder: list) -> None:
    import requests.exceptions as rq

    opts = limits.create_options(port=port, host_port=host_port)
    check = limits.health_override(res.healthcheck, start_timeout) if wait_healthy else None
    if check:
        opts["healthcheck"] = check
    c = engine.create(tag, command, lesson=lesson, **opts)
    holder.append(c)
    t0 = time.monotonic()
    try:
        try:
            c.start()
        except Exception as exc:
            _start_failed(res, c, exc, host_port, server=bool(port or wait_healthy))
            return
        if port:
            try:
                status, body = waiting.wait_http(_published(c, port), path, timeout=start_timeout,
                                                 container=c, max_body=limits.body_bytes)
                res.http_status, res.http_body = status, body[:limits.body_bytes]
            except waiting.ContainerExited:
                res.verdict = "exits at once"
            except CoursekitError:
                res.verdict = "never answers"
                _not_answering(res, c, port, start_timeout)
        elif wait_healthy:
            try:
                waiting.wait_running(c, timeout=start_timeout, settle=0)
            except waiting.ContainerExited:
                res.verdict = "exits at once"
        else:
            try:
                c.wait(timeout=run_seconds)
            except (rq.RequestException, OSError):
                res.verdict = "hangs"
                res.message = f"it was still running after {run_seconds:g} s"
                res.hint = ("a script should finish by itself; if it is a server, pass port= to probe it; "
                            "otherwise look for a loop or a prompt waiting for input")
        if res.verdict == "ok" and wait_healthy:
            _wait_health(res, c, start_timeout)
        state = _settled_state(c)
        res.log_tail = limits.quote(c.logs(tail=limits.log_lines))
        if res.verdict == "exits at once" or (res.verdict == "ok" and not port and not wait_healthy):
            if not state.get("Running"):
                _exit_message(res, state, limits, server=bool(port or wait_healthy))
                if res.verdict == "ok" and res.exit_code != 0:
                    res.verdict = "crashed"
                elif res.verdict == "ok":
                    res.message, res.hint = "it ran to completion and exited with code 0", ""
        if res.verdict == "ok" and res.http_status is not None:
            res.message = f"it answered HTTP {res.http_status} for GET {path} on port {port}"
            if res.http_status >= 400:
                res.verdict = "http error"
                body = res.http_body.decode(errors="replace").strip()[:300]
                res.message += f"; the answer said: {body}" if body else ""
                res.hint = (f"the server runs, but {path} is not served: check the files you COPY and the "
                            "folder the server serves")
        if res.verdict == "ok" and res.health == "healthy":
            res.message += ("; " if res.message else "") + "the HEALTHCHECK reports healthy"
    finally:
        res.run_seconds = round(time.monotonic() - t0, 3)


# --------------------------------------------------------------------------- the API


def try_dockerfile(dockerfile: str, files: dict | None = None, *, command: list[str] | None = None,
                   port: int | None = None, path: str = "/", wait_healthy: bool = False, run_seconds: float = 3.0,
                   build_timeout: float | None = None, start_timeout: float | None = None, limits: Limits | None = None,
                   lesson: str | None = None, progress: Progress = None, host_port: int | None = None) -> Tryout:
    """Build ``dockerfile`` (with ``files`` as the rest of its context), run it in the sandbox, judge it.

    ``command`` overrides CMD; ``port`` makes it a server, probed with ``GET path`` on a free
    127.0.0.1 port (``host_port`` to choose one: "already in use" is raised as an error, not a
    verdict, since it is not the Dockerfile's fault); without ``port`` it is a script that must
    exit 0 within ``run_seconds``. ``wait_healthy`` also waits for its HEALTHCHECK.
    ``progress`` receives each line of build output. ``build_timeout`` and ``start_timeout``
    override the wall clocks of ``limits`` (:class:`~coursekit.dockerfile.limits.Limits`).

    Never raises for a bad Dockerfile; raises :class:`~coursekit.errors.EngineUnavailable`
    without an engine (a syntax error is still reported without one).
    """
    limits = limits or _DEFAULT.get() or Limits()
    build_timeout = limits.build_timeout if build_timeout is None else build_timeout
    start_timeout = limits.start_timeout if start_timeout is None else start_timeout
    if port is not None and not (isinstance(port, int) and 0 < port < 65536):
        raise DockerfileError(f"port={port!r} is not a TCP port", "give the container's port as a number, e.g. 8000")
    limits.create_options(port=port)  # refuses port= with network="none" before anything is built
    if not path.startswith("/"):
        raise DockerfileError(f"path={path!r} must start with /", 'write it as a URL path, e.g. "/health"')
    res = Tryout(lint=lint(dockerfile if "\n" in dockerfile else dockerfile + "\n").findings)
    df = parse(dockerfile)
    if df.problems:
        p = df.problems[0]
        more = f" ({len(df.problems) - 1} more problem(s) after it)" if len(df.problems) > 1 else ""
        res.verdict, res.line, res.instruction = "syntax error", p.line, p.text
        res.message, res.hint = f"line {p.line}: {p.reason}{more}", p.fix
        return res
    context = context_tar(dockerfile, files)
    if len(context.getbuffer()) > limits.context_bytes:
        res.verdict = "does not build"
        res.message = f"the build context is {len(context.getbuffer()) / 1e6:.1f} MB; the limit is " \
                      f"{limits.context_bytes / 1e6:.0f} MB"
        res.hint = "leave large files out of the context (or out of files=)"
        return res
    if refused_url(res, df, limits):
        return res
    cl = engine.client()  # EngineUnavailable when there is none
    if host_port and not waiting.port_free(host_port):
        raise DockerfileError(f"port {host_port} is already in use on this machine",
                              "pick another host_port, or leave it out to get a free one")
    if missing_base(res, df, cl):
        return res
    tag = f"coursekit-tryout/{re.sub(r'[^a-z0-9._-]+', '-', (lesson or 'answer').lower())}:{uuid.uuid4().hex[:12]}"
    build = BuildRun(cl, limits, progress)
    holder: list = []
    try:
        image = build.run(res, df, context, tag, build_timeout, names=list(files or {}))
        if image is None:
            return res
        cfg = image.attrs.get("Config") or {}
        res.image_size, res.user, res.healthcheck = image.attrs.get("Size"), cfg.get("User") or "", \
            cfg.get("Healthcheck")
        if wait_healthy and not limits.health_override(res.healthcheck, start_timeout):
            res.verdict = "no healthcheck"
            res.message = "the image has no HEALTHCHECK, so Docker cannot tell whether the app inside works"
            res.hint = ("add one whose command exits 0 when the app answers, with a tool the image has: in a Python "
                        "image HEALTHCHECK CMD [\"python3\", \"-c\", \"import urllib.request as u; "
                        "u.urlopen('http://127.0.0.1:8000/')\"]; with busybox, HEALTHCHECK CMD wget -q -O /dev/null "
                        "http://127.0.0.1:8000/")
            return res
        _run(res, tag, command=command, port=port, path=path, host_port=host_port, wait_healthy=wait_healthy,
             run_seconds=run_seconds, start_timeout=start_timeout, limits=limits, lesson=lesson, holder=holder)
        return res
    finally:
        if not res.ok and res.log_tail and TAIL_INTRO not in res.message:
            res.message += f"{TAIL_INTRO}{res.log_tail}"
        for c in holder:
            engine.remove_quietly(c)
        build.remove(tag)


