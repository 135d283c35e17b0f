"""What a grading sandbox's run comes to: a status, and a grade scored on the host.

The same for every way of running sandboxes (one container per submission on this engine,
:mod:`coursekit.grading.local`, or tasks of a Swarm job, :mod:`coursekit.grading.swarm`):

* :func:`prepare` turns a submission into the request for its sandbox, or into a zero grade
  when there is nothing to run (no notebook, not valid JSON, too big);
* :func:`check_report` re-validates the worker's report (plain JSON, capped field by field),
  since it comes from a container that ran untrusted code;
* :func:`graded` scores the report's answers here, on the host, with the solution's public
  *and* hidden checks (:func:`coursekit.grading.score`); :func:`zero_grade` is the grade of a
  submission whose sandbox did not report (timed out, out of memory, crashed, grader error).

Statuses of a submission (:attr:`SubmissionGrade.status`, :data:`coursekit.grading.protocol.STATUSES`): ``graded`` (the worker reported:
crashed or hung cells are in :attr:`SubmissionGrade.cells` and cost only the questions that
needed them), ``invalid notebook``, ``too big``, ``no notebook``, ``timed out`` (the whole
sandbox ran past ``timeout``), ``out of memory`` (the worker itself was killed), ``crashed``
(the sandbox ended without a report), ``grader error`` (the engine failed: graded again on the
next run). Every status but ``graded`` gives zero for every question.

Lesson: none (the instructor's side, ``coursekit grade``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..errors import NotebookError
from ..exercises import checks as ck
from .inputs import Assignment, Submission, TooBig, build_request
from .limits import GradeLimits
from .protocol import GRADED, INVALID_NOTEBOOK, NO_NOTEBOOK, TOO_BIG
from .scoring import GradeResult, QuestionGrade, score


@dataclass
class SubmissionGrade(GradeResult):
    """A submission's grade, plus what happened in its sandbox (for the log and the feedback)."""

    student: str = ""
    answers: dict = field(default_factory=dict)   # question -> answer JSON, as the sandbox sent it
    cells: list = field(default_factory=list)     # [{index, kind, status, message}] cells that did not run cleanly
    restarts: int = 0
    timings: dict = field(default_factory=dict)   # seconds: start_to_kernel, start_to_first_cell, sandbox, total,
    #                                               cells (replaying the notebook) and answer:<question> (collecting
    #                                               each answer: its check helper's work)
    events: list = field(default_factory=list)    # what the worker or the host noticed


def zero_grade(assignment: Assignment, submission: Submission, status: str, message: str, t0: float,
               **extra) -> SubmissionGrade:
    """Zero for every question: the submission could not be graded (``status`` says why)."""
    qs = {q.name: QuestionGrade(q.name, status, 0, q.points, messages=[f"not graded: {status}"])
          for q in assignment.questions.values()}
    return SubmissionGrade(status, 0, assignment.max_score, qs, str(submission.notebook or ""), message,
                           round(time.monotonic() - t0, 3), student=submission.student, **extra)


def prepare(submission: Submission, assignment: Assignment, limits: GradeLimits,
            t0: float) -> tuple[dict | None, SubmissionGrade | None]:
    """``(request, None)`` for a submission to run, or ``(None, zero grade)`` when there is nothing to run."""
    if submission.notebook is None:
        return None, zero_grade(assignment, submission, NO_NOTEBOOK,
                                submission.problem or "no notebook was handed in", t0)
    try:
        return build_request(submission, assignment, limits), None
    except NotebookError as exc:
        text = f"{exc.problem}. What to do: {exc.fix}".replace(str(submission.notebook), submission.notebook.name)
        return None, zero_grade(assignment, submission, INVALID_NOTEBOOK, text, t0)
    except TooBig as exc:
        return None, zero_grade(assignment, submission, TOO_BIG, str(exc), t0)


def check_report(doc, limits: GradeLimits) -> dict | None:
    """The worker's report, validated and capped field by field; None if it is not one."""
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


def graded(report: dict, submission: Submission, assignment: Assignment, *, engine_available: bool | None,
           timings: dict, t0: float) -> SubmissionGrade:
    """Score a (checked) report's answers here, with the solution's public and hidden checks."""
    answers = {}
    for name, raw in (report.get("answers") or {}).items():
        if name in assignment.questions:
            answers[name] = ck.Answer.from_json(raw)
    scored = score(assignment.questions, answers, engine_available=engine_available)
    notes = sorted(report.get("cells", {}).values(), key=lambda c: c.get("index", 0))
    res = SubmissionGrade(GRADED, scored.score, scored.max_score, scored.questions, str(submission.notebook),
                          _summary(notes), 0.0, student=submission.student,
                          answers={k: v.to_json() for k, v in answers.items()}, cells=notes,
                          restarts=int(report.get("restarts", 0)), timings=timings,
                          events=[str(e)[:300] for e in report.get("events", [])][:20])
    res.timings["total"] = res.seconds = round(time.monotonic() - t0, 3)
    return res


def worker_timings(report: dict, started: float) -> dict:
    """Seconds from ``started`` (a wall-clock time) to the kernel being ready and to the first cell."""
    out = {}
    t = report.get("timings", {})
    for key, name in (("kernel_ready", "start_to_kernel"), ("first_cell", "start_to_first_cell")):
        if isinstance(t.get(key), (int, float)):
            out[name] = round(t[key] - started, 3)
    if isinstance(t.get("cells_done"), (int, float)) and isinstance(t.get("first_cell"), (int, float)):
        out["cells"] = round(t["cells_done"] - t["first_cell"], 3)  # replaying the notebook's cells
    for key, value in list(t.items())[:300]:  # how long each answer took to collect: "answer:q1"
        if key.startswith("answer:") and len(key) <= 60 and isinstance(value, (int, float)) and 0 <= value < 1e5:
            out[key] = round(float(value), 3)
    return out


def _summary(notes: list) -> str:
    bad = [n for n in notes if n.get("status") not in ("ok", "error")]
    if not bad:
        return ""
    return "; ".join(f"cell {n['index']}: {n['status']}" if n.get("index") else f"a check cell: {n['status']}"
                     for n in bad[:5])
