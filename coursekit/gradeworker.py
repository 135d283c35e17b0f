"""The code that runs INSIDE a grading sandbox: run one submission, collect its answers.

Started by :mod:`coursekit.gradesandbox` as the container's main process (PID 1), as the
non-root ``grader`` user, with no network, a read-only root and ``/tmp`` as the only
writable place. It never sees a hidden check or a solution: the host sends only the student's
code cells, the *public* check cells of the generated exercise, and each question's answer
expression.

The protocol, in order:

1. The worker makes itself non-dumpable (``prctl(PR_SET_DUMPABLE, 0)``): processes of the
   same user (the student's) can then neither ptrace it nor open its ``/proc/1/{mem,fd,environ}``.
   As PID 1 of its namespace it also ignores every signal the student's code could send it
   (SIGKILL included); SIGINT and SIGTERM are ignored explicitly.
2. It reads the request from stdin (``<length>\\n<json>``): a nonce chosen at random by the host
   for this run, the cells, the files, the answer expressions and the limits; then it closes
   stdin. Nothing of it is in argv, the environment or the file system.
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

What the student's code can still do is run as itself: compute any answer value it likes, which
is just answering (the host's checks judge the value), or spoil its own run (kill its kernel,
fill /tmp, hang), which costs it its own marks and nothing else.

Lesson: none (the instructor's side: issue 7, ``coursekit grade``).
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

RESULT_MARKER = "COURSEKIT-GRADE"
WORK = Path("/tmp/work")          # the kernel's folder: the notebook's files land here
RUNTIME = Path("/tmp/.coursekit")  # kernelspec, connection files, IPython and matplotlib settings
KERNEL_NAME = "coursekit-grader"
PR_SET_DUMPABLE = 4
MPL_CACHE = Path("/opt/grader/mpl")  # built into the image (see recipes/grader/Dockerfile)

# what happened to one cell, in the report
OK, ERROR, TIMED_OUT, HUNG, CRASHED, NOT_RUN = "ok", "error", "timed out", "hung", "crashed", "not run"


# --------------------------------------------------------------------------- the sandbox's own hygiene


def _harden() -> None:
    """Not dumpable (no ptrace, no /proc/1/mem|fd|environ for the student), deaf to their signals."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
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


def _prepare_tmp(request: dict) -> None:
    """Write the submission's files and the kernel's settings into a fresh /tmp."""
    WORK.mkdir(parents=True, exist_ok=True)
    for rel, data in request.get("files", {}).items():
        dest = (WORK / rel).resolve()
        if not str(dest).startswith(str(WORK) + os.sep):
            continue  # the host sends relative paths only; never write elsewhere
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(base64.b64decode(data))
    spec = RUNTIME / "jupyter" / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "coursekit.gradeworker", "kernel", "-f", "{connection_file}"],
        "display_name": "coursekit grader", "language": "python", "interrupt_mode": "signal"}))
    if MPL_CACHE.is_dir():
        shutil.copytree(MPL_CACHE, RUNTIME / "mpl", dirs_exist_ok=True)
    (RUNTIME / "runtime").mkdir(exist_ok=True)
    (RUNTIME / "ipython").mkdir(exist_ok=True)


def _environment() -> dict:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "TZ")}
    env.update(HOME="/tmp", COURSEKIT_NO_ENGINE="1", PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1",
               MPLBACKEND="Agg", MPLCONFIGDIR=str(RUNTIME / "mpl"), IPYTHONDIR=str(RUNTIME / "ipython"),
               JUPYTER_PATH=str(RUNTIME / "jupyter"), JUPYTER_RUNTIME_DIR=str(RUNTIME / "runtime"),
               JUPYTER_CONFIG_DIR=str(RUNTIME / "config"), JUPYTER_DATA_DIR=str(RUNTIME / "jupyter"),
               JUPYTER_PLATFORM_DIRS="1")
    return env


# --------------------------------------------------------------------------- running the cells


