"""The time-limited build of a learner's Dockerfile, and the checks made before it starts.

:class:`BuildRun` runs one classic ``docker build`` under :class:`~coursekit.dockerfile.limits.Limits`:
it kills the step container of a build that runs too long (and, if the engine keeps going,
hangs up on it), then removes every image the build made. ``FROM`` an image that is not on the
engine is refused up front (:func:`missing_base`): the sandbox never pulls. Nor does it let the
engine download ``ADD https://...`` sources (:func:`refused_url`) unless ``add_urls=True``.

Lesson: ``05-dockerfiles`` and the class grader.
"""
from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections import deque

from ..docker import engine, sdk
from ..docker.labels import IMAGE_LABEL, SCRATCH_LABEL
from ..docker.layers import remove_ids
from ..errors import DockerError
from .limits import Limits

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STEP = re.compile(r"Step (\d+)/\d+ : (.*)")
_FAILED_RUN = re.compile(r"The command '(?:/bin/sh -c )?(.*)' returned a non-zero code: (\d+)", re.S)
_NOT_IN_CONTEXT = re.compile(r"(?:COPY|ADD) failed: .*?(?:stat|lstat) ([^:]+): (?:file does not exist|no such file)")
COMMAND_CODES = {127: "command not found", 126: "the command cannot be executed", 137: "killed"}
#: Commands of a RUN step that fetch from the network (what fails, and why, in a build without one).
_NEEDS_NETWORK = re.compile(r"\b(apt-get|apt|apk|pip3?|wget|curl|git|npm|yum|dnf|gem|go get|cargo)\b")


def refused_url(res, df, limits: Limits) -> bool:
    """Fill ``res`` and return True when an ``ADD`` fetches a URL and :attr:`Limits.add_urls` is off.

    The engine downloads such a file itself, from the host's network namespace: no container
    limit applies, and it could read servers that listen only on the host's 127.0.0.1.
    """
    from .linter import URL

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
    de = sdk.errors()

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
        here = sorted(t for im in cl.images.list(filters={"label": IMAGE_LABEL}) for t in im.tags
                      if t == (im.labels or {}).get(IMAGE_LABEL))
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
        de = sdk.errors()

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
                raise DockerError(f"the Docker engine stopped answering during the build: {exc}",
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
            if self.limits.build_network == "none" and _NEEDS_NETWORK.search(instruction):
                res.message += "; this build has no network (a graded build never has one)"
                res.hint = ("download nothing while building: put what the step fetches into the build context "
                            "(files=...) and COPY it, or start FROM a course image that has it")
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
        remove_ids(self.made)
