"""The code that runs INSIDE a grading sandbox: run one submission, collect its answers.

Started by :mod:`coursekit.gradesandbox` as the container's main process (PID 1), as the
non-root ``grader`` user, with no network, a read-only root and ``/tmp`` as the only
writable place. It never sees a hidden check or a solution: the host sends only the student's
code cells, the *public* check cells of the generated exercise, and each question's answer
expression. The notebook itself is run by :class:`coursekit.gradekernel.Runner`.

Two ways in, one way of running: **stdin** (``python3 -m coursekit.gradeworker``, one container
per submission on this engine) or **a work list** (``python3 -m coursekit.gradeworker --queue
URL``, a task of a Swarm job, :mod:`coursekit.gradeswarm`): the worker claims one item from the
list over HTTP (:func:`coursekit.gradequeue.claim`) *before* any student code runs, and at the
end posts its report back with the item's nonce (:func:`coursekit.gradequeue.deliver`) instead
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
3. It starts a kernel (``python3 -m coursekit.gradeworker kernel``: ipykernel with core dumps
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
   evaluated by :func:`coursekit.checks.collect_answers`), each under ``cell_timeout``; the
   student's cells may not use up the time this needs. A question whose evaluation hangs gets an
   error; the others still count.
6. It prints one line, ``COURSEKIT-GRADE <nonce> <json>`` (answers as JSON, at most
   ``answers_bytes``; never pickle), and exits. The host accepts only that line, with its nonce.
   (From a work list: it kills every other process first, then posts ``<json>`` with the nonce.)

What the student's code can still do is run as itself: compute any answer value it likes, which
is just answering (the host's checks judge the value), or spoil its own run (kill its kernel,
fill /tmp, hang), which costs it its own marks and nothing else.

Lesson: none (the instructor's side: issue 7, ``coursekit grade``).
"""
from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

RESULT_MARKER = "COURSEKIT-GRADE"
WORK = Path("/tmp/work")          # the kernel's folder: the notebook's files land here
RUNTIME = Path("/tmp/.coursekit")  # kernelspec, connection files, IPython and matplotlib settings
KERNEL_NAME = "coursekit-grader"
PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 4, 38
EXIT_UNDELIVERED = 75  # a work list's worker ran the notebook but could not hand in its report
MPL_CACHE = Path("/opt/grader/mpl")  # built into the image (see recipes/grader/Dockerfile)

# what happened to one cell, in the report
OK, ERROR, TIMED_OUT, HUNG, CRASHED, NOT_RUN = "ok", "error", "timed out", "hung", "crashed", "not run"


# --------------------------------------------------------------------------- the sandbox's own hygiene


def _harden() -> None:
    """Not dumpable (no ptrace, no /proc/1/mem|fd|environ for the student), no new privileges, deaf to
    their signals."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # setuid programs gain nothing, for every descendant
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, signal.SIG_IGN)


def in_sandbox() -> bool:
    """PID 1 of its own namespace and not root: the only place the worker may kill and wipe."""
    return os.getpid() == 1 and os.getuid() != 0


def _other_pids() -> list[int]:
    me = os.getpid()
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me]


def kill_the_rest() -> None:
    """SIGKILL every process of the sandbox but this one, and reap them (we are their init)."""
    if not in_sandbox():
        return
    for _ in range(100):  # a fork bomb forks while we kill: go round until nothing is left
        if not _other_pids():
            return
        with contextlib.suppress(OSError):
            os.kill(-1, signal.SIGKILL)  # every process we may signal but ourselves, in one call
        time.sleep(0.01)
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass


def oom_kills() -> int:
    """How many processes the kernel's OOM killer has killed in this sandbox (its memory cgroup)."""
    for path in ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events"):
        with contextlib.suppress(OSError, ValueError):
            for line in Path(path).read_text().splitlines():
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    return -1


def _wipe_tmp() -> None:
    """Empty /tmp (the student may have left folders without permissions: give them back first)."""
    if not in_sandbox():
        return
    for top, dirs, _ in os.walk("/tmp"):
        for d in dirs:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(top, d), 0o700, follow_symlinks=False)
    for p in Path("/tmp").iterdir():
        with contextlib.suppress(OSError):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def _prepare_tmp(request: dict) -> list[str]:
    """Write the kernel's settings, then the submission's files, into a fresh /tmp.

    Returns what could not be written: a file that does not fit in /tmp (its tmpfs is small) is
    left out, with a note, and the notebook still runs (its cells that need the file then fail)."""
    spec = RUNTIME / "jupyter" / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "coursekit.gradeworker", "kernel", "-f", "{connection_file}"],
        "display_name": "coursekit grader", "language": "python", "interrupt_mode": "signal"}))
    if MPL_CACHE.is_dir():
        shutil.copytree(MPL_CACHE, RUNTIME / "mpl", dirs_exist_ok=True)
    (RUNTIME / "runtime").mkdir(exist_ok=True)
    (RUNTIME / "ipython").mkdir(exist_ok=True)
    WORK.mkdir(parents=True, exist_ok=True)
    problems = []
    for rel, data in request.get("files", {}).items():
        dest = (WORK / rel).resolve()
        if not str(dest).startswith(str(WORK) + os.sep):
            continue  # the host sends relative paths only; never write elsewhere
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(base64.b64decode(data))
        except OSError as exc:
            with contextlib.suppress(OSError):
                dest.unlink()
            limit = request.get("limits", {}).get("tmpfs_size", "")
            problems.append(f"the file {rel} beside your notebook could not be put in the sandbox "
                            f"({exc.strerror or exc}; /tmp holds {limit or 'little'} in all), so your notebook "
                            "ran without it")
    return problems


def _environment() -> dict:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "TZ")}
    env.update(HOME="/tmp", COURSEKIT_NO_ENGINE="1", PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1",
               MPLBACKEND="Agg", MPLCONFIGDIR=str(RUNTIME / "mpl"), IPYTHONDIR=str(RUNTIME / "ipython"),
               JUPYTER_PATH=str(RUNTIME / "jupyter"), JUPYTER_RUNTIME_DIR=str(RUNTIME / "runtime"),
               JUPYTER_CONFIG_DIR=str(RUNTIME / "config"), JUPYTER_DATA_DIR=str(RUNTIME / "jupyter"),
               JUPYTER_PLATFORM_DIRS="1")
    return env


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
              "use coursekit.gradesandbox.run_one", file=sys.stderr)
        return 2
    _harden()
    queue = argv[1] if argv[:1] == ["--queue"] and len(argv) > 1 else None
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")  # the host's channel; the kernel never gets it
    try:
        if queue:
            from .gradequeue import claim

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
    os.environ.update(_environment())
    from .gradekernel import Runner

    report = {"format": 1, **Runner(request, started).run()}
    if queue:
        kill_the_rest()  # nothing of the student's is left to see or race the report
        from .gradequeue import deliver

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


if __name__ == "__main__":
    if sys.argv[1:2] == ["kernel"]:
        kernel_main(sys.argv[2:])
    else:
        sys.exit(main())
