"""One submission in one container: copy in, run, collect the answers, score, remove.

:func:`run_one` grades one student's notebook against an assignment (a solution notebook):

1. **What goes in.** The student's code cells, with every check cell replaced by the *public*
   check cell of the exercise generated from the solution (:func:`coursekit.exercises.assign.make_exercise`:
   hidden checks stripped; the student's own copy of a check cell never runs); a check cell the
   student deleted is put back after the cell it followed. Plus each question's answer
   expression, the files beside the notebook (regular files only, no symlinks), and the limits.
   No hidden check, no solution, no other student's work is ever in the container.
2. **The sandbox.** A container of the grading image (``coursekit/grader:1`` with the running
   coursekit layered on top, :func:`grader_image`) under :class:`~coursekit.grading.limits.GradeLimits`:
   no network, memory = swap cap, PID cap, CPU cap, read-only root with a small ``noexec``
   tmpfs at ``/tmp``, user ``grader`` (10001), no new privileges, every capability dropped, no
   core dumps, the engine's log capped; never the Docker socket. It is created through
   :func:`coursekit.docker.engine.create` (labelled, removed in a ``finally``, and by the reaper if the
   grader itself is killed).
3. **Run.** The request travels over the container's stdin with a fresh random nonce; the worker
   (:mod:`coursekit.grading.worker`) runs the cells, then evaluates the answers one question at a
   time, and prints ``COURSEKIT-GRADE <nonce> <json>`` on the container's stdout, which the
   student's code cannot write to. The host waits at most ``timeout`` seconds, then kills it.
4. **Score.** The answers (size-capped JSON, re-validated) are scored here, in the grader's own
   process, by :func:`coursekit.grading.score` with the solution's public *and* hidden checks.
   Questions that need the engine are built and run now, by the trusted side (their checks call
   :func:`coursekit.dockerfile.tryout.try_dockerfile`); a question whose answer *expression*
   itself needs the engine comes back as "needs engine" (the sandbox has none, by design).

**Threat model.** The student's code runs as the sandbox's user with everything its kernel has.
It *can* compute any answer value it likes: that is answering, since the checks judge values,
never a claim of success. It can spoil its own run (kill its kernel, hang, fill ``/tmp``, use up
memory or PIDs): that costs its own questions, nothing else. It can read the image and the
public checks, which students have anyway. It *cannot* see a hidden check or a solution (never
sent); change a score (checks run here, on plain JSON, re-validated and capped, never unpickled);
write or spoof the result line: the container's stdout belongs to the worker, PID 1, while the
kernel and its children have ``/dev/null``; PID 1 is non-dumpable, so ``/proc/1/{fd,mem,environ}``
are closed to them, and ignores their signals; the line must carry the nonce, which only the
worker's memory holds (this private channel plays the part of "a result path the student cannot
predict"); reach the network or the engine; write outside ``/tmp`` and ``/dev/shm`` (both small,
``noexec``); gain privileges; outlive its sandbox (every process is killed before the worker
reports, then the container is removed); or touch another student's run (one container each,
each with its own limits).

The statuses a submission can end with are :mod:`coursekit.grading.protocol`'s, the scoring
:mod:`coursekit.grading.report`'s; what goes into the sandbox is :mod:`coursekit.grading.inputs`'s;
the image is :mod:`coursekit.grading.image`'s. The same sandboxes can run as
tasks of a Docker Swarm job instead: :mod:`coursekit.grading.swarm`.

Lesson: none (the instructor's side, ``coursekit grade``).
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path

from ..docker import engine
from ..docker.labels import GRADE_LABEL
from ..errors import CoursekitError, GradingError
from ..ui.progress import Progress
from .image import grader_image
from .inputs import Assignment, Submission, load_assignment
from .limits import GradeLimits
from .gate import Gate
from .protocol import (CRASHED, GATE_DIR, GRADED, GRADER_ERROR, OUT_OF_MEMORY, RESULT_MARKER, SANDBOX_ENV, TIMED_OUT,
                       WORKER_MODULE, engine_env)
from .report import SubmissionGrade, check_report, graded, prepare, worker_timings, zero_grade


_running: dict = {}  # container id -> container: what stop_all() kills
_running_lock = threading.Lock()


def stop_all() -> int:
    """Kill every sandbox this process is running (an interrupted class run). Returns how many."""
    with _running_lock:
        running = list(_running.values())
    for c in running:
        with contextlib.suppress(Exception):
            c.kill()
    return len(running)


def run_one(submission: Submission, assignment: Assignment | str | os.PathLike, limits: GradeLimits | None = None,
            *, engine_available: bool | None = None, image: str | None = None,
            progress: Progress = None) -> SubmissionGrade:
    """Grade one submission in its own sandbox; never raises for anything the submission does.

    ``assignment``: an :class:`Assignment` or the path of the solution notebook.
    ``engine_available``: whether questions that need the engine can be checked (default: ask).
    ``image``: the grading image to use (default: :func:`grader_image`, built when missing).
    """
    t0 = time.monotonic()
    limits = limits or GradeLimits()
    if not isinstance(assignment, Assignment):
        assignment = load_assignment(assignment)
    if isinstance(submission, (str, os.PathLike)):
        p = Path(submission)
        submission = Submission(p.stem, p) if p.suffix == ".ipynb" else Submission(p.name, None, p)
    request, early = prepare(submission, assignment, limits, t0)
    if early is not None:
        return early
    image = image or grader_image(limits.image, progress)
    try:
        report, status, message, timings = _sandbox(request, image, limits, submission.student)
    except CoursekitError as exc:
        return zero_grade(assignment, submission, GRADER_ERROR,
                          f"the grader could not run the sandbox: {exc.problem}", t0)
    if status != GRADED:
        res = zero_grade(assignment, submission, status, message, t0, timings=timings)
        res.events = (report or {}).get("events", [])
        return res
    return graded(report, submission, assignment, engine_available=engine_available, timings=timings, t0=t0)


@contextlib.contextmanager
def _engine_for(request: dict):
    """The sandbox's engine: its own gate (a socket in a folder bind-mounted read-only), or none at all.

    Yields the extra ``create`` arguments and the gate (None without one); when the block ends, the
    gate removes everything the submission made."""
    if not request.get("engine"):
        yield {"environment": SANDBOX_ENV}, None
        return
    folder = tempfile.mkdtemp(prefix="coursekit-gate-")
    gate = Gate(folder)
    try:
        gate.start()
        env = {k: v for k, v in SANDBOX_ENV.items() if k != "COURSEKIT_NO_ENGINE"} | engine_env(True)
        if gate.policy.swarm:  # the sandbox cannot ask the kernel (a host-network helper): the grader tells it
            from ..orchestrate import swarm

            env[swarm.ENDPOINT_MODE_ENV] = swarm.networking().endpoint_mode
        yield {"environment": env, "volumes": {folder: {"bind": GATE_DIR, "mode": "ro"}}}, gate
    finally:
        gate.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _sandbox(request: dict, image: str, limits: GradeLimits, student: str) -> tuple:
    """Run the worker (with the submission's gate, if it gets an engine); (report or None, status, message, timings)."""
    with _engine_for(request) as (extra, gate):
        report, status, message, timings = _run_sandbox(request, image, limits, student, extra)
        if gate is not None and report is not None and gate.refusals:
            report["events"] = list(report.get("events") or []) + [
                f"the grading sandbox refused a Docker request: {why}"[:300] for why in gate.refusals[:5]]
        return report, status, message, timings


def _run_sandbox(request: dict, image: str, limits: GradeLimits, student: str, extra: dict) -> tuple:
    import requests.exceptions as rq

    nonce = secrets.token_hex(16)
    payload = json.dumps({**request, "nonce": nonce}).encode()
    cl = engine.client()
    c = engine.create(image, ["python3", "-m", WORKER_MODULE], labels={GRADE_LABEL: student[:200]},
                      stdin_open=True, **extra, **limits.create_options())  # the request comes in on stdin
    timings: dict = {}
    sock = None
    with _running_lock:
        _running[c.id] = c
    try:
        sock = cl.api.attach_socket(c.id, params={"stdin": 1, "stream": 1})
        started = time.time()
        c.start()
        raw = getattr(sock, "_sock", sock)
        raw.settimeout(120)
        raw.sendall(b"%d\n" % len(payload) + payload)
        timed_out = False
        try:
            c.wait(timeout=limits.timeout)
        except (rq.RequestException, OSError):
            timed_out = True
            with contextlib.suppress(Exception):
                c.kill()
        ended = time.time()
        timings["sandbox"] = round(ended - started, 3)
        c.reload()
        state = c.attrs.get("State", {})
        log = c.logs(stdout=True, stderr=False)
        report = _parse_report(log, nonce, limits)
        if report is not None:
            timings.update(worker_timings(report, started))
            return report, GRADED, "", timings
        if timed_out:
            return None, TIMED_OUT, (f"the notebook was still running after {limits.timeout:g} s, the limit for a "
                                     "whole submission, and was stopped"), timings
        if state.get("OOMKilled") or state.get("ExitCode") == 137:
            return None, OUT_OF_MEMORY, (f"the sandbox ran out of memory (the limit is {limits.memory}) and was "
                                         "stopped before the answers were collected"), timings
        tail = c.logs(stdout=False, stderr=True, tail=5).decode(errors="replace").strip()[-300:]
        return None, CRASHED, (f"the sandbox stopped (exit code {state.get('ExitCode')}) without reporting answers"
                               + (f": {tail}" if tail else "")), timings
    except CoursekitError:
        raise
    except Exception as exc:  # noqa: BLE001 - the engine, not the submission
        raise GradingError(f"{type(exc).__name__}: {exc}"[:300]) from None
    finally:
        with _running_lock:
            _running.pop(c.id, None)
        if sock is not None:
            with contextlib.suppress(Exception):
                sock.close()
        with contextlib.suppress(Exception):
            c.remove(force=True, v=True)


def _parse_report(log: bytes, nonce: str, limits: GradeLimits) -> dict | None:
    """The worker's report: the last line with our nonce, size-capped, validated; else None."""
    prefix = f"{RESULT_MARKER} {nonce} ".encode()
    line = None
    for candidate in log.splitlines():
        if candidate.startswith(prefix):
            line = candidate[len(prefix):]
    if line is None or len(line) > 2 * limits.answers_bytes + 200_000:
        return None
    try:
        doc = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return check_report(doc, limits)
