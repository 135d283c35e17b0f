"""Every limit a learner's Dockerfile is built and run under, declared in one place.

The trusted grader (and lesson ``05-dockerfiles``, through
:func:`coursekit.dockerfile_answers.try_dockerfile`) builds and runs Dockerfiles written by
students. Whatever they wrote, the container it makes gets the limits of :class:`Limits`,
each with a default chosen for a small web app or script:

* **memory** 256 MiB, with swap set to the same value (so no extra swap: over the limit the
  kernel kills the process, and Docker reports ``OOMKilled``);
* **pids** 128 processes (a fork bomb stops there), **cpus** 1, open files 1024;
* **no-new-privileges** (setuid programs cannot gain root) and **cap-drop ALL**: a server on a
  port above 1023 needs no Linux capability at all, not even as root;
* **network**: ``"auto"`` gives the default bridge when a port is probed (the probe must
  reach the published port, which binds to 127.0.0.1 only) and **no network** otherwise;
* **logs** kept by the engine capped at 1 MB, and what we quote of them capped again;
* the **build** may use the bridge (``apt-get`` reaches the OS archive here) with 1 GiB per
  step, and has a wall-clock limit: :class:`BuildRun` kills the step container of a build
  that runs too long (and, if the engine keeps going, hangs up on it), then removes every
  image the build made. ``FROM`` an image that is not on the engine is refused up front
  (:func:`missing_base`): the sandbox never pulls. Nor does it let the engine download
  ``ADD https://...`` sources (:func:`refused_url`) unless ``add_urls=True``.

>>> Limits().memory, Limits(memory="64m").create_options()["memswap_limit"]
('256m', '64m')
>>> Limits().network_for(port=8000), Limits().network_for(port=None)
('bridge', 'none')

Lesson: ``05-dockerfiles`` and the class grader (issue 7).
"""
from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass

from . import engine
from .errors import CoursekitError
from .layers import SCRATCH_LABEL, _remove_ids

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmg]?)b?\s*$", re.I)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
NANO = 1_000_000_000


def size_bytes(text: str | int, what: str = "memory") -> int:
    """``"256m"`` -> 268435456; a clear error for anything else.

    >>> size_bytes("1g") == 1 << 30
    True
    """
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    m = _SIZE.match(str(text))
    if not m:
        raise CoursekitError(f"{what}={text!r} is not a size",
                             'write it as Docker does: a number with k, m or g, such as "256m"')
    return int(float(m[1]) * _UNITS[m[2].lower()])


