"""Grading on a Docker Swarm cluster: the same sandboxes, run as the tasks of one replicated job.

``grade(..., cluster="swarm")`` (``coursekit grade --swarm``) changes only the step that runs the
sandboxes; resume, regrade, the gradebook, feedback, plot, log, statuses and progress lines are
:mod:`coursekit.grading.classroom`'s, the same as on one machine. What runs where:

* **here** (the host, on a swarm manager): the submissions are read, each becomes an item of a
  work list (:class:`coursekit.grading.queue.WorkList`: the request with a random nonce) in a
  scratch folder; the answers are scored here when the reports come back, with the hidden
  checks, which never leave this machine;
* **a work-list container** on this engine (:func:`coursekit.grading.queue.serve`, from the same
  image), on an *internal* overlay network made for this run: no route out, nothing published;
* **one service in ``replicated-job`` mode**: as many completions as items, ``workers`` tasks at
  a time on any node, restart condition none. Each task is one fresh container that claims one
  item, runs it exactly as a local sandbox does (:mod:`coursekit.grading.worker`), posts its report
  and exits. A task that ends without an item counts as done, so a job whose items are all
  claimed comes to its end.

The host follows the results and the tasks: a report is scored as it arrives (a progress line
per submission); a task that ended without a report gives ``out of memory`` (the engine says
OOM, or exit 137) or ``crashed``; an item claimed longer than ``limits.timeout`` is ``timed
out`` (its container is killed where it is on this node); items no task claimed when the job
ended are ``grader error``, so the next run does them again. A run removes its service, its
task containers, the work-list container, the network and the folder in a ``finally``; all are
labelled (:func:`coursekit.docker.engine.labels` plus ``org.coursekit.grade``) so that the reaper and
``coursekit clean`` find them if the grader itself is killed. Swarm mode is turned on the way
:mod:`coursekit.orchestrate.swarm` does it (a single-node swarm on 127.0.0.1 if the engine is in none), and
turned off again only if this run turned it on and no service remains.

**Limits** (:class:`~coursekit.grading.limits.GradeLimits`), as a Swarm service sets them: memory
and CPUs (``Resources.Limits``), processes (``Resources.Limits.Pids``), open files and core dumps
(``Ulimits``), read-only root, ``/tmp`` and ``/dev/shm`` as size-capped tmpfs mounts (``noexec``,
``nosuid``, ``nodev``), user 10001, every capability dropped, the engine's log capped, no init
(the worker must be PID 1). What a service cannot set on API 1.41: **no-new-privileges** (the
worker sets ``no_new_privs`` on itself, inherited by all it starts, and the image has no setuid
or setgid file: :mod:`coursekit.grading.image`), **memory-swap** (a task may swap as much again as
its memory where the node has swap: run graders on nodes without swap, as Kubernetes does by
default), and **no network**: the only network is the internal one, which reaches the work list
and nothing else (see :mod:`coursekit.grading.queue`'s threat model).

**The image** must be on every node. On one node it is: the service names it by its id, so
nothing is pulled. On a real cluster push it to a registry the nodes can pull from
(:mod:`coursekit.docker.registry` runs one) and pass that name as ``image=``; it is pinned to its
digest, so that every task runs the same bytes.

Lesson: none (the instructor's side, ``coursekit grade --swarm``).
"""
from __future__ import annotations

import contextlib
import os
import secrets
import time
from typing import Callable

from ..docker import engine
from ..docker.labels import GRADE_LABEL, GRADE_RUN_LABEL
from ..orchestrate import swarm
from ..errors import CoursekitError, GradingError
from .inputs import Assignment, Submission
from .limits import GradeLimits
from .queue import PORT, QUEUE_MODULE, WorkList
from .protocol import (CRASHED, EXIT_UNDELIVERED, GRADER_ERROR, OUT_OF_MEMORY, SANDBOX_ENV, TIMED_OUT,
                       WORKER_MODULE)
from .report import (SubmissionGrade, check_report, graded,
                     prepare, worker_timings, zero_grade)
from ..dockerfile.limits import ContainerLimits, merged

ENDED = {"complete", "failed", "rejected", "shutdown", "orphaned", "remove"}
POLL = 0.5            # seconds between looks at the work list and the tasks
IDLE_END = 5.0        # seconds with items unclaimed and no task left: the job is over
OnResult = Callable[[Submission, SubmissionGrade], None]


