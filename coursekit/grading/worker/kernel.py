"""The notebook runner inside a grading sandbox: a kernel, the cells, restarts, the answers.

:class:`Runner` is what :mod:`coursekit.grading.worker` (PID 1 of the sandbox) does with a request
(:func:`coursekit.grading.inputs.build_request`), whichever way the request came in: it runs the
cells in a kernel through nbclient (:func:`_client_class`: no output kept but each cell's error
and the collector's output, both capped), interrupts a cell past ``cell_timeout``, replaces a
kernel that crashed or hung and runs the notebook again without the culprit (at most
``restarts`` times), runs the exercise's check cells once more, then collects each answer under
``cell_timeout``. Its report is a plain dict; the worker sends it to the host.

Lesson: none (the instructor's side, ``coursekit grade``).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
from types import SimpleNamespace

from ..limits import GradeLimits
from ..protocol import (CRASHED, ERROR, HUNG, NOT_RUN, OK, TIMED_OUT, collect_answers_source, limits_of,
                        parse_answers)
from .hygiene import KERNEL_NAME, WORK, environment, kill_the_rest, oom_kills, prepare_tmp, wipe_tmp


def _client_class():
    from nbclient import NotebookClient

    class GraderClient(NotebookClient):
        """Keeps no output but each cell's error, and the collector's stdout (both capped)."""

        def __init__(self, *args, limits: GradeLimits, **kwargs):
            super().__init__(*args, **kwargs)
            self.limits = limits
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
                self.error = text[: self.limits.message_chars]
            elif kind == "stream" and self.collecting and content.get("name") == "stdout":
                text = str(content.get("text", ""))
                room = self.limits.answers_bytes + 1000 - self.collected_size
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
        self.limits = limits_of(request)
        self.cells = request["cells"]          # [{"source", "index", "kind"}]
        self.specs = request["answers"]        # [[name, expression]]
        self.deadline = started + float(self.limits.budget)
        # the student's cells may not eat the time the answers need
        self.cells_deadline = self.deadline - min(len(self.specs) * self.limits.cell_timeout, self.limits.budget / 4)
        self.answers_size = 0
        self.skip: set[int] = set()
        self.report: dict = {"cells": {}, "answers": {}, "restarts": 0, "events": [], "timings": {"worker": started}}
        self.client = None
        self.oom_before = 0

    # -- time
    def _left(self, collecting: bool = True) -> float:
        return (self.deadline if collecting else self.cells_deadline) - time.time()

    def _timeout_for(self, collecting: bool = True) -> int:
        return max(1, int(min(self.limits.cell_timeout, self._left(collecting))))

    # -- kernel
    def _start(self):
        from nbformat.v4 import new_notebook

        GraderClient = _client_class()
        nb = new_notebook()
        client = GraderClient(nb, limits=self.limits, kernel_name=KERNEL_NAME, timeout=self._timeout_for(),
                              allow_errors=True, interrupt_on_timeout=False, record_timing=False,
                              startup_timeout=max(10, int(min(60, self._left()))), shutdown_kernel="immediate",
                              iopub_timeout=2, resources={"metadata": {"path": str(WORK)}})
        self.client = client
        null = subprocess.DEVNULL  # the kernel (the student's code) never holds the container's stdout
        return client.setup_kernel(env=environment(bool(self.req.get("engine"))), stdin=null, stdout=null,
                                   stderr=null)

    def _kernel_death(self) -> str:
        """Why the kernel died, from its exit status."""
        code = None
        with contextlib.suppress(Exception):
            code = self.client.km.provisioner.process.poll()
        if code is None:
            return "the kernel died"
        if code == -signal.SIGKILL and oom_kills() > self.oom_before:
            return f"the kernel ran out of memory (the sandbox has {self.limits.memory}) and was killed"
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
        return self._probe(self.limits.interrupt_grace)

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
        attempts = int(self.limits.restarts) + 1
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
        wipe_tmp()
        for problem in prepare_tmp(self.req):
            if problem not in self.report["events"]:
                self.report["events"].append(problem)
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
        for name, expr in self.specs:
            if name in self.report["answers"]:
                continue
            source = collect_answers_source({name: SimpleNamespace(name=name, answer=expr)})
            began = time.time()
            try:
                status, message = self._run_cell(source, collecting=True)
                self.report["timings"][f"answer:{name}"] = round(time.time() - began, 3)  # (bench: per question)
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
            if self.answers_size > self.limits.answers_bytes:
                got = {"status": "invalid", "message": f"the answers together are bigger than "
                                                       f"{self.limits.answers_bytes:,} bytes as JSON"}
            self.report["answers"][name] = got
        return True


class _Restart(Exception):
    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status, self.message = status, message

