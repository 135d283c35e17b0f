"""``coursekit grade``: grade a whole class, each submission in its own sandbox, in parallel.

>>> from coursekit.gradeclass import grade                                  # doctest: +SKIP
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

**Isolation** is :mod:`coursekit.gradesandbox`'s (one container per submission, all limits in
:class:`~coursekit.gradelimits.GradeLimits`); a submission that crashes, hangs, floods its output
or exhausts its memory gets its own status and costs no other student anything.

**Answers that need the engine** (a Dockerfile...) are collected as text in the sandbox, then
built and run here by their checks (:func:`coursekit.dockerfile_answers.try_dockerfile` with
:class:`~coursekit.sandboxlimits.Limits`): build steps on the default bridge (``RUN apt-get``
reaches the OS archive) with 1 GiB and a wall clock per build, no ``ADD <url>``, no pulls;
the container with no network, or for a server the bridge with its port on 127.0.0.1 only.
An answer whose *expression* calls Docker (SDK code) cannot run in a sandbox without an engine:
it is reported as ``needs engine``, with a line in the feedback saying so.

Lesson: none (the instructor's side: issue 7).
"""
from __future__ import annotations

import csv
import json
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

from . import checks as ck
from . import engine, grading
from .errors import CoursekitError
from .gradelimits import GradeLimits
from .gradesandbox import (GRADED, GRADER_ERROR, Assignment, Submission, SubmissionGrade, grader_image,
                           load_assignment, run_one, stop_all, zero_grade)

STATE, GRADEBOOK, LOG, PLOT, FEEDBACK = "state.jsonl", "gradebook.csv", "grade.log", "class.png", "feedback"
NEEDS_ENGINE_NOTE = ("this answer's code talks to the Docker engine, and the grading sandbox has none (by design), "
                     "so it could not be run there: it scores 0 here; ask your instructor to grade it where an "
                     "engine runs")


# --------------------------------------------------------------------------- finding the class