def _client_class():
    from nbclient import NotebookClient

    class GraderClient(NotebookClient):
        """Keeps no output but each cell's error, and the collector's stdout (both capped)."""

        def __init__(self, *args, caps: dict, **kwargs):
            super().__init__(*args, **kwargs)
            self.caps = caps
            self.error = ""                  # the running cell's first error, "Name: message"
            self.collected: list[str] = []   # the collector's stdout
            self.collected_size = 0
            self.collecting = False
            self.pollers: set = set()

        def output(self, outs, msg, display_id, cell_index):  # nbclient hook: keep (almost) nothing
            kind = msg.get("msg_type")
            content = msg.get("content") or {}
            if kind == "error" and not self.error:
                text = f"{content.get('ename', 'Error')}: {content.get('evalue', '')}"
                self.error = text[: self.caps["message_chars"]]
            elif kind == "stream" and self.collecting and content.get("name") == "stdout":
                text = str(content.get("text", ""))
                room = self.caps["answers_bytes"] + 1000 - self.collected_size
                if room > 0:
                    self.collected.append(text[:room])
                    self.collected_size += min(len(text), room)
            return None

        async def _async_poll_output_msg(self, parent_msg_id, cell, cell_index):
            # nbclient leaves the output poller of a timed-out cell running: it would swallow the
            # next cells' output. Track the pollers so that drop_pollers() can cancel it.
            task = asyncio.current_task()
            self.pollers.add(task)
            try:
                return await super()._async_poll_output_msg(parent_msg_id, cell, cell_index)
            finally:
                self.pollers.discard(task)

        def drop_pollers(self) -> None:
            for task in list(self.pollers):
                task.cancel()
            self.pollers.clear()

        def handle_comm_msg(self, outs, msg, cell_index):  # widgets: nothing to keep
            return None

        def _update_display_id(self, display_id, msg):  # no outputs kept, so none to update
            return None

    return GraderClient


