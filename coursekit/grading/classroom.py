"""``coursekit grade``: grade a whole class, each submission in its own sandbox, in parallel.

>>> from coursekit.grading.classroom import grade                                  # doctest: +SKIP
>>> grade("submissions/", "solutions/09-cloud-computing.ipynb", "grades/09")  # doctest: +SKIP

**Submissions** (``submissions_dir``): one entry per student, the student's id being the name::

    submissions/
      alice/                       a folder: the notebook named like the assignment
        09-cloud-computing.ipynb   (09-cloud-computing.ipynb), or the only .ipynb in it;
        prices.csv                 the other files go beside it in the sandbox (no symlinks,
                                   no hidden files; limits.submission_bytes in all)
      bob.ipynb                    or a bare notebook: the id is the file name

**Output** (``out_dir``): ``gradebook.csv`` (one row per student: status, points per question,
total, max), ``feedback/<student>.md`` (each question's public checks passed or failed with
their hints, how many hidden checks passed but never their code, notes on cells that crashed
or hung), ``class.png`` (score distribution, per-question outcomes), ``grade.log`` (what
happened, with timings) and ``state.jsonl`` (every result with the answers it was scored
from; this is how grading resumes).

**Resume and regrade.** A run that is interrupted keeps what is done: the next ``grade(...)``
with the same folders skips every student whose notebook, assignment and limits are unchanged,
and re-scores from the saved answers (no sandbox) those whose only change is the solution's
checks. ``students=["alice"]`` runs those students again, whatever was saved;
``questions=["q2"]`` re-scores only q2 for everyone from the saved answers (after fixing q2's
checks). ``grader error`` results (the engine failed, not the student) are always redone.

**Isolation** is :mod:`coursekit.grading.local`'s (one container per submission, all limits in
:class:`~coursekit.grading.limits.GradeLimits`); a submission that crashes, hangs, floods its output
or exhausts its memory gets its own status and costs no other student anything.

**On a cluster**, ``cluster="swarm"`` runs the same sandboxes as the tasks of one Docker Swarm
job that pull the submissions from a work list (:mod:`coursekit.grading.swarm`); only that step
differs, the results are the same. The files are written by :mod:`coursekit.grading.outputs`.

**Answers that need the engine** (a Dockerfile...) are collected as text in the sandbox, then
built and run here by their checks (:func:`coursekit.dockerfile.tryout.try_dockerfile` with
:class:`~coursekit.dockerfile.limits.Limits`): build steps on the default bridge (``RUN apt-get``
reaches the OS archive) with 1 GiB and a wall clock per build, no ``ADD <url>``, no pulls;
the container with no network, or for a server the bridge with its port on 127.0.0.1 only.
An answer whose *expression* calls Docker (SDK code) cannot run in a sandbox without an engine:
it is reported as ``needs engine``, with a line in the feedback saying so.

Lesson: none (the instructor's side, ``coursekit grade``).
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..exercises import checks as ck
from ..docker import engine
from ..errors import CoursekitError, GradingError
from .limits import GradeLimits
from .outputs import FEEDBACK, GRADEBOOK, NEEDS_ENGINE_NOTE, PLOT, feedback, plot_class, write_outputs
from .image import grader_image
from .inputs import Assignment, Submission, load_assignment
from .local import run_one, stop_all
from .protocol import GRADED, GRADER_ERROR
from .report import SubmissionGrade, zero_grade
from .scoring import QuestionGrade, score
from ..ui.progress import Progress

STATE, LOG = "state.jsonl", "grade.log"
__all__ = ["grade", "find_submissions", "ClassResult", "write_outputs", "feedback", "plot_class", "NEEDS_ENGINE_NOTE",
           "CLUSTERS", "STATE", "LOG", "GRADEBOOK", "PLOT", "FEEDBACK"]
CLUSTERS = ("local", "swarm")


# --------------------------------------------------------------------------- finding the class


def find_submissions(folder: str | os.PathLike, assignment: str) -> list[Submission]:
    """Every student in ``folder`` (see the module's docstring), sorted by id."""
    root = Path(folder)
    if not root.is_dir():
        raise GradingError(f"{root} is not a folder of submissions",
                           "give the folder that holds one folder (or one .ipynb) per student")
    subs = []
    for p in sorted(root.iterdir()):
        if p.name.startswith(".") or p.is_symlink():
            continue
        if p.is_file() and p.suffix == ".ipynb":
            subs.append(Submission(p.stem, p))
        elif p.is_dir():
            books = sorted(b for b in p.glob("*.ipynb") if not b.is_symlink())
            named = [b for b in books if b.stem == assignment]
            if named or len(books) == 1:
                subs.append(Submission(p.name, (named or books)[0], p))
            else:
                why = (f"several notebooks ({', '.join(b.name for b in books)}) and none named {assignment}.ipynb"
                       if books else "no .ipynb file")
                subs.append(Submission(p.name, None, p, f"the folder {p.name}/ holds {why}"))
    if not subs:
        raise GradingError(f"{root} holds no submissions", "put one folder or one .ipynb per student in it")
    return subs


# --------------------------------------------------------------------------- results


@dataclass
class ClassResult:
    """What :func:`grade` did: every student's result, and where the files are."""

    assignment: str
    out_dir: Path
    results: dict = field(default_factory=dict)   # student -> SubmissionGrade
    ran: list = field(default_factory=list)       # students run in a sandbox this time
    rescored: list = field(default_factory=list)  # re-scored from saved answers
    kept: list = field(default_factory=list)      # unchanged since the last run
    seconds: float = 0.0

    def __str__(self) -> str:
        counts: dict = {}
        for r in self.results.values():
            counts[r.status] = counts.get(r.status, 0) + 1
        mean = sum(r.score for r in self.results.values()) / max(1, len(self.results))
        n = len(self.results)
        return (f"{self.assignment}: {n} student{'' if n == 1 else 's'} "
                f"({', '.join(f'{k} {s}' for s, k in counts.items())}); "
                f"mean {mean:.2f}; {len(self.ran)} run, {len(self.rescored)} re-scored, {len(self.kept)} unchanged, "
                f"in {self.seconds:.1f} s -> {self.out_dir}")


def _from_dict(d: dict) -> SubmissionGrade:
    qs = {k: QuestionGrade(**v) for k, v in d.pop("questions").items()}
    d.pop("complete", None)
    return SubmissionGrade(questions=qs, **d)


def _load_state(path: Path) -> dict:
    state = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
                rec["result"] = _from_dict(rec["result"])
                state[rec["student"]] = rec
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by an interruption
    return state


def _waiting_for_engine(result: SubmissionGrade) -> list[str]:
    """Questions whose answer arrived but whose checks waited for an engine."""
    return [n for n, g in result.questions.items()
            if g.status == ck.NEEDS_ENGINE and result.answers.get(n, {}).get("status") == ck.ANSWERED]


def _rescore(result: SubmissionGrade, assignment: Assignment, names: Iterable[str], engine_ok: bool) -> None:
    answers = {n: ck.Answer.from_json(result.answers[n]) for n in names if n in result.answers}
    fresh = score({n: assignment.questions[n] for n in answers}, answers, engine_available=engine_ok)
    result.questions.update(fresh.questions)
    result.score = sum(g.points for g in result.questions.values())
    result.max_score = assignment.max_score


# --------------------------------------------------------------------------- the API


def grade(submissions_dir: str | os.PathLike, assignment: str | os.PathLike, out_dir: str | os.PathLike,
          workers: int | None = None, limits: GradeLimits | None = None, *, students: list[str] | None = None,
          questions: list[str] | None = None, progress: Progress = print,
          engine_available: bool | None = None, cluster: str = "local", image: str | None = None) -> ClassResult:
    """Grade every submission in ``submissions_dir`` against ``assignment`` (a solution notebook).

    workers: sandboxes at a time (default: the number of CPU cores).
    limits: :class:`~coursekit.grading.limits.GradeLimits` (default: its defaults).
    students: only these students, run again even if done. questions: only re-score these.
    engine_available: whether questions that need the engine can be checked (default: ask it).
    cluster: ``"local"`` (containers on this engine) or ``"swarm"`` (the tasks of one Docker Swarm
    job, :mod:`coursekit.grading.swarm`); everything else is the same.
    image: the sandbox image to run (default: :func:`~coursekit.grading.image.grader_image`, built here);
    on a cluster of several nodes, that image pushed to a registry the nodes pull from.
    """
    t0 = time.monotonic()
    say = progress or (lambda _m: None)
    limits = limits or GradeLimits()
    workers = workers or os.cpu_count() or 1
    if workers < 1:
        raise GradingError(f"workers={workers}: at least one sandbox must run", "use workers=1 or more")
    if cluster not in CLUSTERS:
        raise GradingError(f"cluster={cluster!r} is not a way of running the sandboxes",
                           f"use one of: {', '.join(CLUSTERS)} (the command line: --swarm)")
    task = load_assignment(assignment)
    subs = {s.student: s for s in find_submissions(submissions_dir, task.name)}
    for kind, asked, known in (("student", students, subs), ("question", questions, task.questions)):
        unknown = sorted(set(asked or ()) - set(known))
        if unknown:
            raise GradingError(f"no {kind} named {', '.join(unknown)} in this assignment's "
                               f"{'submissions' if kind == 'student' else 'solution'}",
                               f"use one of: {', '.join(sorted(known))}")
    out = Path(out_dir)
    (out / FEEDBACK).mkdir(parents=True, exist_ok=True)
    engine_ok = engine.available() if engine_available is None else engine_available
    state = _load_state(out / STATE)
    limits_fp = json.dumps(limits.to_dict(), sort_keys=True)
    res = ClassResult(task.name, out)
    log = _Log(out / LOG, say)
    log(f"grading {len(subs)} submissions of {task.name} ({task.solution}) with {workers} workers; limits: "
        f"memory {limits.memory}, pids {limits.pids}, cpus {limits.cpus:g}, timeout {limits.timeout:g} s, "
        f"cell timeout {limits.cell_timeout:g} s")
    todo = []
    for name, sub in subs.items():
        rec = state.get(name)
        key = [sub.fingerprint(), task.run_fingerprint, limits_fp]
        if rec and rec.get("key") == key and rec["result"].status != GRADER_ERROR and name not in (students or ()):
            result = rec["result"]
            if questions and result.status == GRADED:
                _rescore(result, task, questions, engine_ok)
                res.rescored.append(name)
            elif rec.get("score_key") != task.score_fingerprint and result.status == GRADED:
                _rescore(result, task, task.questions, engine_ok)
                res.rescored.append(name)
            elif engine_ok and (waiting := _waiting_for_engine(result)):
                _rescore(result, task, waiting, engine_ok)  # graded where no engine ran: now there is one
                res.rescored.append(name)
            else:
                res.kept.append(name)
            res.results[name] = result
        elif questions and not students and rec:
            res.results[name] = rec["result"]
            res.kept.append(name)  # a question re-grade runs no sandbox for a changed notebook
        else:
            todo.append((sub, key))
    writer = _State(out / STATE, state)
    for name in res.rescored:
        writer.save(name, state[name]["key"], task.score_fingerprint, res.results[name])
    if todo:
        image = image or grader_image(limits.image, say)
        log(f"{len(todo)} to run in sandboxes of {image}" + (" as a Docker Swarm job" if cluster == "swarm" else ""))
        record = _Recorder(task, res, writer, log, len(todo))
        with _swarm_mode(task, engine_ok and cluster != "swarm", log):
            (_run_on_swarm if cluster == "swarm" else _run_all)(todo, task, limits, workers, engine_ok, image, record)
    res.results = {k: res.results[k] for k in sorted(res.results)}
    writer.compact(set(subs))
    write_outputs(res, task)
    res.seconds = round(time.monotonic() - t0, 2)
    log(f"done: {res}")
    return res


@contextlib.contextmanager
def _swarm_mode(task, wanted: bool, log):
    """While a class whose answers deploy Swarm services is graded through gates, the engine is a swarm manager:
    made one here if it is not (and turned back afterwards, if no one else's services run on it)."""
    if not (wanted and task.engine and any("swarm" in q.needs for q in task.questions.values() if q.needs_engine)):
        yield
        return
    from ..orchestrate import swarm

    made = swarm.state() == "inactive"
    try:
        swarm.init(lesson="grading")
    except CoursekitError as exc:
        raise GradingError(f"this assignment's answers deploy Swarm services, and this engine cannot run them: "
                           f"{exc.problem}", exc.fix or "grade on a swarm manager") from None
    if made:
        log("swarm mode turned on for the questions that deploy services (it is turned off at the end)")
    try:
        yield
    finally:
        if made:
            swarm.leave(engine.SESSION_ID)


class _Recorder:
    """Saves, logs and counts each result as it comes in (the same lines whichever way the sandboxes ran)."""

    def __init__(self, task, res: ClassResult, writer, log, total: int):
        self.task, self.res, self.writer, self.log, self.total = task, res, writer, log, total
        self.keys: dict = {}
        self.done = 0
        self.stopping = threading.Event()

    def __call__(self, sub: Submission, result: SubmissionGrade) -> None:
        if self.stopping.is_set():
            return
        self.done += 1
        self.res.results[sub.student] = result
        self.res.ran.append(sub.student)
        self.writer.save(sub.student, self.keys[sub.student], self.task.score_fingerprint, result)
        t = result.timings
        self.log(f"[{self.done}/{self.total}] {sub.student}: {result.score:g}/{result.max_score:g} {result.status}"
                 + (f" ({result.message})" if result.message else "")
                 + (f"; sandbox {t['sandbox']:.1f} s, first cell after {t['start_to_first_cell']:.1f} s"
                    if "sandbox" in t and "start_to_first_cell" in t else "") + f"; total {result.seconds:.1f} s")


def _run_all(todo, task, limits, workers, engine_ok, image, record: _Recorder) -> None:
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grade")
    futures = {pool.submit(run_one, sub, task, limits, engine_available=engine_ok, image=image): sub
               for sub, _ in todo}
    record.keys = {sub.student: key for sub, key in todo}
    try:
        for fut in as_completed(futures):
            sub = futures[fut]
            try:
                result = fut.result()
            except Exception as exc:  # noqa: BLE001 - the grader's trouble, never the rest of the class's
                why = exc.problem if isinstance(exc, CoursekitError) else f"{type(exc).__name__}: {exc}"
                result = zero_grade(task, sub, GRADER_ERROR, f"the grader failed on this submission: {why}"[:500],
                                    time.monotonic())
            record(sub, result)
    except BaseException:
        record.stopping.set()
        pool.shutdown(wait=False, cancel_futures=True)
        stop_all()
        record.log(f"interrupted after {record.done} of {len(todo)}: run grade() again to resume")
        raise
    finally:
        pool.shutdown(wait=True)


def _run_on_swarm(todo, task, limits, workers, engine_ok, image, record: _Recorder) -> None:
    from . import swarm as gradeswarm

    record.keys = {sub.student: key for sub, key in todo}
    try:
        gradeswarm.run([sub for sub, _ in todo], task, limits, workers, engine_available=engine_ok, image=image,
                       on_result=record, progress=record.log)
    except BaseException:
        record.stopping.set()
        record.log(f"interrupted after {record.done} of {len(todo)}: run grade() again to resume")
        raise


class _Log:
    def __init__(self, path: Path, say):
        self.path, self.say, self.lock = path, say, threading.Lock()

    def __call__(self, line: str) -> None:
        with self.lock, open(self.path, "a") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
        self.say(line)


class _State:
    """``state.jsonl``: one line per result, appended (and flushed) as each one is done."""

    def __init__(self, path: Path, records: dict):
        self.path, self.records, self.lock = path, records, threading.Lock()

    def save(self, student: str, key, score_key: str, result: SubmissionGrade) -> None:
        rec = {"student": student, "key": key, "score_key": score_key, "result": result}
        line = json.dumps({**rec, "result": result.to_dict()}, default=str)
        with self.lock:
            self.records[student] = rec
            with open(self.path, "a") as fh:
                fh.write(line + "\n")
                fh.flush()
                os.fsync(fh.fileno())

    def compact(self, keep: set) -> None:
        with self.lock:
            lines = [json.dumps({**r, "result": r["result"].to_dict()}, default=str)
                     for s, r in sorted(self.records.items()) if s in keep]
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(line + "\n" for line in lines))
            os.replace(tmp, self.path)
