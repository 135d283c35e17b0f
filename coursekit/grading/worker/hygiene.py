"""The grading sandbox's own hygiene: what the worker does to itself, to /tmp and to the student's processes.

Used by :mod:`.serve` (PID 1) and :mod:`.kernel` (between kernels): the worker makes itself
non-dumpable and deaf to the student's signals (:func:`harden`), kills every other process of
the sandbox (:func:`kill_the_rest`), counts the OOM killer's victims (:func:`oom_kills`), and
wipes and rewrites ``/tmp`` (:func:`wipe_tmp`, :func:`prepare_tmp`: the kernel's settings first,
then the submission's files). Everything that kills or wipes acts only inside a sandbox
(:func:`in_sandbox`: PID 1 of its namespace, not root).

Lesson: none (the instructor's side, ``coursekit grade``).
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

from ..protocol import PASSED_ENV, WORKER_MODULE, engine_env

WORK = Path("/tmp/work")          # the kernel's folder: the notebook's files land here
RUNTIME = Path("/tmp/.coursekit")  # kernelspec, connection files, IPython and matplotlib settings
KERNEL_NAME = "coursekit-grader"
PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 4, 38
MPL_CACHE = Path("/opt/grader/mpl")  # built into the image (see coursekit/docker/recipes/grader/Dockerfile)


def harden() -> None:
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


def other_pids() -> list[int]:
    me = os.getpid()
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me]


def kill_the_rest() -> None:
    """SIGKILL every process of the sandbox but this one, and reap them (we are their init)."""
    if not in_sandbox():
        return
    for _ in range(100):  # a fork bomb forks while we kill: go round until nothing is left
        if not other_pids():
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


def wipe_tmp() -> None:
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


def prepare_tmp(request: dict) -> list[str]:
    """Write the kernel's settings, then the submission's files, into a fresh /tmp.

    Returns what could not be written: a file that does not fit in /tmp (its tmpfs is small) is
    left out, with a note, and the notebook still runs (its cells that need the file then fail)."""
    spec = RUNTIME / "jupyter" / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", WORKER_MODULE, "kernel", "-f", "{connection_file}"],
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


def environment(engine: bool = False) -> dict:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "TZ", *PASSED_ENV)}
    env.update(engine_env(engine))
    env.update(HOME="/tmp", PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1",
               MPLBACKEND="Agg", MPLCONFIGDIR=str(RUNTIME / "mpl"), IPYTHONDIR=str(RUNTIME / "ipython"),
               JUPYTER_PATH=str(RUNTIME / "jupyter"), JUPYTER_RUNTIME_DIR=str(RUNTIME / "runtime"),
               JUPYTER_CONFIG_DIR=str(RUNTIME / "config"), JUPYTER_DATA_DIR=str(RUNTIME / "jupyter"),
               JUPYTER_PLATFORM_DIRS="1")
    return env