class Runner:
    """Runs the cells (with restarts) and collects the answers; the report is a plain dict."""

    def __init__(self, request: dict, started: float):
        self.req = request
        self.caps = request["limits"]
        self.cells = request["cells"]          # [{"source", "index", "kind"}]
        self.specs = request["answers"]        # [[name, expression]]
        self.deadline = started + float(self.caps["budget"])
        # the student's cells may not eat the time the answers need
        self.cells_deadline = self.deadline - min(len(self.specs) * self.caps["cell_timeout"], self.caps["budget"] / 4)
        self.answers_size = 0
        self.skip: set[int] = set()
        self.report: dict = {"cells": {}, "answers": {}, "restarts": 0, "events": [], "timings": {"worker": started}}
        self.client = None
        self.oom_before = 0

    # -- time
    def _left(self, collecting: bool = True) -> float:
        return (self.deadline if collecting else self.cells_deadline) - time.time()

    def _timeout_for(self, collecting: bool = True) -> int:
        return max(1, int(min(self.caps["cell_timeout"], self._left(collecting))))

    # -- kernel
    def _start(self):
        from nbformat.v4 import new_notebook

        GraderClient = _client_class()
        nb = new_notebook()
        client = GraderClient(nb, caps=self.caps, kernel_name=KERNEL_NAME, timeout=self._timeout_for(),
                              allow_errors=True, interrupt_on_timeout=False, record_timing=False,
                              startup_timeout=max(10, int(min(60, self._left()))), shutdown_kernel="immediate",
                              iopub_timeout=2, resources={"metadata": {"path": str(WORK)}})
        self.client = client
        null = subprocess.DEVNULL  # the kernel (the student's code) never holds the container's stdout
        return client.setup_kernel(env=_environment(), stdin=null, stdout=null, stderr=null)

    def _kernel_death(self) -> str:
        """Why the kernel died, from its exit status."""
        code = None
        with contextlib.suppress(Exception):
            code = self.client.km.provisioner.process.poll()
        if code is None:
            return "the kernel died"
        if code == -signal.SIGKILL and oom_kills() > self.oom_before:
            return f"the kernel ran out of memory (the sandbox has {self.caps.get('memory', '?')}) and was killed"
        if code < 0:
            sig = -code
            why = {signal.SIGKILL: "it was killed (SIGKILL)",
                   signal.SIGSEGV: "segmentation fault (SIGSEGV)", signal.SIGABRT: "it aborted (SIGABRT)",
                   signal.SIGBUS: "bus error (SIGBUS)"}.get(sig, f"killed by signal {sig}")
            return f"the kernel died: {why}"
        return f"the kernel exited with code {code} (os._exit or a crash)"

    def _probe(self, timeout: float) -> bool:
        """True when the kernel answers a trivial cell within ``timeout`` seconds."""
        from nbformat.v4 import new_code_cell

        self.client.timeout = max(1, int(timeout))
        cell = new_code_cell("None")
        self.client.nb.cells = [cell]
        try:
            self.client.execute_cell(cell, 0)
            return True
        except Exception:  # noqa: BLE001 - timeout or dead kernel: either way, not answering
            self.client.drop_pollers()
            return False

    def _interrupt(self) -> bool:
        from nbclient.util import run_sync

        with contextlib.suppress(Exception):
            run_sync(self.client.km.interrupt_kernel)()
        return self._probe(self.caps["interrupt_grace"])

    def _run_cell(self, source: str, *, collecting: bool = False) -> tuple[str, str]:
        """(status, message) of one cell; raises _Restart when the kernel must be replaced."""
        from nbclient.exceptions import CellTimeoutError, DeadKernelError
        from nbformat.v4 import new_code_cell

        client = self.client
        if self._left(collecting) < 1:
            return NOT_RUN, "the time for the whole notebook ran out before this cell"
        client.timeout = self._timeout_for(collecting)
        client.collecting, client.collected, client.collected_size, client.error = collecting, [], 0, ""
        cell = new_code_cell(source)
        client.nb.cells = [cell]  # nbclient writes the cell back at its index: a one-cell notebook
        self.oom_before = oom_kills()
        try:
            client.execute_cell(cell, 0)
        except DeadKernelError:
            why = self._kernel_death()
            kill_the_rest()  # whatever the kernel started (a fork bomb's children...) goes now, not later
            raise _Restart(CRASHED, why) from None
        except CellTimeoutError:
            limit = client.timeout
            client.drop_pollers()
            if self._interrupt():
                return TIMED_OUT, f"it ran longer than {limit} s and was interrupted"
            kill_the_rest()
            raise _Restart(HUNG, f"it ran longer than {limit} s and did not stop when interrupted") from None
        except Exception as exc:  # noqa: BLE001 - the kernel stopped answering in some other way
            kill_the_rest()
            raise _Restart(CRASHED, f"the kernel stopped answering ({type(exc).__name__})") from None
        if client.error:
            return ERROR, client.error
        return OK, ""

    # -- the whole run
    def run(self) -> dict:
        attempts = int(self.caps["restarts"]) + 1
        for attempt in range(attempts):
            self.report["restarts"] = attempt
            if self._attempt(last=attempt == attempts - 1):
                break
        for name, _ in self.specs:
            self.report["answers"].setdefault(name, {"status": "error", "message": (
                "no answer could be collected: the kernel crashed or hung too often, or the time ran out "
                "(see the notes on your cells)")})
        self.report["timings"]["end"] = time.time()
        return self.report

    def _attempt(self, last: bool) -> bool:
        """One kernel: replay the cells (without the skipped ones), then collect; True when done."""
        kill_the_rest()
        _wipe_tmp()
        _prepare_tmp(self.req)
        timings = self.report["timings"]
        try:
            with self._start():
                timings.setdefault("kernel_ready", time.time())
                for pos, cell in enumerate(self.cells):
                    if pos in self.skip:
                        continue
                    timings.setdefault("first_cell", time.time())
                    try:
                        status, message = self._run_cell(cell["source"])
                    except _Restart as r:
                        self._note(pos, r.status, r.message + ("; the notebook was run again without it"
                                                               if not last else ""))
                        self.skip.add(pos)
                        return False
                    self._note(pos, status, message)
                timings.setdefault("cells_done", time.time())
                self._redefine_checks()
                return self._collect()
        except Exception as exc:  # noqa: BLE001 - the kernel would not start (/tmp full, no PIDs left...)
            self.report["events"].append(f"the kernel could not be started: {type(exc).__name__}: {exc}"[:300])
            return self._left() < 5
        finally:
            kill_the_rest()

    def _note(self, pos: int, status: str, message: str) -> None:
        """Record a cell's outcome (only what is worth telling: not the check cells that ran fine)."""
        cell = self.cells[pos]
        if status == OK or len(self.report["cells"]) >= 200:
            return
        head = next((line.strip() for line in cell["source"].splitlines() if line.strip()), "")
        self.report["cells"][str(pos)] = {"index": cell["index"], "kind": cell["kind"], "status": status,
                                          "message": message, "head": head[:60]}

    def _redefine_checks(self) -> None:
        """Run the exercise's check cells again, last: answer expressions such as ``q1_try(f)`` then use
        the course's helpers, not a student's redefinition of them (which could return hard-coded results)."""
        for cell in self.cells:
            if cell["kind"] == "checks":
                with contextlib.suppress(_Restart):  # a kernel that died here fails the collection below
                    self._run_cell(cell["source"])

    def _collect(self) -> bool:
        from .grading import collect_answers_source, parse_answers

        for name, expr in self.specs:
            if name in self.report["answers"]:
                continue
            source = collect_answers_source({name: SimpleNamespace(name=name, answer=expr)})
            try:
                status, message = self._run_cell(source, collecting=True)
            except _Restart as r:
                self.report["answers"][name] = {"status": "error", "message": (
                    f"evaluating `{expr}` {'hung the kernel' if r.status == HUNG else 'crashed the kernel'}: "
                    f"{r.message}")}
                return False  # the remaining questions need a new kernel (and a replay of the cells)
            if status == TIMED_OUT:
                self.report["answers"][name] = {"status": "error", "message": (
                    f"evaluating `{expr}` {message.replace('it ran', 'ran', 1)}: does your code loop forever or "
                    "wait for something?")}
                continue
            got = parse_answers("".join(self.client.collected)).get(name)
            if got is None:
                why = f" ({message})" if message else ""
                got = {"status": "error", "message": f"no answer could be collected for {name}{why}"}
            else:
                got = got.to_json()
            self.answers_size += len(json.dumps(got))
            if self.answers_size > self.caps["answers_bytes"]:
                got = {"status": "invalid", "message": f"the answers together are bigger than "
                                                       f"{self.caps['answers_bytes']:,} bytes as JSON"}
            self.report["answers"][name] = got
        return True


class _Restart(Exception):
    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _read_request(stream) -> dict:
    header = stream.readline(32)
    size = int(header.strip() or 0)
    data = stream.read(size)
    if len(data) != size:
        raise ValueError(f"the request was cut short ({len(data)} of {size} bytes)")
    return json.loads(data)


def main() -> int:
    started = time.time()
    if not in_sandbox():
        print("coursekit grade worker: this runs only as PID 1 of a grading sandbox (non-root); "
              "use coursekit.gradesandbox.run_one", file=sys.stderr)
        return 2
    _harden()
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")  # the host's channel; the kernel never gets it
    try:
        request = _read_request(sys.stdin.buffer)
    except Exception as exc:  # noqa: BLE001
        print(f"coursekit grade worker: bad request: {exc}", file=sys.stderr)
        return 2
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)  # stdin closed for good; stdout/stderr of the worker: only the worker writes there
    nonce = request.pop("nonce")
    os.environ.update(_environment())
    report = Runner(request, started).run()
    text = json.dumps({"format": 1, **report}, ensure_ascii=True, separators=(",", ":"))
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