def ended_status(exit_code: int | None, oom_killed: bool, tail: str, limits: GradeLimits) -> tuple[str, str]:
    """(status, message) of a submission whose task ended without a report."""
    if exit_code == EXIT_UNDELIVERED:
        return GRADER_ERROR, "the sandbox ran, but could not hand its report to the work list (graded again next run)"
    if oom_killed or exit_code == 137:
        return OUT_OF_MEMORY, (f"the sandbox ran out of memory (the limit is {limits.memory}) and was stopped before "
                               "the answers were collected")
    return CRASHED, (f"the sandbox stopped (exit code {exit_code}) without reporting answers"
                     + (f": {tail}" if tail else ""))


def run(todo: list[Submission], assignment: Assignment, limits: GradeLimits, workers: int, *,
        engine_available: bool | None, image: str, on_result: OnResult, progress=None) -> None:
    """Grade ``todo`` as one Swarm job; ``on_result(submission, grade)`` for each one as soon as it is done."""
    say = progress or (lambda _m: None)
    t0 = time.monotonic()
    job = _Job(assignment, limits, workers, engine_available, image, on_result, say)
    try:
        for sub in todo:
            request, early = prepare(sub, assignment, limits, t0)
            if early is not None:
                on_result(sub, early)  # nothing to run: no notebook, not JSON, too big
            else:
                # no gate for a Swarm task yet: its answers that drive Docker are "needs engine", as before
                job.add(sub, {**request, "engine": False})  # written to the work list now, not all kept in memory
        if job.items:
            job.start()
            with engine.explaining(what=f"following the grading job {job.name}"):
                job.watch()
    finally:
        job.remove()