@dataclass(frozen=True)
class Limits:
    """The sandbox of one tryout. Pass ``Limits(memory="64m")`` etc. to change one value."""

    memory: str = "256m"           # RAM of the running container (docker run --memory)
    memory_swap: str = ""          # "" = same as memory: no swap on top (docker run --memory-swap)
    pids: int = 128                # processes and threads (docker run --pids-limit)
    cpus: float = 1.0              # CPU cores (docker run --cpus)
    nofile: int = 1024             # open files (docker run --ulimit nofile=N:N)
    no_new_privileges: bool = True  # docker run --security-opt no-new-privileges
    cap_drop: tuple[str, ...] = ("ALL",)   # docker run --cap-drop
    cap_add: tuple[str, ...] = ()          # docker run --cap-add (nothing the course needs)
    network: str = "auto"          # "auto" (bridge to probe a port, else none), "bridge" or "none"
    read_only: bool = False        # docker run --read-only (then /tmp is a small tmpfs)
    tmpfs_size: str = "16m"        # size of that /tmp tmpfs
    engine_log_size: str = "1m"    # the engine keeps at most this much of the container's output
    build_memory: str = "1g"       # RAM of each build step's container
    build_network: str = "bridge"  # network of build steps ("none": RUN cannot download anything)
    context_bytes: int = 50 << 20  # the largest build context accepted
    add_urls: bool = False         # ADD https://...: the engine itself would fetch it, from the host's network
    log_lines: int = 15            # lines of output quoted in a verdict
    log_chars: int = 3000          # ... and at most this many characters of them
    body_bytes: int = 4096         # bytes of an HTTP answer kept
    health_interval: float = 0.25  # seconds between health checks while grading (see try_dockerfile)

    def __post_init__(self):
        for name in ("memory", "build_memory", "tmpfs_size", "engine_log_size"):
            size_bytes(getattr(self, name), name)
        if self.memory_swap:
            size_bytes(self.memory_swap, "memory_swap")
        if size_bytes(self.memory) < 6 << 20:
            raise CoursekitError(f"memory={self.memory!r} is below Docker's minimum of 6 MiB", 'use at least "6m"')
        if self.network not in ("auto", "bridge", "none") or self.build_network not in ("bridge", "none"):
            raise CoursekitError(f"network={self.network!r}, build_network={self.build_network!r}: not a network "
                                 "policy of the sandbox", 'use network="auto" (bridge only to probe a port), "bridge" '
                                 'or "none"; build_network="bridge" or "none"')
        if not (0 < self.cpus <= 64) or self.pids < 1 or self.nofile < 16:
            raise CoursekitError(f"cpus={self.cpus}, pids={self.pids}, nofile={self.nofile}: a limit is out of range",
                                 "cpus must be above 0, pids at least 1, nofile at least 16")

    def network_for(self, port: int | None) -> str:
        """The network the container gets: see :attr:`network`."""
        if self.network == "auto":
            return "bridge" if port else "none"
        return self.network

    def create_options(self, *, port: int | None = None, host_port: int | None = None) -> dict:
        """Keyword arguments for ``engine.create`` that apply these limits (and publish ``port``)."""
        from docker.types import LogConfig, Ulimit

        network = self.network_for(port)
        if port and network == "none":
            raise CoursekitError(f"port {port} cannot be probed with network='none'",
                                 'leave network="auto" (or "bridge") for a server, or drop port= for a script')
        opts = {
            "mem_limit": self.memory, "memswap_limit": self.memory_swap or self.memory,
            "pids_limit": self.pids, "nano_cpus": int(self.cpus * NANO),
            "ulimits": [Ulimit(name="nofile", soft=self.nofile, hard=self.nofile)],
            "cap_drop": list(self.cap_drop), "cap_add": list(self.cap_add) or None,
            "security_opt": ["no-new-privileges"] if self.no_new_privileges else None,
            "network_mode": network, "read_only": self.read_only,
            "log_config": LogConfig(type="json-file", config={"max-size": self.engine_log_size, "max-file": "1"}),
        }
        if self.read_only:
            opts["tmpfs"] = {"/tmp": f"rw,nosuid,nodev,size={self.tmpfs_size}"}
        if port:
            opts["ports"] = {f"{port}/tcp": ("127.0.0.1", host_port)}  # loopback only; None: a free port
        return {k: v for k, v in opts.items() if v is not None}

    def build_options(self) -> dict:
        """Keyword arguments for ``APIClient.build`` that limit each build step's container."""
        mem = size_bytes(self.build_memory)
        return {"container_limits": {"memory": mem, "memswap": mem}, "network_mode": self.build_network}

    def health_override(self, image_check: dict | None, start_timeout: float) -> dict | None:
        """The image's HEALTHCHECK, checked every :attr:`health_interval` seconds instead.

        A student may well write ``--interval=30s``: right for production, far too slow for
        grading. The test command, retries and start period stay the student's (the start
        period and the timeout capped by ``start_timeout``); only the pace changes.
        """
        test = (image_check or {}).get("Test") or []
        if not test or test[0] == "NONE":
            return None
        cap = int(start_timeout * NANO)
        timeout = (image_check.get("Timeout") or 30 * NANO)
        return {"test": test, "interval": int(self.health_interval * NANO),
                "timeout": min(timeout, cap), "retries": image_check.get("Retries") or 3,
                "start_period": min(image_check.get("StartPeriod") or 0, cap)}

    def quote(self, text: str | bytes) -> str:
        """The last :attr:`log_lines` lines of ``text``, at most :attr:`log_chars` characters."""
        if isinstance(text, bytes):
            text = text.decode(errors="replace")
        lines = text.rstrip().splitlines()[-self.log_lines:]
        out = "\n".join(line.rstrip() for line in lines)
        return out if len(out) <= self.log_chars else "…" + out[-self.log_chars:]


# --------------------------------------------------------------------------- the time-limited build

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STEP = re.compile(r"Step (\d+)/\d+ : (.*)")
_FAILED_RUN = re.compile(r"The command '(?:/bin/sh -c )?(.*)' returned a non-zero code: (\d+)", re.S)
_NOT_IN_CONTEXT = re.compile(r"(?:COPY|ADD) failed: .*?(?:stat|lstat) ([^:]+): (?:file does not exist|no such file)")
COMMAND_CODES = {127: "command not found", 126: "the command cannot be executed", 137: "killed"}


def refused_url(res, df, limits: Limits) -> bool:
    """Fill ``res`` and return True when an ``ADD`` fetches a URL and :attr:`Limits.add_urls` is off.

    The engine downloads such a file itself, from the host's network namespace: no container
    limit applies, and it could read servers that listen only on the host's 127.0.0.1.
    """
    from .dockerlint import URL

    for number, inst in enumerate(df.instructions, start=1):
        if inst.keyword != "ADD" or limits.add_urls:
            continue
        words = inst.exec_form or inst.rest.split()
        url = next((w for w in words[:-1] if URL.match(w)), None)
        if url:
            res.verdict, res.step, res.line, res.instruction = "does not build", number, inst.line, inst.text
            res.message = (f"step {number} (line {inst.line}: `{inst.text}`): ADD of a URL ({url}) is not allowed in "
                           "the sandbox: the engine would download it outside any container's limits")
            res.hint = ("put the file in the build context (files=...) and COPY it; or download it in a RUN step "
                        "(RUN wget ... or curl ...), which also lets you delete it in the same layer")
            return True
    return False


