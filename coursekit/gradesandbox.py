"""One submission in one container: copy in, run, collect the answers, score, remove.

:func:`run_one` grades one student's notebook against an assignment (a solution notebook):

1. **What goes in.** The student's code cells, with every check cell replaced by the *public*
   check cell of the exercise generated from the solution (:func:`coursekit.assign.make_exercise`:
   hidden checks stripped; the student's own copy of a check cell never runs); a check cell the
   student deleted is put back after the cell it followed. Plus each question's answer
   expression, the files beside the notebook (regular files only, no symlinks), and the limits.
   No hidden check, no solution, no other student's work is ever in the container.
2. **The sandbox.** A container of the grading image (``coursekit/grader:1`` with the running
   coursekit layered on top, :func:`grader_image`) under :class:`~coursekit.gradelimits.GradeLimits`:
   no network, memory = swap cap, PID cap, CPU cap, read-only root with a small ``noexec``
   tmpfs at ``/tmp``, user ``grader`` (10001), no new privileges, every capability dropped, no
   core dumps, the engine's log capped; never the Docker socket. It is created through
   :func:`coursekit.engine.create` (labelled, removed in a ``finally``, and by the reaper if the
   grader itself is killed).
3. **Run.** The request travels over the container's stdin with a fresh random nonce; the worker
   (:mod:`coursekit.gradeworker`) runs the cells, then evaluates the answers one question at a
   time, and prints ``COURSEKIT-GRADE <nonce> <json>`` on the container's stdout, which the
   student's code cannot write to. The host waits at most ``timeout`` seconds, then kills it.
4. **Score.** The answers (size-capped JSON, re-validated) are scored here, in the grader's own
   process, by :func:`coursekit.grading.score` with the solution's public *and* hidden checks.
   Questions that need the engine are built and run now, by the trusted side (their checks call
   :func:`coursekit.dockerfile_answers.try_dockerfile`); a question whose answer *expression*
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

Statuses of a submission (:attr:`SubmissionGrade.status`): ``graded`` (the worker reported:
crashed or hung cells are in :attr:`SubmissionGrade.cells` and cost only the questions that
needed them), ``invalid notebook``, ``too big``, ``no notebook``, ``timed out`` (the whole
sandbox ran past ``timeout``), ``out of memory`` (the worker itself was killed), ``crashed``
(the sandbox ended without a report), ``grader error`` (the engine failed: graded again on the
next run). Every status but ``graded`` gives zero for every question.

Lesson: none (the instructor's side: issue 7, ``coursekit grade``).
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import secrets
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from . import checks as ck
from . import engine, grading, notebooks
from .errors import CoursekitError, NotebookError
from .gradelimits import GRADER_IMAGE, GradeLimits
from .gradeworker import RESULT_MARKER

GRADED, INVALID_NOTEBOOK = grading.GRADED, grading.INVALID_NOTEBOOK
TOO_BIG, NO_NOTEBOOK, TIMED_OUT, OUT_OF_MEMORY, CRASHED, GRADER_ERROR = \
    "too big", "no notebook", "timed out", "out of memory", "crashed", "grader error"
STATUSES = (GRADED, INVALID_NOTEBOOK, TOO_BIG, NO_NOTEBOOK, TIMED_OUT, OUT_OF_MEMORY, CRASHED, GRADER_ERROR)
RUN_IMAGE = "coursekit/grader-run"
GRADE_LABEL = "org.coursekit.grade"
Progress = Optional[Callable[[str], None]]


# --------------------------------------------------------------------------- the assignment


@dataclass
class Assignment:
    """A solution notebook, read once: its questions (with hidden checks) stay on the host."""

    solution: Path
    name: str
    questions: dict                     # name -> coursekit.checks.Question (trusted, with hidden checks)
    check_cells: list                   # [(cell id, public source, id of the exercise cell before it)]
    run_fingerprint: str = ""           # what goes into the sandbox (public checks + answer expressions)
    score_fingerprint: str = ""         # what scores it (the solution file)

    @property
    def max_score(self) -> float:
        return sum(q.points for q in self.questions.values())


def load_assignment(solution: str | os.PathLike) -> Assignment:
    """Read a solution notebook: questions on the host, public check cells for the sandbox."""
    from . import assign

    path = Path(solution)
    questions = grading.load_questions(path)
    exercise = assign.make_exercise(notebooks.read(path), source_name=f"solutions/{path.name}", stem=path.stem)
    cells, before = [], None
    for cell in exercise.cells:
        if cell.cell_type == "code" and assign.CHECKS_TAG in notebooks.tags_of(cell):
            cells.append((cell.get("id"), notebooks.source_of(cell), before))
        before = cell.get("id")
    inside = json.dumps([cells, [[q.name, q.answer] for q in questions.values()]])
    return Assignment(path, path.stem, questions, cells,
                      hashlib.sha256(inside.encode()).hexdigest()[:16],
                      hashlib.sha256(path.read_bytes()).hexdigest()[:16])


# --------------------------------------------------------------------------- the submission


@dataclass
class Submission:
    """One student's work: a notebook, and the files beside it when it came in a folder."""

    student: str
    notebook: Optional[Path]
    folder: Optional[Path] = None
    problem: str = ""  # why there is no notebook to grade

    def files(self) -> dict[str, Path]:
        """Regular files beside the notebook (relative path -> path): never a symlink, a hidden file or folder."""
        if self.folder is None:
            return {}
        out = {}
        for top, dirs, names in os.walk(self.folder, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not os.path.islink(os.path.join(top, d)))
            for name in sorted(names):
                p = Path(top, name)
                if name.startswith(".") or p.is_symlink() or not p.is_file() or p == self.notebook:
                    continue
                out[p.relative_to(self.folder).as_posix()] = p
        return out

    def fingerprint(self) -> str:
        """Changes when the notebook or a file beside it changes."""
        h = hashlib.sha256()
        for rel, p in [("", self.notebook)] + sorted(self.files().items()):
            if p is not None:
                h.update(rel.encode() + b"\0")
                with contextlib.suppress(OSError), open(p, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        h.update(block)
        return h.hexdigest()[:16]


def cells_to_run(nb, assignment: Assignment) -> list[dict]:
    """The cells the sandbox runs: the student's code, the exercise's public check cells in place of theirs."""
    from . import assign

    public = {cid: src for cid, src, _ in assignment.check_cells}
    run: list[dict] = []
    placed: set = set()
    for index, cell in enumerate(nb.cells, 1):
        if cell.get("cell_type") != "code":
            continue
        cid = cell.get("id")
        if cid in public or assign.CHECKS_TAG in notebooks.tags_of(cell):
            if cid in public and cid not in placed:
                run.append({"source": public[cid], "index": index, "kind": "checks", "id": cid})
                placed.add(cid)
            continue  # the student's own copy of a check cell never runs
        source = notebooks.source_of(cell)
        if source.strip():
            run.append({"source": source, "index": index, "kind": "student", "id": cid})
    for cid, source, before in assignment.check_cells:  # check cells the student deleted
        if cid in placed:
            continue
        at = next((i + 1 for i in range(len(run) - 1, -1, -1) if run[i]["id"] == before), len(run))
        run.insert(at, {"source": source, "index": 0, "kind": "checks", "id": cid})
        placed.add(cid)
    return run


def build_request(submission: Submission, assignment: Assignment, limits: GradeLimits) -> dict:
    """The request the worker gets (without the nonce); raises NotebookError or _TooBig."""
    if submission.notebook.stat().st_size > 5 * limits.submission_bytes:  # outputs count here, not below
        raise _TooBig(f"the notebook file is {submission.notebook.stat().st_size / 1e6:.0f} MB; the limit is "
                      f"{5 * limits.submission_bytes / 1e6:.0f} MB (clear its outputs and hand it in again)")
    nb = notebooks.read(submission.notebook)
    cells = cells_to_run(nb, assignment)
    files, size = {}, sum(len(c["source"]) for c in cells)
    for rel, path in submission.files().items():
        size += path.stat().st_size
        if size > limits.submission_bytes:
            break
        files[rel] = base64.b64encode(path.read_bytes()).decode()
    if size > limits.submission_bytes:
        raise _TooBig(f"the submission is {size / 1e6:.1f} MB or more (code cells and the files beside the "
                      f"notebook); the limit is {limits.submission_bytes / 1e6:.0f} MB")
    return {"cells": [{k: c[k] for k in ("source", "index", "kind")} for c in cells], "files": files,
            "answers": [[q.name, q.answer] for q in assignment.questions.values()],
            "limits": limits.worker_settings()}


class _TooBig(Exception):
    pass


# --------------------------------------------------------------------------- the image


_image_lock = threading.Lock()


def _package_files() -> list[tuple[str, Path]]:
    root = Path(__file__).resolve().parent
    return [(p.relative_to(root.parent).as_posix(), p) for p in sorted(root.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")]


def grader_image(base: str = GRADER_IMAGE, progress: Progress = None) -> str:
    """The grading image with this coursekit inside: ``coursekit/grader-run:<hash>`` (built if missing).

    The hash covers the base image's id and every file of the coursekit package, so the worker in
    the sandbox is always the code the host runs. Older ``grader-run`` tags are removed.
    """
    import docker.errors as de

    from . import images
    from .imagebuild import cache_root

    cl = engine.client()
    say = progress or (lambda _m: None)
    with _image_lock:
        if base in images.catalog():
            images.ensure([base], progress=say)
        try:
            base_id = cl.api.inspect_image(base)["Id"]
        except de.ImageNotFound:
            raise CoursekitError(f"the grading image {base} is not on this engine",
                                 "run `coursekit images coursekit/grader:1`, or pass image= a grading image") from None
        files = _package_files()
        h = hashlib.sha256(base_id.encode())
        for rel, p in files:
            h.update(rel.encode() + b"\0" + p.read_bytes() + b"\0")
        tag = f"{RUN_IMAGE}:{h.hexdigest()[:12]}"
        with contextlib.suppress(de.ImageNotFound):
            cl.api.inspect_image(tag)
            return tag
        root = cache_root()
        root.mkdir(parents=True, exist_ok=True)
        import fcntl

        with open(root / ".grader-run.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one build across processes
            with contextlib.suppress(de.ImageNotFound):
                cl.api.inspect_image(tag)
                return tag
            say(f"[{tag}] build: {base} + this coursekit ({len(files)} files)")
            _build_run_image(cl, base, tag, files)
            for im in cl.images.list(name=RUN_IMAGE):
                for old in im.tags:
                    if old != tag and old.startswith(RUN_IMAGE + ":"):
                        with contextlib.suppress(de.APIError):
                            cl.images.remove(old)
    return tag


_RUN_DOCKERFILE = """FROM {base}
USER root
COPY coursekit /opt/coursekit/coursekit
RUN python3 -m compileall -q /opt/coursekit && chmod -R a+rX,go-w /opt/coursekit
ENV PYTHONPATH=/opt/coursekit
USER grader
WORKDIR /tmp
CMD ["python3", "-m", "coursekit.gradeworker"]
"""


def _build_run_image(cl, base: str, tag: str, files: list) -> None:
    from .layers import SCRATCH_LABEL

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = _RUN_DOCKERFILE.format(base=base).encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for rel, p in files:
            tar.add(str(p), arcname=rel, recursive=False)
    buf.seek(0)
    labels = {engine.OWNER: engine.OWNER_VALUE, SCRATCH_LABEL: "1"}
    error = ""
    for chunk in cl.api.build(fileobj=buf, custom_context=True, tag=tag, labels=labels, rm=True, forcerm=True,
                              pull=False, decode=True, network_mode="none"):
        error = chunk.get("error", error)
    if error:
        raise CoursekitError(f"building the grading image {tag} failed: {error.strip()}",
                             "check `coursekit doctor` and `coursekit images coursekit/grader:1`")


# --------------------------------------------------------------------------- one run


@dataclass
class SubmissionGrade(grading.GradeResult):
    """A submission's grade, plus what happened in its sandbox (for the log and the feedback)."""

    student: str = ""
    answers: dict = field(default_factory=dict)   # question -> answer JSON, as the sandbox sent it
    cells: list = field(default_factory=list)     # [{index, kind, status, message}] cells that did not run cleanly
    restarts: int = 0
    timings: dict = field(default_factory=dict)   # seconds: start_to_kernel, start_to_first_cell, sandbox, total
    events: list = field(default_factory=list)    # what the worker or the host noticed


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


def zero_grade(assignment: Assignment, submission: Submission, status: str, message: str, t0: float,
               **extra) -> SubmissionGrade:
    """Zero for every question: the submission could not be graded (``status`` says why)."""
    qs = {q.name: grading.QuestionGrade(q.name, status, 0, q.points, messages=[f"not graded: {status}"])
          for q in assignment.questions.values()}
    return SubmissionGrade(status, 0, assignment.max_score, qs, str(submission.notebook or ""), message,
                           round(time.monotonic() - t0, 3), student=submission.student, **extra)


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
    if submission.notebook is None:
        return zero_grade(assignment, submission, NO_NOTEBOOK, submission.problem or "no notebook was handed in",
                          t0)
    try:
        request = build_request(submission, assignment, limits)
    except NotebookError as exc:
        text = f"{exc.problem}. What to do: {exc.fix}".replace(str(submission.notebook), submission.notebook.name)
        return zero_grade(assignment, submission, INVALID_NOTEBOOK, text, t0)
    except _TooBig as exc:
        return zero_grade(assignment, submission, TOO_BIG, str(exc), t0)
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
    answers = {}
    for name, raw in (report.get("answers") or {}).items():
        if name in assignment.questions:
            answers[name] = ck.Answer.from_json(raw)
    graded = grading.score(assignment.questions, answers, engine_available=engine_available)
    notes = sorted(report.get("cells", {}).values(), key=lambda c: c.get("index", 0))
    res = SubmissionGrade(GRADED, graded.score, graded.max_score, graded.questions, str(submission.notebook),
                          _summary(notes), 0.0, student=submission.student,
                          answers={k: v.to_json() for k, v in answers.items()}, cells=notes,
                          restarts=int(report.get("restarts", 0)), timings=timings,
                          events=[str(e)[:300] for e in report.get("events", [])][:20])
    res.timings["total"] = res.seconds = round(time.monotonic() - t0, 3)
    return res


def _summary(notes: list) -> str:
    bad = [n for n in notes if n.get("status") not in ("ok", "error")]
    if not bad:
        return ""
    return "; ".join(f"cell {n['index']}: {n['status']}" if n.get("index") else f"a check cell: {n['status']}"
                     for n in bad[:5])


def _sandbox(request: dict, image: str, limits: GradeLimits, student: str) -> tuple:
    """Run the worker; (report or None, status, message, timings)."""
    import requests.exceptions as rq

    nonce = secrets.token_hex(16)
    payload = json.dumps({**request, "nonce": nonce}).encode()
    cl = engine.client()
    c = engine.create(image, ["python3", "-m", "coursekit.gradeworker"], labels={GRADE_LABEL: student[:200]},
                      **limits.create_options())
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
            t = report.get("timings", {})
            for key, name in (("kernel_ready", "start_to_kernel"), ("first_cell", "start_to_first_cell")):
                if isinstance(t.get(key), (int, float)):
                    timings[name] = round(t[key] - started, 3)
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
        raise CoursekitError(f"{type(exc).__name__}: {exc}"[:300]) from None
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
    if not isinstance(doc, dict) or doc.get("format") != 1 or not isinstance(doc.get("answers"), dict):
        return None
    cells = doc.get("cells") if isinstance(doc.get("cells"), dict) else {}
    doc["cells"] = {str(k): {"index": int(v.get("index") or 0), "kind": str(v.get("kind", ""))[:20],
                             "status": str(v.get("status", ""))[:20],
                             "message": str(v.get("message", ""))[:limits.message_chars + 200],
                             "head": str(v.get("head", ""))[:80]}
                    for k, v in list(cells.items())[:500] if isinstance(v, dict)}
    doc["timings"] = {k: v for k, v in (doc.get("timings") or {}).items() if isinstance(v, (int, float))} \
        if isinstance(doc.get("timings"), dict) else {}
    doc["events"] = [str(e)[:300] for e in doc.get("events", [])][:20] if isinstance(doc.get("events"), list) else []
    return doc