class _Job:
    def __init__(self, assignment, limits, workers, engine_available, image, on_result, say):
        self.assignment, self.limits, self.workers = assignment, limits, workers
        self.engine_available, self.image, self.on_result, self.say = engine_available, image, on_result, say
        self.run_id = secrets.token_hex(4)
        self.name = f"coursekit-grade-{self.run_id}"
        self.queue_name = f"coursekit-gradeq-{self.run_id}"
        self.labels = engine.labels(**{GRADE_LABEL: f"{assignment.name} (swarm)", GRADE_RUN_LABEL: self.run_id})
        self.items: dict[str, Submission] = {}
        self.nonces: dict[str, str] = {}
        self.max_report = 2 * limits.answers_bytes + 400_000
        self.turned_on = False
        self.list = self.network = self.queue = self.service = None

    # -- setting up
    def add(self, sub: Submission, request: dict) -> None:
        if self.list is None:
            self.list = WorkList(engine.scratch_dir() / f"grade-{self.run_id}")
        item = f"i{len(self.items):05d}"
        self.items[item], self.nonces[item] = sub, secrets.token_hex(16)
        self.list.add(item, request, self.nonces[item])

    def start(self) -> None:
        self.turned_on = swarm.state() == "inactive"
        swarm.init()
        cl = engine.client()
        ref = self._image_ref(cl)
        user = (10001, 10001) if os.getuid() == 0 else (os.getuid(), os.getgid())
        if os.getuid() == 0:
            self.list.hand_over(*user)
        self.network = engine.network(self.name, driver="overlay", attachable=True, internal=True, labels=self.labels)
        self._start_queue(ref, user)
        self._start_service(cl, ref)
        self.say(f"swarm job {self.name}: {len(self.items)} submissions, {self.workers} at a time, "
                 f"on {len(cl.nodes.list())} node(s)")

    def _image_ref(self, cl) -> str:
        """The image as the tasks name it: by id on one node (nothing pulled), pinned to its digest from a registry."""
        if swarm.registry_of(self.image):
            return swarm.pinned(self.image)
        nodes = cl.nodes.list()
        if len(nodes) > 1:
            raise GradingError(f"this swarm has {len(nodes)} nodes, and the grading image {self.image} is only on "
                               "this one", "push it to a registry every node can pull from (coursekit.docker.registry "
                               "runs one) and pass that name: grade(..., image='HOST:PORT/NAME:TAG')")
        try:
            return cl.images.get(self.image).id
        except Exception as exc:
            raise engine.explain_docker_error(exc, image=self.image, what="looking up the grading image") from None

    def _start_queue(self, ref: str, user: tuple[int, int]) -> None:
        limits = ContainerLimits(memory="512m", pids=64 + 8 * self.workers, read_only=True,
                                 user=f"{user[0]}:{user[1]}")  # the work list: trusted code, small and locked down
        self.queue = engine.run(
            ref, ["python3", "-m", QUEUE_MODULE, "serve", "/queue", str(PORT), str(self.max_report)],
            detach=True, name=self.queue_name, labels=self.labels, init=True, environment={"HOME": "/tmp"},
            volumes={str(self.list.folder): {"bind": "/queue", "mode": "rw"}},
            **limits.create_options(network=self.network.name))
        try:
            engine.wait_until(self.list.ready, timeout=60, interval=0.1, what="the work list to start")
        except CoursekitError:
            self.queue.reload()
            raise GradingError(f"the work list did not start ({self.queue.status}): "
                               f"{engine.log_tail(self.queue)}"[:600], "check `coursekit doctor`") from None

    def _start_service(self, cl, ref: str) -> None:
        """One replicated job: a task per submission, ``workers`` at a time, under the same limits as on one machine."""
        task = {"ContainerSpec": {"Image": ref, "Command": ["python3", "-m", WORKER_MODULE, "--queue",
                                                            f"http://{self.queue_name}:{PORT}"],
                                  "Hostname": "{{.Task.ID}}", "Env": [f"{k}={v}" for k, v in SANDBOX_ENV.items()],
                                  "Labels": self.labels, "Init": False, "StopGracePeriod": 1_000_000_000},
                "RestartPolicy": {"Condition": "none", "Delay": 0, "MaxAttempts": 0, "Window": 0},
                "Networks": [{"Target": self.network.id}]}
        template = merged(task, self.limits.service_spec())  # the limits as the Docker API writes them
        mode = {"ReplicatedJob": {"MaxConcurrent": self.workers, "TotalCompletions": len(self.items)}}
        with engine.explaining(ref, f"creating the grading job {self.name}"):
            self.service = cl.api.create_service(template, name=self.name, labels=self.labels, mode=mode,
                                                 endpoint_spec={"Mode": "dnsrr"})["ID"]

    # -- following it
    def watch(self) -> None:
        cl = engine.client()
        pending, closing, errors = set(self.items), set(), {}
        last_move, idle_since, seen = time.time(), None, 0
        while pending:  # (a timed-out item's claim is closed once its task ends, while others still run)
            tasks = {t["ID"]: t for t in cl.api.tasks(filters={"service": self.service})}  # first the tasks...
            claims = self.list.claims()  # ...then the list: a report posted before its task ended is seen
            if len(claims) != seen:
                last_move, seen = time.time(), len(claims)
            for item in sorted(pending & set(claims)):
                claim = claims[item]
                task = tasks.get(str(claim.get("task")))
                doc = self.list.result(item, self.max_report + 10_000)
                if doc is not None:
                    self._finish(item, claim, doc=doc)
                elif task is None or task["Status"]["State"] in ENDED:
                    self._finish(item, claim, task=task)
                elif time.time() - float(claim.get("at", 0)) > self.limits.timeout:
                    self._kill(task)
                    self._finish(item, claim, timed_out=True)
                    closing.add(item)  # closed once its task has ended too
                else:
                    continue
                pending.discard(item)
                last_move = time.time()
                if item not in closing:
                    self.list.close(item)  # its container is gone: the address may claim again
            for item in list(closing):
                task = tasks.get(str(claims[item].get("task")))
                if task is None or task["Status"]["State"] in ENDED:
                    self.list.close(item)
                    closing.discard(item)
            errors.update({t["ID"]: t["Status"]["Err"] for t in tasks.values() if t["Status"].get("Err")})
            waiting = pending - set(claims)
            live = [t for t in tasks.values() if t["Status"]["State"] not in ENDED]
            idle_since = (idle_since or time.time()) if waiting and not live else None
            rejected = sum(t["Status"]["State"] in ("rejected", "failed") for t in tasks.values())
            if waiting and ((idle_since and time.time() - idle_since > IDLE_END)  # the job is over
                            or time.time() - last_move > self.limits.timeout + 60  # nothing moves
                            or (not claims and rejected >= 3)):  # no task gets as far as claiming
                why = next(iter(errors.values()), "") or "the job ended before every submission was claimed"
                for item in sorted(waiting):
                    sub = self.items[item]
                    self.on_result(sub, zero_grade(self.assignment, sub, GRADER_ERROR, (
                        f"the cluster ran no sandbox for this submission ({why})")[:400], time.monotonic()))
                    pending.discard(item)
            if pending:
                time.sleep(POLL)
        refused = self.list.refused()
        if refused:
            self.say(f"swarm job {self.name}: the work list refused {len(refused)} request(s) (a second claim from "
                     f"one sandbox, or a report without its item's nonce); first: {refused[0]}"[:400])

    def _kill(self, task) -> None:
        cid = ((task or {}).get("Status", {}).get("ContainerStatus") or {}).get("ContainerID")
        with contextlib.suppress(Exception):
            engine.client().containers.get(cid).kill()  # only where the task runs on this node

    def _finish(self, item: str, claim: dict, *, doc: dict | None = None, task: dict | None = None,
                timed_out: bool = False) -> None:
        sub = self.items[item]
        claimed_at = float(claim.get("at", time.time()))
        t0 = time.monotonic() - max(0.0, time.time() - claimed_at)
        report = None
        if doc is not None and doc.get("nonce") == self.nonces[item] and isinstance(doc.get("report"), dict):
            report = check_report(doc["report"], self.limits)
        if report is not None:
            timings = {"sandbox": round(float(doc.get("at", claimed_at)) - claimed_at, 3)}
            worker_start = report["timings"].get("worker")  # the worker's own clock: claim to kernel, to first cell
            if worker_start:
                timings.update(worker_timings(report, worker_start))
            result = graded(report, sub, self.assignment, engine_available=self.engine_available, timings=timings,
                            t0=t0)
        elif timed_out:
            result = zero_grade(self.assignment, sub, TIMED_OUT, (
                f"the notebook was still running after {self.limits.timeout:g} s, the limit for a whole submission, "
                "and was stopped"), t0)
        elif doc is not None:
            result = zero_grade(self.assignment, sub, CRASHED, "the sandbox's report could not be read", t0)
        else:
            result = zero_grade(self.assignment, sub, *self._why_ended(task), t0)
        self.on_result(sub, result)

    def _why_ended(self, task: dict | None) -> tuple[str, str]:
        status = (task or {}).get("Status", {})
        code = (status.get("ContainerStatus") or {}).get("ExitCode")
        oom, tail = False, ""
        with contextlib.suppress(Exception):  # on this node the container says more (OOM, its last words)
            c = engine.client().containers.get(status["ContainerStatus"]["ContainerID"])
            oom = bool(c.attrs["State"].get("OOMKilled"))
            tail = c.logs(stdout=False, stderr=True, tail=5).decode(errors="replace").strip()[-300:]
        if task is None:
            tail = tail or "its task is gone"
        return ended_status(code, oom, tail, self.limits)

    # -- tidying up
    def remove(self) -> None:
        if self.list is not None:
            self.list.remove()  # every submission's copy goes first
        if self.service is None and self.queue is None and self.network is None and not self.turned_on:
            return
        cl = engine.client()
        if self.service:
            with contextlib.suppress(Exception):
                cl.api.remove_service(self.service)
        if self.queue is not None:
            engine.remove_quietly(self.queue)
        flt = {"label": f"{GRADE_RUN_LABEL}={self.run_id}"}

        def no_containers() -> bool:  # the swarm is slow to remove the containers of ended tasks: we do it
            left = cl.containers.list(all=True, filters=flt)
            for c in left:
                engine.remove_quietly(c)
            return not left
        with contextlib.suppress(Exception):
            engine.wait_until(no_containers, timeout=30, interval=0.3, what="the job's containers to go")
        if self.network is not None:
            def gone() -> bool:
                try:
                    self.network.remove()
                    return True
                except Exception:  # noqa: BLE001 - endpoints of removed tasks linger for a moment
                    return False
            with contextlib.suppress(Exception):
                engine.wait_until(gone, timeout=30, interval=0.5, what=f"network {self.name} to be removed")
        if self.turned_on:
            with contextlib.suppress(Exception):
                swarm.leave()