def missing_base(res, df, cl) -> bool:
    """Fill ``res`` and return True when a ``FROM`` names an image that is not on the engine."""
    import docker.errors as de

    for number, inst in enumerate(df.instructions, start=1):
        stage = df.stages[inst.stage] if inst.keyword == "FROM" else None
        if stage is None or stage.base_stage is not None or stage.image.lower() == "scratch" or "$" in stage.image:
            continue
        try:
            cl.images.get(stage.image)
            continue
        except de.ImageNotFound:
            pass
        # the course's own images: tagged with their label's name (an image built FROM one inherits the label)
        here = sorted(t for im in cl.images.list(filters={"label": "org.coursekit.image"}) for t in im.tags
                      if t == (im.labels or {}).get("org.coursekit.image"))
        base = stage.image.split("/")[-1].split(":")[0].split("@")[0]
        alike = [t for t in here if t.split("/")[-1].split(":")[0] == base]
        res.verdict, res.step, res.line, res.instruction = "does not build", number, inst.line, inst.text
        res.message = (f"step {number} (line {inst.line}: `{inst.text}`): the image {stage.image} is not on this "
                       "engine, and nothing can be pulled here")
        res.hint = (f"use {alike[0]}, the course's stand-in for it" if alike else
                    "start FROM one of the course's images: " + (", ".join(here) or "(none yet: run `coursekit images`)"))
        return True
    return False