def find_submissions(folder: str | os.PathLike, assignment: str) -> list[Submission]:
    """Every student in ``folder`` (see the module's docstring), sorted by id."""
    root = Path(folder)
    if not root.is_dir():
        raise CoursekitError(f"{root} is not a folder of submissions",
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
        raise CoursekitError(f"{root} holds no submissions", "put one folder or one .ipynb per student in it")
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
    qs = {k: grading.QuestionGrade(**v) for k, v in d.pop("questions").items()}
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
    fresh = grading.score({n: assignment.questions[n] for n in answers}, answers, engine_available=engine_ok)
    result.questions.update(fresh.questions)
    result.score = sum(g.points for g in result.questions.values())
    result.max_score = assignment.max_score


# --------------------------------------------------------------------------- the API


def grade(submissions_dir: str | os.PathLike, assignment: str | os.PathLike, out_dir: str | os.PathLike,
          workers: int | None = None, limits: GradeLimits | None = None, *, students: list[str] | None = None,
          questions: list[str] | None = None, progress: Optional[Callable[[str], None]] = print,
          engine_available: bool | None = None) -> ClassResult:
    """Grade every submission in ``submissions_dir`` against ``assignment`` (a solution notebook).

    workers: sandboxes at a time (default: the number of CPU cores).
    limits: :class:`~coursekit.gradelimits.GradeLimits` (default: its defaults).
    students: only these students, run again even if done. questions: only re-score these.
    engine_available: whether questions that need the engine can be checked (default: ask it).
    """
    t0 = time.monotonic()
    say = progress or (lambda _m: None)
    limits = limits or GradeLimits()
    workers = workers or os.cpu_count() or 1
    if workers < 1:
        raise CoursekitError(f"workers={workers}: at least one sandbox must run", "use workers=1 or more")
    task = load_assignment(assignment)
    subs = {s.student: s for s in find_submissions(submissions_dir, task.name)}
    for kind, asked, known in (("student", students, subs), ("question", questions, task.questions)):
        unknown = sorted(set(asked or ()) - set(known))
        if unknown:
            raise CoursekitError(f"no {kind} named {', '.join(unknown)} in this assignment's "
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
        image = grader_image(limits.image, say)
        log(f"{len(todo)} to run in sandboxes of {image}")
        _run_all(todo, task, limits, workers, engine_ok, image, res, writer, log)
    res.results = {k: res.results[k] for k in sorted(res.results)}
    writer.compact(set(subs))
    write_outputs(res, task)
    res.seconds = round(time.monotonic() - t0, 2)
    log(f"done: {res}")
    return res


def _run_all(todo, task, limits, workers, engine_ok, image, res, writer, log) -> None:
    done = 0
    stopping = threading.Event()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grade")
    futures = {pool.submit(run_one, sub, task, limits, engine_available=engine_ok, image=image): (sub, key)
               for sub, key in todo}
    try:
        for fut in as_completed(futures):
            sub, key = futures[fut]
            try:
                result = fut.result()
            except Exception as exc:  # noqa: BLE001 - the grader's trouble, never the rest of the class's
                why = exc.problem if isinstance(exc, CoursekitError) else f"{type(exc).__name__}: {exc}"
                result = zero_grade(task, sub, GRADER_ERROR, f"the grader failed on this submission: {why}"[:500],
                               time.monotonic())
            if stopping.is_set():
                continue
            done += 1
            res.results[sub.student] = result
            res.ran.append(sub.student)
            writer.save(sub.student, key, task.score_fingerprint, result)
            t = result.timings
            log(f"[{done}/{len(todo)}] {sub.student}: {result.score:g}/{result.max_score:g} {result.status}"
                + (f" ({result.message})" if result.message else "")
                + (f"; sandbox {t['sandbox']:.1f} s, first cell after {t['start_to_first_cell']:.1f} s"
                   if "sandbox" in t and "start_to_first_cell" in t else "") + f"; total {result.seconds:.1f} s")
    except BaseException:
        stopping.set()
        pool.shutdown(wait=False, cancel_futures=True)
        stop_all()
        log(f"interrupted after {done} of {len(todo)}: run grade() again to resume")
        raise
    finally:
        pool.shutdown(wait=True)


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


# --------------------------------------------------------------------------- the files


def write_outputs(res: ClassResult, task: Assignment) -> None:
    """gradebook.csv, feedback/<student>.md and class.png from ``res.results``."""
    names = list(task.questions)
    with open(res.out_dir / GRADEBOOK, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["student", "status", *names, "total", "max", "notes"])
        for student, r in res.results.items():
            w.writerow([student, r.status, *[_num(r.questions[n].points) if n in r.questions else 0 for n in names],
                        _num(r.score), _num(task.max_score), r.message[:300]])
    used = set()
    for student, r in res.results.items():
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", student).strip("._") or "student"
        while slug in used:
            slug += "_"
        used.add(slug)
        (res.out_dir / FEEDBACK / f"{slug}.md").write_text(feedback(r, task))
    plot_class(res, task, res.out_dir / PLOT)


def _num(x: float) -> str:
    return f"{x:g}"


def feedback(r: SubmissionGrade, task: Assignment) -> str:
    """One student's feedback in Markdown: public checks and hints, hidden checks counted, never shown."""
    lines = [f"# {task.name}: feedback for {r.student}", "",
             f"**Score: {r.score:g} / {r.max_score:g}** ({r.status})", ""]
    if r.status not in (GRADED,):
        lines += [f"Your notebook could not be graded: {r.message}", ""]
    notes = [c for c in r.cells if c.get("status") != "ok"]
    if notes:
        lines.append("Notes on your cells:")
        for c in notes[:15]:
            where = f"cell {c['index']}" if c.get("index") else "a check cell (put back by the grader)"
            head = c.get("head", "").replace("`", "'")
            where += f" (`{head}`)" if head else ""
            lines.append(f"- {where}: {c['status']}" + (f": {c['message']}" if c.get("message") else ""))
        lines.append("")
    for name, g in r.questions.items():
        q = task.questions.get(name)
        lines += [f"## {name} · {g.points:g} / {g.max_points:g} · {g.status}", ""]
        if q is not None and q.prompt:
            lines += [f"*{q.prompt}*", ""]
        lines += [f"- {m}" for m in g.messages]
        if g.status == ck.NEEDS_ENGINE and r.answers.get(name, {}).get("status") == ck.NEEDS_ENGINE:
            lines.append(f"- {NEEDS_ENGINE_NOTE}")
        lines += [f"- Hint: {h}" for h in getattr(g, "hints", [])]
        lines.append("")
    return "\n".join(lines)


def plot_class(res: ClassResult, task: Assignment, path: Path) -> None:
    """class.png: how the class scored (left) and how each question went (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = list(res.results.values())
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6))
    top = task.max_score
    scores = [r.score for r in results]
    bins = [x - 0.5 for x in range(int(top) + 2)]
    left.hist(scores, bins=bins, color="#4c72b0", edgecolor="white")
    left.set(title=f"Scores ({len(results)} students, mean {sum(scores) / max(1, len(scores)):.1f} of {top:g})",
             xlabel="points", ylabel="students", xlim=(-0.5, top + 0.5))
    left.yaxis.get_major_locator().set_params(integer=True)
    kinds = [("passed", "#2e7d32"), ("failed", "#c62828"), ("not attempted", "#9e9e9e"),
             ("error, needs engine or not graded", "#f9a825")]
    names = list(task.questions)
    share = {k: [] for k, _ in kinds}
    for n in names:
        st = [r.questions[n].status if n in r.questions else "other" for r in results]
        for k, _ in kinds:
            hit = sum(s == k for s in st) if k in ("passed", "failed", "not attempted") else \
                sum(s not in ("passed", "failed", "not attempted") for s in st)
            share[k].append(100 * hit / max(1, len(st)))
    start = [0.0] * len(names)
    for k, colour in kinds:
        right.barh(names, share[k], left=start, color=colour, label=k)
        start = [a + b for a, b in zip(start, share[k])]
    right.invert_yaxis()
    right.set(title="Each question", xlabel="% of students", xlim=(0, 100))
    right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8, frameon=False)
    fig.suptitle(f"{task.name}: the class at a glance")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
