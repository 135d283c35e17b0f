"""The code that runs INSIDE a grading sandbox: run one submission, collect its answers.

Started by :mod:`coursekit.grading.local` as the container's main process (PID 1), as the
non-root ``grader`` user, with no network, a read-only root and ``/tmp`` as the only
writable place. It never sees a hidden check or a solution: the host sends only the student's
code cells, the *public* check cells of the generated exercise, and each question's answer
expression. The notebook itself is run by :class:`coursekit.grading.worker.kernel.Runner`.

Two ways in, one way of running: **stdin** (``python3 -m coursekit.grading.worker``, one container
per submission on this engine) or **a work list** (``python3 -m coursekit.grading.worker --queue
URL``, a task of a Swarm job, :mod:`coursekit.grading.swarm`): the worker claims one item from the
list over HTTP (:func:`coursekit.grading.queue.claim`) *before* any student code runs, and at the
end posts its report back with the item's nonce (:func:`coursekit.grading.queue.deliver`) instead
of printing it, once every other process of the sandbox has been killed.

The protocol, in order:

1. The worker makes itself non-dumpable (``prctl(PR_SET_DUMPABLE, 0)``): processes of the
   same user (the student's) can then neither ptrace it nor open its ``/proc/1/{mem,fd,environ}``.
   It also sets ``no_new_privs`` on itself (inherited by every process it starts, for good):
   where the engine could not set ``no-new-privileges`` (a Swarm service), the sandbox has it all
   the same.
   As PID 1 of its namespace it also ignores every signal the student's code could send it
   (SIGKILL included); SIGINT and SIGTERM are ignored explicitly.
2. It reads the request from stdin (``<length>\\n<json>``), or claims it from the work list: a
   nonce chosen at random by the host for this run, the cells, the files, the answer expressions
   and the limits; then it closes stdin. Nothing of it is in argv, the environment or the file
   system.
3. It starts a kernel (``python3 -m coursekit.grading.worker kernel``: ipykernel with core dumps
   off, ``oom_score_adj=1000`` so that on memory exhaustion the kernel is the one killed, and
   ``nice 19`` so that a fork bomb cannot starve the worker) with stdin, stdout and stderr on
   ``/dev/null``: the student's code cannot write to the container's output, which only this
   worker writes to.
4. It runs the cells with nbclient, keeping no output except each cell's error name and message
   (capped): an output flood costs time, not memory. A cell that runs past ``cell_timeout`` is
   interrupted; if the kernel then stays busy for ``interrupt_grace`` seconds, or a cell kills
   the kernel (``os._exit``, a segfault, running out of memory), every process but the worker is
   killed, ``/tmp`` is wiped and rewritten, and the notebook runs again in a new kernel without
   that cell (at most ``restarts`` times).
5. Only then it runs the exercise's check cells once more (so that an answer expression such as
   ``q1_try(f)`` uses the course's helper, not a student's redefinition returning hard-coded
   results), and, one question at a time, sends the kernel the collector (the answer expression,
   evaluated by :func:`coursekit.exercises.checks.collect_answers`), each under ``cell_timeout``; the
   student's cells may not use up the time this needs. A question whose evaluation hangs gets an
   error; the others still count.
6. It prints one line, ``COURSEKIT-GRADE <nonce> <json>`` (answers as JSON, at most
   ``answers_bytes``; never pickle), and exits. The host accepts only that line, with its nonce.
   (From a work list: it kills every other process first, then posts ``<json>`` with the nonce.)

What the student's code can still do is run as itself: compute any answer value it likes, which
is just answering (the host's checks judge the value), or spoil its own run (kill its kernel,
fill /tmp, hang), which costs it its own marks and nothing else.

Lesson: none (the instructor's side, ``coursekit grade``).
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

from ..protocol import EXIT_UNDELIVERED, GATE_SOCKET, RESULT_MARKER
from ..queue import claim, deliver
from .hygiene import environment, harden, in_sandbox, kill_the_rest
from .kernel import Runner
from .ports import Ports


def _read_request(stream) -> dict:
    header = stream.readline(32)
    size = int(header.strip() or 0)
    data = stream.read(size)
    if len(data) != size:
        raise ValueError(f"the request was cut short ({len(data)} of {size} bytes)")
    return json.loads(data)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    started = time.time()
    if not in_sandbox():
        print("coursekit grade worker: this runs only as PID 1 of a grading sandbox (non-root); "
              "use coursekit.grading.local.run_one", file=sys.stderr)
        return 2
    harden()
    queue = argv[1] if argv[:1] == ["--queue"] and len(argv) > 1 else None
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")  # the host's channel; the kernel never gets it
    try:
        if queue:
            request = claim(queue)  # before any student code runs: one item per sandbox
            if request is None:
                print("coursekit grade worker: the work list has nothing left", file=sys.stderr)
                return 0
        else:
            request = _read_request(sys.stdin.buffer)
    except Exception as exc:  # noqa: BLE001
        print(f"coursekit grade worker: bad request: {exc}"[:500], file=sys.stderr)
        return 0 if queue else 2  # a worker that got no item ends well: the job then stops sending tasks
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)  # stdin closed for good; stdout/stderr of the worker: only the worker writes there
    nonce, item = request.pop("nonce"), request.pop("item", None)
    engine = bool(request.get("engine"))
    os.environ.update(environment(engine))
    if engine:  # the submission's published ports, on this sandbox's own 127.0.0.1 (through the gate)
        Ports(GATE_SOCKET).start()
    report = {"format": 1, **Runner(request, started).run()}
    if queue:
        kill_the_rest()  # nothing of the student's is left to see or race the report
        return 0 if deliver(queue, item, nonce, report) else EXIT_UNDELIVERED
    text = json.dumps(report, ensure_ascii=True, separators=(",", ":"))
    out.write(f"\n{RESULT_MARKER} {nonce} {text}\n")
    out.flush()
    kill_the_rest()
    return 0


def kernel_main(argv: list[str]) -> None:
    """The kernel: ipykernel, first in line for the OOM killer, last for the CPU, no core dumps or history."""
    import resource

    with contextlib.suppress(OSError):
        Path("/proc/self/oom_score_adj").write_text("1000")
    with contextlib.suppress(OSError):
        os.nice(19)  # the lowest CPU priority in the sandbox: a fork bomb cannot starve the worker
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    sys.argv = ["ipykernel_launcher", *argv, "--HistoryManager.enabled=False", "--IPKernelApp.quiet=True"]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()