class BuildRun:
    """One classic ``docker build`` with a wall-clock limit; it remembers what it made to remove it."""

    GRACE = 2.0  # seconds the engine gets to end a build whose step container was killed

    def __init__(self, cl, limits: Limits, progress=None):
        self.cl, self.limits, self.progress = cl, limits, progress
        self.steps: list[list] = []   # [number, instruction, cached]
        self.made: list[str] = []     # short ids of images this build created (not cache hits)
        self.running: str | None = None  # the step container running now
        self.tail: deque[str] = deque(maxlen=limits.log_lines)
        self.sock = None
        self.timed_out = self.cut = self.done = False
        self._lock = threading.Lock()

    # -- stopping
    def _kill_step(self) -> None:
        with self._lock:
            running = None if self.done else self.running
        if running:
            with contextlib.suppress(Exception):
                self.cl.api.kill(running)  # the step fails with 137; forcerm removes the container

    def _hang_up(self) -> None:
        with self._lock:
            if self.done or self.sock is None:
                return
            self.cut = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # the engine cancels a build whose client went away

    def _timeout(self) -> None:
        with self._lock:
            if self.done:
                return
            self.timed_out = True
        self._kill_step()
        later = threading.Timer(self.GRACE, self._hang_up)
        later.daemon = True
        later.start()

    # -- reading
    def _read(self, chunk: dict) -> None:
        for line in chunk.get("stream", "").splitlines():
            line = _ANSI.sub("", line).rstrip()
            if not line.strip():
                continue
            self._note(line)
            if self.progress:  # after noting: if it raises (an interrupt), we still know what is running
                self.progress(line)

    def _note(self, line: str) -> None:
        s = line.strip()
        if m := _STEP.match(s):
            self.steps.append([int(m[1]), m[2], False])
            self.tail.clear()
        elif s == "---> Using cache" and self.steps:
            self.steps[-1][2] = True
        elif m := re.match(r"---> Running in ([0-9a-f]{12})$", s):
            with self._lock:
                self.running = m[1]
        elif m := re.match(r"---> ([0-9a-f]{12})$", s):
            with self._lock:
                self.running = None
            if self.steps and not self.steps[-1][2] and not self.steps[-1][1].upper().startswith("FROM"):
                self.made.append(m[1])
        elif not s.startswith(("Removing intermediate container", "Successfully built", "Successfully tagged")):
            self.tail.append(line)

    def run(self, res, df, context, tag: str, timeout: float, names=()):
        """Build; return the image, or None with ``res`` telling why not."""
        import docker.errors as de

        t0 = time.monotonic()
        labels = {engine.OWNER: engine.OWNER_VALUE, SCRATCH_LABEL: "1"}
        timer = threading.Timer(timeout, self._timeout)
        timer.daemon = True
        error = ""
        try:
            gen = self.cl.api.build(fileobj=context, custom_context=True, tag=tag, labels=labels, rm=True,
                                    forcerm=True, pull=False, decode=True, timeout=timeout + 60,
                                    **self.limits.build_options())
            frame = getattr(gen, "gi_frame", None)  # docker-py's stream generator holds the response
            response = frame.f_locals.get("response") if frame is not None else None
            if response is not None:
                with contextlib.suppress(Exception):
                    raw = self.cl.api._get_raw_response_socket(response)
                    self.sock = getattr(raw, "_sock", raw)
            timer.start()
            for chunk in gen:
                self._read(chunk)
                if "error" in chunk:
                    error = chunk["error"].strip()
        except de.APIError as exc:
            error = (exc.explanation or str(exc)).strip()
        except Exception as exc:
            if not self.timed_out:
                self._abort()
                raise CoursekitError(f"the Docker engine stopped answering during the build: {exc}",
                                     "check that the engine is still running (`coursekit doctor`)") from None
        except BaseException:  # KeyboardInterrupt: stop the engine's build too, then let it through
            self._abort()
            raise
        finally:
            with self._lock:
                self.done = True
            timer.cancel()
        res.build_seconds = round(time.monotonic() - t0, 3)
        res.steps = [tuple(s) for s in self.steps if s[0] <= len(df.instructions)]  # not our LABEL steps
        res.log_tail = self.limits.quote("\n".join(self.tail))
        if not error and not self.timed_out:
            return self.cl.images.get(tag)
        self._explain(res, df, error, timeout, names)
        return None

    def _abort(self) -> None:
        self._kill_step()
        self._hang_up()

    def _explain(self, res, df, error: str, timeout: float, names) -> None:
        number, instruction = (self.steps[-1][0], self.steps[-1][1]) if self.steps else (None, "")
        inst = df.instructions[number - 1] if number and number <= len(df.instructions) else None
        res.step, res.instruction, res.line = number, instruction, inst.line if inst else None
        where = f"step {number} (line {res.line}: `{instruction}`)" if inst else f"step {number} (`{instruction}`)"
        if self.timed_out:
            res.verdict = "build timed out"
            res.message = f"the build was still busy after {timeout:g} s, at {where}; it was stopped"
            res.hint = ("look for a command that waits forever (a server or `sleep` in RUN, a prompt such as "
                        "apt-get without -y) or one that downloads a lot; servers start in CMD, not RUN")
            return
        if number is None:
            m = re.search(r"line (\d+)", error)
            res.verdict, res.line = ("syntax error", int(m[1])) if m else ("does not build", None)
            res.message, res.hint = f"the builder refused the Dockerfile: {error}", "fix that line, then try again"
            return
        res.verdict = "does not build"
        if m := _FAILED_RUN.search(error):
            code = int(m[2])
            meaning = f" ({COMMAND_CODES[code]})" if code in COMMAND_CODES else ""
            res.exit_code = code
            res.message = f"{where} failed: the command exited with code {code}{meaning}"
            res.hint = ("the command is not in the image: install it in an earlier step, or check its spelling"
                        if code == 127 else "read the step's last lines of output; try the command by hand in "
                        "a container of the image before that step")
        elif m := _NOT_IN_CONTEXT.search(error):
            has = ", ".join(sorted(["Dockerfile", *names]))
            res.message = f"{where} failed: {m[1]} is not in the build context (it holds: {has})"
            res.hint = "add the file to the context (files=...), or fix its name in the instruction"
        else:
            res.message = f"{where} failed: {error}"
            res.hint = "fix that instruction (or what it needs), then try again"

    def _step_containers(self) -> list[str]:
        """Step containers of this build that still exist: the one we saw start, or any on our last layer."""
        api, found = self.cl.api, []
        if self.running:
            with contextlib.suppress(Exception):
                found.append(api.inspect_container(self.running)["Id"])
        if self.made:
            found += [c["Id"] for c in api.containers(all=True) if c.get("ImageID", "").startswith(f"sha256:{self.made[-1]}")]
        return found

    def remove(self, tag: str) -> None:
        """Remove the image, the intermediate images and any step container this build left."""
        api = self.cl.api
        if self.cut:  # we hung up: wait (10 s at most) for the engine to finish cancelling before we sweep
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self._step_containers():
                time.sleep(0.2)
            for cid in self._step_containers():
                with contextlib.suppress(Exception):
                    api.remove_container(cid, force=True)
            self.made += [im["Id"].split(":")[1][:12] for im in api.images(all=True)
                          if any(im.get("ParentId", "").startswith(f"sha256:{m}") for m in self.made)]
        with contextlib.suppress(Exception):
            api.remove_image(tag, noprune=False)
        _remove_ids(self.made)
